package dev.gradclip;

import dev.gradclip.internal.KernelProvider;
import java.lang.foreign.MemorySegment;
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
        everyHalfPattern(out);
        return out;
    }

    /**
     * Every float16 and bfloat16 bit pattern (NaN payloads, subnormals, ties) scaled and clamped, and
     * the norms of the finite ones: the conversions of every kernel path (the JDK's, SuperWord's,
     * the bit operations) must give the same bits.
     */
    private static void everyHalfPattern(List<String> out) {
        for (DType type : new DType[] {DType.FLOAT16, DType.BFLOAT16}) {
            for (double maxNorm : new double[] {0.5, 0x1p-11, 0.7390851332151607}) {
                short[] all = everyPattern(type, false);
                GradClip.clipGradsWithNorm(Gradients.of(type, List.of(MemorySegment.ofArray(all))), maxNorm, 1.0);
                out.add(type + " scaled for " + maxNorm + " " + Long.toHexString(hash(all)));
            }
            for (double bound : new double[] {1e-3, 1000}) {
                short[] all = everyPattern(type, false);
                GradClip.clipGradValue(Gradients.of(type, List.of(MemorySegment.ofArray(all))), bound);
                out.add(type + " clamped to " + bound + " " + Long.toHexString(hash(all)));
            }
            for (double p : new double[] {1, 2, Double.POSITIVE_INFINITY}) {
                double norm = GradClip.totalNorm(Gradients.of(type, List.of(MemorySegment.ofArray(everyPattern(type, true)))), p);
                out.add(type + " finite norm " + p + " " + Long.toHexString(Double.doubleToRawLongBits(norm)));
            }
        }
    }

    private static short[] everyPattern(DType type, boolean finiteOnly) {
        short[] all = new short[65536];
        int n = 0;
        for (int bits = 0; bits < 65536; bits++) {
            short half = (short) bits;
            float value = type == DType.FLOAT16 ? Float.float16ToFloat(half) : Float.intBitsToFloat(bits << 16);
            if (!finiteOnly || Float.isFinite(value)) {
                all[n++] = half;
            }
        }
        return java.util.Arrays.copyOf(all, n);
    }

    private static long hash(short[] halves) {
        long[] words = new long[halves.length];
        for (int i = 0; i < halves.length; i++) {
            words[i] = halves[i];
        }
        return hash(words);
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
