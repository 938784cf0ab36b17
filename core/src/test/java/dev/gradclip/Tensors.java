package dev.gradclip;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Test data of every dtype, and exact references. A tensor is held as the doubles it stands for
 * (each exactly representable in its dtype) and written into a segment of that dtype.
 */
final class Tensors {

    static final MathContext DIGITS_50 = new MathContext(50);

    private Tensors() {}

    /** One tensor: its dtype and exact values. */
    record Tensor(String name, DType type, double[] values) {}

    /** {@code value} rounded to the dtype (to nearest even), as a double. */
    static double round(DType type, double value) {
        return switch (type) {
            case FLOAT64 -> value;
            case FLOAT32 -> (float) value;
            // Through float first: double rounding, but the result is a float16 / bfloat16 value, which is all we need.
            case FLOAT16 -> Float.float16ToFloat(Float.floatToFloat16((float) value));
            case BFLOAT16 -> Float.intBitsToFloat(bfloat16Bits((float) value) << 16);
        };
    }

    static short bfloat16Bits(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16 & 0x8000) | 0x7fc0);
        }
        return (short) ((bits + 0x7fff + (bits >>> 16 & 1)) >>> 16);
    }

    /** A segment of the tensor's dtype holding its values, in {@code arena} (or on the heap if null), misaligned by {@code shift} bytes. */
    static MemorySegment segment(Arena arena, Tensor tensor, int shift) {
        int size = tensor.type().byteSize();
        long bytes = (long) tensor.values().length * size;
        MemorySegment segment = arena == null
                ? MemorySegment.ofArray(new byte[(int) bytes + shift]).asSlice(shift, bytes)
                : arena.allocate(bytes + shift, 64).asSlice(shift, bytes);
        for (int i = 0; i < tensor.values().length; i++) {
            set(segment, tensor.type(), i, tensor.values()[i]);
        }
        return segment;
    }

    static void set(MemorySegment segment, DType type, long i, double value) {
        switch (type) {
            case FLOAT64 -> segment.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i, value);
            case FLOAT32 -> segment.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) value);
            case FLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16((float) value));
            case BFLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, bfloat16Bits((float) value));
        }
    }

    static double get(MemorySegment segment, DType type, long i) {
        return switch (type) {
            case FLOAT64 -> segment.getAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i);
            case FLOAT32 -> segment.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
            case FLOAT16 -> Float.float16ToFloat(segment.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i));
            case BFLOAT16 -> Float.intBitsToFloat(segment.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i) << 16);
        };
    }

    /** The raw bits of element i, for bit-for-bit comparisons. */
    static long bits(MemorySegment segment, DType type, long i) {
        return switch (type) {
            case FLOAT64 -> segment.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i);
            case FLOAT32 -> segment.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i);
            case FLOAT16, BFLOAT16 -> segment.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i);
        };
    }

    static Gradients gradients(Arena arena, List<Tensor> tensors, int shift) {
        Gradients.Builder builder = Gradients.builder();
        for (Tensor t : tensors) {
            builder.add(t.name(), segment(arena, t, shift), t.type());
        }
        return builder.build();
    }

    /** Every tensor's elements, bits, in order: the whole state of a gradient set. */
    static long[] allBits(Gradients grads) {
        List<Long> out = new ArrayList<>();
        for (int t = 0; t < grads.size(); t++) {
            for (long i = 0; i < grads.numel(t); i++) {
                out.add(bits(grads.segment(t), grads.dtype(t), i));
            }
        }
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    /**
     * A random mixed set: magnitudes spread over much of each dtype's range (float64 from 1e-300 to
     * 1e300 when {@code wide}), lengths that hit the lane tails and cross blocks.
     */
    static List<Tensor> mixed(long seed, int tensors, boolean wide) {
        SplittableRandom random = new SplittableRandom(seed);
        List<Tensor> out = new ArrayList<>();
        DType[] types = DType.values();
        for (int t = 0; t < tensors; t++) {
            DType type = types[random.nextInt(types.length)];
            int length = switch (random.nextInt(4)) {
                case 0 -> random.nextInt(0, 80);
                case 1 -> random.nextInt(80, 3000);
                case 2 -> random.nextInt(4096 - 40, 2 * 4096 + 40);
                default -> random.nextInt(1, 40);
            };
            out.add(new Tensor("t" + t + "." + type.name().toLowerCase(), type, values(random, type, length, wide)));
        }
        return out;
    }

    static double[] values(SplittableRandom random, DType type, int length, boolean wide) {
        double[] values = new double[length];
        int decades = switch (type) {
            case FLOAT64 -> wide ? 300 : 30;
            case FLOAT32, BFLOAT16 -> 30;
            case FLOAT16 -> 4;
        };
        for (int i = 0; i < length; i++) {
            double magnitude = Math.pow(10, random.nextInt(-decades, decades + 1)) * random.nextDouble(1, 10);
            if (type == DType.FLOAT16) {
                magnitude = Math.min(Math.pow(10, random.nextInt(-8, 5)) * random.nextDouble(1, 10), 65504);
            }
            values[i] = round(type, random.nextBoolean() ? magnitude : -magnitude);
        }
        return values;
    }

    // ---- exact references ----

    static BigDecimal exactPowerSum(List<Tensor> tensors, int p) {
        BigDecimal sum = BigDecimal.ZERO;
        for (Tensor t : tensors) {
            for (double v : t.values()) {
                sum = sum.add(new BigDecimal(Math.abs(v)).pow(p));
            }
        }
        return sum;
    }

    static BigDecimal exactNorm(List<Tensor> tensors, double p) {
        if (p == Double.POSITIVE_INFINITY) {
            double max = 0;
            for (Tensor t : tensors) {
                for (double v : t.values()) {
                    max = Math.max(max, Math.abs(v));
                }
            }
            return new BigDecimal(max);
        }
        int n = (int) p;
        BigDecimal sum = exactPowerSum(tensors, n);
        return n == 1 ? sum : root(sum, n);
    }

    /** The n-th root to 50 digits: a double estimate from the decimal exponent, then Newton steps. */
    static BigDecimal root(BigDecimal value, int n) {
        if (value.signum() == 0) {
            return BigDecimal.ZERO;
        }
        int exponent = value.precision() - value.scale() - 1; // value ~ m * 10^exponent
        int shift = Math.floorDiv(exponent, n) * n;
        double mantissa = value.movePointLeft(shift).doubleValue();
        BigDecimal x = new BigDecimal(Math.pow(mantissa, 1.0 / n)).movePointRight(shift / n);
        BigDecimal bigN = BigDecimal.valueOf(n);
        for (int step = 0; step < 6; step++) {
            BigDecimal xn1 = x.pow(n - 1, DIGITS_50);
            x = x.subtract(x.multiply(xn1, DIGITS_50).subtract(value).divide(bigN.multiply(xn1), DIGITS_50), DIGITS_50);
        }
        return x;
    }

    /** |got - exact| / exact, or |got| when the exact value is zero. */
    static double relativeError(double got, BigDecimal exact) {
        BigDecimal difference = new BigDecimal(got).subtract(exact).abs();
        return exact.signum() == 0 ? difference.doubleValue() : difference.divide(exact, DIGITS_50).doubleValue();
    }
}
