package dev.gradclip;

import dev.gradclip.internal.KernelProvider;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Run in child JVMs by {@link CrossWidthTest}: prints the kernels this JVM chose, then the bits of
 * everything gradclip computes on a fixed mixed-dtype set: the norms of type 1, 2, +Infinity, 3 and
 * 2.5, the buffers after clipping by each, and after value clipping; torch's coefficient rule where
 * it differs from the old one; subnormal float64 norms; and every {@link NanCases} case. Every JVM must
 * print the same lines but the first. Arguments: {@code all} or {@code nan} (the NaN cases only, for
 * the interpreter and C1), and how many calls of the NaN cases must all give the first call's bits
 * (the passes move from the interpreter to C1 and C2 on the way); the last line says whether they did.
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
        for (double p : new double[] {1, 2, Double.POSITIVE_INFINITY, 3, 2.5}) {
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
        coefficientRule(out);
        subnormalNorms(out);
        out.addAll(nanLines());
        return out;
    }

    /** Clipping to the norm itself, and to 1e-7 of small gradients: torch's rule scales both, the old one neither. */
    private static void coefficientRule(List<String> out) {
        Gradients grads = Tensors.gradients(null, data(), 1);
        double norm = GradClip.totalNorm(grads);
        GradClip.clipGradNorm(grads, norm);
        out.add("clipped to its own norm " + Long.toHexString(hash(Tensors.allBits(grads))));
        List<Tensors.Tensor> small = new ArrayList<>();
        for (DType type : DType.values()) {
            double[] values = new double[100];
            for (int i = 0; i < values.length; i++) {
                values[i] = Tensors.round(type, 1e-9 * (i % 5 + 1) * (i % 2 == 0 ? 1 : -1));
            }
            small.add(new Tensors.Tensor("small." + type, type, values));
        }
        Gradients tiny = Tensors.gradients(null, small, 0);
        double before = GradClip.clipGradNorm(tiny, 1e-7);
        out.add("clipped to 1e-7 from " + Long.toHexString(Double.doubleToRawLongBits(before)) + " "
                + Long.toHexString(hash(Tensors.allBits(tiny))));
    }

    /** Float64 norms below 2^-1022, rounded once to the subnormal spacing. */
    private static void subnormalNorms(List<String> out) {
        java.util.SplittableRandom random = new java.util.SplittableRandom(1074);
        StringBuilder line = new StringBuilder("subnormal norms");
        for (int trial = 0; trial < 64; trial++) {
            double[] values = new double[1 + trial % 9];
            for (int i = 0; i < values.length; i++) {
                values[i] = random.nextLong(1, 1L << (4 + trial % 48)) * Double.MIN_VALUE;
            }
            double norm = GradClip.totalNorm(Gradients.of(DType.FLOAT64, List.of(MemorySegment.ofArray(values))));
            line.append(' ').append(Long.toHexString(Double.doubleToRawLongBits(norm)));
        }
        out.add(line.toString());
    }

    /** Each NaN case's bits after one call. */
    static List<String> nanLines() {
        List<String> out = new ArrayList<>();
        try (Clipper clipper = NanCases.clipper()) {
            for (NanCases.Case c : NanCases.all()) {
                out.add(NanCases.line(c, NanCases.run(c, clipper)));
            }
        }
        return out;
    }

    /** Runs every NaN case {@code calls} times; the line says whether every call gave the first call's bits. */
    static String nanStability(int calls) {
        List<NanCases.Case> cases = NanCases.all();
        List<NanCases.Tensor> tensors = cases.stream().map(NanCases.Tensor::new).toList();
        try (Clipper clipper = NanCases.clipper()) {
            List<long[]> first = new ArrayList<>();
            for (NanCases.Tensor tensor : tensors) {
                first.add(tensor.run(clipper));
            }
            for (int call = 2; call <= calls; call++) {
                for (int k = 0; k < cases.size(); k++) {
                    long[] bits = tensors.get(k).run(clipper);
                    if (!java.util.Arrays.equals(first.get(k), bits)) {
                        return "NaN cases changed at call " + call + ": " + NanCases.line(cases.get(k), bits)
                                + " after " + NanCases.line(cases.get(k), first.get(k));
                    }
                }
            }
        }
        return stableLine(calls);
    }

    static String stableLine(int calls) {
        return "NaN cases: the same bits on each of " + calls + " calls";
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
        (args[0].equals("nan") ? nanLines() : lines()).forEach(System.out::println);
        System.out.println(nanStability(Integer.parseInt(args[1])));
    }
}
