package dev.gradclip;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The NaN-bits rule of {@link GradClip} as an oracle, and the cases that probe it: for each dtype, on
 * the heap and off it, one tensor with quiet and signaling NaNs of both signs with payloads,
 * infinities, signed zeros and finite values, some in the vector loops' body and some in their tail,
 * through each pass that writes: a NaN norm (clipGradNorm, and a Clipper), an infinite one, a
 * finite factor (clipGradsWithNorm) and value clipping.
 */
final class NanCases {

    /** The passes, each a way to write the tensor. */
    enum Pass { NAN_NORM, CLIPPER_NAN_NORM, INFINITE_NORM, FINITE_FACTOR, CLAMP }

    record Case(DType type, Pass pass, boolean offHeap) {
        String label() {
            return type + " " + pass + (offHeap ? " native" : " heap");
        }
    }

    /** 72 + 5: a float32 vector body of 9 steps and a tail, a bfloat16 body of 4 pair steps and 13 in the tail. */
    static final int LENGTH = 77;
    static final double MAX_NORM = 1;
    static final double FINITE_NORM = 1000;
    static final double CLIP_VALUE = 0.5;

    private NanCases() {}

    static List<Case> all() {
        List<Case> cases = new ArrayList<>();
        for (DType type : DType.values()) {
            for (Pass pass : Pass.values()) {
                for (boolean offHeap : new boolean[] {false, true}) {
                    cases.add(new Case(type, pass, offHeap));
                }
            }
        }
        return cases;
    }

    private static int width(DType type) {
        return 8 * type.byteSize();
    }

    private static long sign(DType type) {
        return 1L << (width(type) - 1);
    }

    private static long infinity(DType type) {
        return switch (type) {
            case FLOAT64 -> 0x7ff0_0000_0000_0000L;
            case FLOAT32 -> 0x7f80_0000L;
            case FLOAT16 -> 0x7c00L;
            case BFLOAT16 -> 0x7f80L;
        };
    }

    /** The top significand bit. */
    private static long quiet(DType type) {
        return switch (type) {
            case FLOAT64 -> 0x0008_0000_0000_0000L;
            case FLOAT32 -> 0x0040_0000L;
            case FLOAT16 -> 0x0200L;
            case BFLOAT16 -> 0x0040L;
        };
    }

    private static boolean isNaN(DType type, long bits) {
        return (bits & (sign(type) - 1)) > infinity(type);
    }

    /** Quiet +NaN, quiet -NaN, signaling +NaN and -NaN, each with a payload; bfloat16's -NaN is 0xffc1. */
    private static long[] nans(DType type) {
        return switch (type) {
            case FLOAT64 -> new long[] {0x7ff8_0000_0000_1234L, 0xfff8_0000_dead_0001L, 0x7ff0_0000_0000_0001L,
                    0xfff4_0000_0000_0000L};
            case FLOAT32 -> new long[] {0x7fc0_1234L, 0xffc0_0001L, 0x7f80_0001L, 0xffa0_0000L};
            case FLOAT16 -> new long[] {0x7e01L, 0xfe10L, 0x7c01L, 0xfd00L};
            case BFLOAT16 -> new long[] {0x7fc1L, 0xffc1L, 0x7f81L, 0xffa0L};
        };
    }

    /** The element bits: finite values from ±0.25 to ±1.75 with the special values placed among them. */
    static long[] input(DType type) {
        long[] bits = new long[LENGTH];
        for (int i = 0; i < LENGTH; i++) {
            bits[i] = bitsOf(type, ((i % 7) + 1) * 0.25 * (i % 2 == 0 ? 1 : -1));
        }
        long[] nans = nans(type);
        bits[3] = nans[0];
        bits[7] = nans[1];
        bits[12] = nans[2];
        bits[20] = nans[3];
        bits[33] = infinity(type);
        bits[41] = infinity(type) | sign(type);
        bits[50] = 0;
        bits[51] = sign(type);
        bits[70] = nans[1]; // in every type's tail
        bits[74] = nans[2];
        bits[76] = infinity(type) | sign(type);
        return bits;
    }

    private static long bitsOf(DType type, double value) {
        return switch (type) {
            case FLOAT64 -> Double.doubleToRawLongBits(value);
            case FLOAT32 -> Float.floatToRawIntBits((float) value) & 0xffff_ffffL;
            case FLOAT16 -> Float.floatToFloat16((float) value) & 0xffffL;
            case BFLOAT16 -> Tensors.bfloat16Bits((float) value) & 0xffffL;
        };
    }

    private static double valueOf(DType type, long bits) {
        return switch (type) {
            case FLOAT64 -> Double.longBitsToDouble(bits);
            case FLOAT32 -> Float.intBitsToFloat((int) bits);
            case FLOAT16 -> Float.float16ToFloat((short) bits);
            case BFLOAT16 -> Float.intBitsToFloat((int) bits << 16);
        };
    }

    /** What the rule says each element becomes. */
    static long[] expected(Case c) {
        DType type = c.type();
        long canonical = infinity(type) | quiet(type);
        long[] in = input(type);
        long[] out = new long[LENGTH];
        for (int i = 0; i < LENGTH; i++) {
            long bits = in[i];
            if (isNaN(type, bits)) {
                out[i] = bits | quiet(type); // a NaN element stays itself, quieted
                continue;
            }
            boolean infinite = (bits & (sign(type) - 1)) == infinity(type);
            out[i] = switch (c.pass()) {
                case NAN_NORM, CLIPPER_NAN_NORM -> canonical;
                case INFINITE_NORM -> infinite ? canonical : bits & sign(type);
                case FINITE_FACTOR -> product(type, bits, Math.min(1, MAX_NORM / (FINITE_NORM + 1e-6)));
                case CLAMP -> bitsOf(type, Math.min(Math.max(valueOf(type, bits), -CLIP_VALUE), CLIP_VALUE));
            };
        }
        return out;
    }

    /** A non-NaN element times c, rounded to its type as GradClip's scaling rule says. */
    private static long product(DType type, long bits, double c) {
        return switch (type) {
            case FLOAT64 -> Double.doubleToRawLongBits(Double.longBitsToDouble(bits) * c);
            case FLOAT32 -> Float.floatToRawIntBits(Float.intBitsToFloat((int) bits) * (float) c) & 0xffff_ffffL;
            case FLOAT16 -> Float.floatToFloat16(Float.float16ToFloat((short) bits) * (float) c) & 0xffffL;
            case BFLOAT16 -> Tensors.bfloat16Bits(Float.intBitsToFloat((int) bits << 16) * (float) c) & 0xffffL;
        };
    }

    /** Runs the case's pass once on a fresh tensor and returns its element bits; {@code clipper} for CLIPPER_NAN_NORM. */
    static long[] run(Case c, Clipper clipper) {
        return new Tensor(c).run(clipper);
    }

    /** A case's tensor, refilled with the input before each run, so that repeated runs allocate little. */
    static final class Tensor {
        private final Case c;
        private final MemorySegment segment;
        private final Gradients grads;
        private final long[] in;

        Tensor(Case c) {
            this.c = c;
            long bytes = (long) LENGTH * c.type().byteSize();
            segment = c.offHeap() ? Arena.ofAuto().allocate(bytes, 8) : MemorySegment.ofArray(new byte[(int) bytes]);
            grads = Gradients.of(c.type(), List.of(segment));
            in = input(c.type());
        }

        long[] run(Clipper clipper) {
            DType type = c.type();
            for (int i = 0; i < LENGTH; i++) {
                setBits(segment, type, i, in[i]);
            }
            switch (c.pass()) {
                case NAN_NORM -> GradClip.clipGradNorm(grads, MAX_NORM);
                case CLIPPER_NAN_NORM -> clipper.clip(grads);
                case INFINITE_NORM -> GradClip.clipGradsWithNorm(grads, MAX_NORM, Double.POSITIVE_INFINITY);
                case FINITE_FACTOR -> GradClip.clipGradsWithNorm(grads, MAX_NORM, FINITE_NORM);
                case CLAMP -> GradClip.clipGradValue(grads, CLIP_VALUE);
            }
            long[] out = new long[LENGTH];
            for (int i = 0; i < LENGTH; i++) {
                out[i] = Tensors.bits(segment, type, i) & (-1L >>> (64 - width(type)));
            }
            return out;
        }
    }

    /**
     * The Clipper that CLIPPER_NAN_NORM runs, PROPAGATE as torch by default. One thread: its workers run
     * the same kernels, and a hand-off per call costs a millisecond on a loaded machine.
     */
    static Clipper clipper() {
        return Clipper.builder().maxNorm(MAX_NORM).threads(1).build();
    }

    private static void setBits(MemorySegment segment, DType type, long i, long bits) {
        switch (type) {
            case FLOAT64 -> segment.setAtIndex(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, i, bits);
            case FLOAT32 -> segment.setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, i, (int) bits);
            case FLOAT16, BFLOAT16 -> segment.setAtIndex(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) bits);
        }
    }

    /** One line per case: its label and every element's bits in hex. */
    static String line(Case c, long[] bits) {
        StringBuilder line = new StringBuilder(c.label()).append(':');
        for (long b : bits) {
            line.append(' ').append(Long.toHexString(b));
        }
        return line.toString();
    }
}
