package dev.gradclip;

import dev.gradclip.internal.KernelProvider;
import java.util.SplittableRandom;

/**
 * Run in a child JVM by {@link ScalarFallbackTest}: prints the kernels this JVM chose, the norm of
 * a fixed data set (as raw bits), and the clipped values, one per line.
 */
public final class FallbackProbe {

    static float[][] data() {
        SplittableRandom random = new SplittableRandom(2026);
        int[] lengths = {1, 31, 4097, 9000, 70};
        float[][] grads = new float[lengths.length][];
        for (int t = 0; t < lengths.length; t++) {
            grads[t] = new float[lengths[t]];
            for (int i = 0; i < lengths[t]; i++) {
                grads[t][i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(-10, 11)));
            }
        }
        return grads;
    }

    public static void main(String[] args) {
        System.out.println(KernelProvider.kernels().description());
        float[][] grads = data();
        double norm = GradClip.clipGradNorm(grads, 1.0);
        System.out.println(Long.toHexString(Double.doubleToRawLongBits(norm)));
        for (float[] tensor : grads) {
            for (float g : tensor) {
                System.out.println(Integer.toHexString(Float.floatToRawIntBits(g)));
            }
        }
    }
}
