package dev.gradclip.bench;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * The loops a user would write by hand: a double (or float) accumulator, then a scale loop with a
 * float coefficient. The float accumulator shows what accuracy costs: it is what torch's CPU norm does.
 */
final class PlainLoops {

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;

    private PlainLoops() {}

    static double normDouble(List<MemorySegment> grads) {
        double sum = 0;
        for (MemorySegment g : grads) {
            for (long i = 0, n = g.byteSize() / Float.BYTES; i < n; i++) {
                double x = g.getAtIndex(FLOAT, i);
                sum += x * x;
            }
        }
        return Math.sqrt(sum);
    }

    static double normDouble(float[][] grads) {
        double sum = 0;
        for (float[] g : grads) {
            for (float x : g) {
                sum += (double) x * x;
            }
        }
        return Math.sqrt(sum);
    }

    static double normFloat(List<MemorySegment> grads) {
        float sum = 0;
        for (MemorySegment g : grads) {
            for (long i = 0, n = g.byteSize() / Float.BYTES; i < n; i++) {
                float x = g.getAtIndex(FLOAT, i);
                sum += x * x;
            }
        }
        return Math.sqrt(sum);
    }

    static double normFloat(float[][] grads) {
        float sum = 0;
        for (float[] g : grads) {
            for (float x : g) {
                sum += x * x;
            }
        }
        return Math.sqrt(sum);
    }

    static void scale(List<MemorySegment> grads, float c) {
        for (MemorySegment g : grads) {
            for (long i = 0, n = g.byteSize() / Float.BYTES; i < n; i++) {
                g.setAtIndex(FLOAT, i, g.getAtIndex(FLOAT, i) * c);
            }
        }
    }

    static void scale(float[][] grads, float c) {
        for (float[] g : grads) {
            for (int i = 0; i < g.length; i++) {
                g[i] *= c;
            }
        }
    }

    static float coefficient(double norm, double maxNorm) {
        return (float) (maxNorm / (norm + 1e-6));
    }
}
