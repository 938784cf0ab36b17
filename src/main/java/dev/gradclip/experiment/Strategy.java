package dev.gradclip.experiment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import dev.gradclip.GradClip;
import java.lang.foreign.MemorySegment;
import java.util.List;

/** The four ways the experiment treats the gradients between the backward pass and the update. */
enum Strategy {

    /** Plain SGD. */
    NONE("none") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            List<MemorySegment> grads = model.gradients();
            return () -> GradClip.totalNorm(grads);
        }
    },

    /** Every element clamped to [-clipValue, clipValue], as torch's clip_grad_value_: bends the direction. */
    VALUE("value") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            List<MemorySegment> grads = model.gradients();
            float bound = (float) thresholds.clipValue();
            return () -> {
                double norm = GradClip.totalNorm(grads);
                if (Double.isFinite(norm)) {
                    // 0.1 fallback until GradClip.clipGradValue lands
                    for (MemorySegment g : grads) {
                        for (long k = 0; k < g.byteSize() / Float.BYTES; k++) {
                            g.setAtIndex(JAVA_FLOAT, k, Math.clamp(g.getAtIndex(JAVA_FLOAT, k), -bound, bound));
                        }
                    }
                }
                return norm;
            };
        }
    },

    /** Each tensor clipped to maxNorm on its own (the bug of seed 001): bends the direction across tensors. */
    PER_TENSOR("per-tensor") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            List<MemorySegment> grads = model.gradients();
            List<List<MemorySegment>> tensors = grads.stream().map(List::of).toList();
            return () -> {
                double norm = GradClip.totalNorm(grads);
                if (Double.isFinite(norm)) {
                    for (List<MemorySegment> tensor : tensors) {
                        GradClip.clipGradNorm(tensor, thresholds.maxNorm());
                    }
                }
                return norm;
            };
        }
    },

    /** One norm over all tensors, one common coefficient: keeps the direction. */
    GLOBAL("global") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            List<MemorySegment> grads = model.gradients();
            return () -> GradClip.clipGradNorm(grads, thresholds.maxNorm());
        }
    };

    private final String label;

    Strategy(String label) {
        this.label = label;
    }

    /** The name used in tables, CSV files and plots. */
    String label() {
        return label;
    }

    /** This strategy's clip step for one model's gradients. */
    abstract Clip bind(Rnn model, Thresholds thresholds);

    /** One step's gradient treatment, bound to a model's gradient segments. */
    @FunctionalInterface
    interface Clip {
        /**
         * Clips the gradients in place and returns their global L2 norm before clipping; when that
         * norm is not finite the caller skips the update, whatever was written.
         */
        double apply();
    }
}
