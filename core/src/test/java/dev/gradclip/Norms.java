package dev.gradclip;

import dev.gradclip.internal.Engine;
import dev.gradclip.internal.Kernels;
import dev.gradclip.internal.NormState;
import dev.gradclip.internal.NormType;

/** Norms through chosen kernels and thread counts, for comparisons inside one JVM. */
final class Norms {

    private Norms() {}

    static double norm(Kernels kernels, Gradients grads, double p) {
        try (Engine engine = new Engine(kernels, 1, Long.MAX_VALUE)) {
            NormState state = new NormState();
            engine.norm(grads.table(), NormType.of(p), p, false, false, state);
            return state.norm();
        }
    }
}
