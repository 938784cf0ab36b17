package dev.gradclip;

import dev.gradclip.internal.KernelProvider;
import java.util.ArrayList;
import java.util.List;

/**
 * Run in child JVMs by {@link CrossWidthTest}: prints the kernels this JVM chose, then the bits of
 * everything gradclip computes on a fixed mixed-dtype set: the norms of type 1, 2, +Infinity and 3,
 * the buffers after clipping by each, and after value clipping. Every JVM must print the same lines
 * but the first.
 */
public final class BitsProbe {

    static List<Tensors.Tensor> data() {
        List<Tensors.Tensor> tensors = new ArrayList<>(Tensors.mixed(2026, 12, true));
        for (DType type : DType.values()) { // every dtype at least once, crossing a block boundary
            tensors.add(new Tensors.Tensor("all." + type, type,
                    Tensors.values(new java.util.SplittableRandom(type.ordinal()), type, 4096 + 77, true)));
        }
        return tensors;
    }

    static List<String> lines() {
        List<String> out = new ArrayList<>();
        for (double p : new double[] {1, 2, Double.POSITIVE_INFINITY, 3}) {
            Gradients grads = Tensors.gradients(null, data(), 1);
            double norm = GradClip.totalNorm(grads, p);
            double before = GradClip.clipGradNorm(grads, norm / 3, p);
            out.add("p " + p + " norm " + Long.toHexString(Double.doubleToRawLongBits(norm))
                    + " again " + Long.toHexString(Double.doubleToRawLongBits(before))
                    + " clipped " + Long.toHexString(hash(Tensors.allBits(grads))));
        }
        Gradients grads = Tensors.gradients(null, data(), 3);
        GradClip.clipGradValue(grads, 1e-3);
        out.add("value " + Long.toHexString(hash(Tensors.allBits(grads))));
        return out;
    }

    /** FNV-1a over the words: any changed bit changes it. */
    static long hash(long[] words) {
        long h = 0xcbf29ce484222325L;
        for (long w : words) {
            for (int b = 0; b < 8; b++) {
                h ^= (w >>> (8 * b)) & 0xff;
                h *= 0x100000001b3L;
            }
        }
        return h;
    }

    public static void main(String[] args) {
        System.out.println(KernelProvider.kernels().description());
        lines().forEach(System.out::println);
    }
}
