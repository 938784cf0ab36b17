package dev.gradclip.bench;

import dev.gradclip.internal.Kernels;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Alternatives to the shipped {@code VectorKernels}, kept so that the measurements in RESULTS.md
 * can be re-run ({@link VariantsBenchmark}). Each folds its lanes in a fixed order like the shipped
 * kernel; the sums are what the variant would return, not necessarily the shipped bits.
 */
final class KernelVariants {

    static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_PREFERRED;
    static final VectorSpecies<Float> HALF_FLOATS =
            VectorSpecies.of(float.class, VectorShape.forBitSize(DOUBLES.vectorBitSize() / 2));
    static final VectorSpecies<Float> FULL_FLOATS =
            VectorSpecies.of(float.class, VectorShape.forBitSize(DOUBLES.vectorBitSize()));
    static final int W = DOUBLES.length();
    static final ByteOrder ORDER = ByteOrder.nativeOrder();
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private KernelVariants() {}

    static Kernels named(String name) {
        return switch (name) {
            case "shipped" -> dev.gradclip.internal.KernelProvider.kernels();
            case "fma" -> new Fma();
            case "acc8" -> new EightAccumulators();
            case "fullWidthLoad" -> new FullWidthLoad();
            case "doubleScale" -> new DoubleScale();
            case "intWiden" -> new IntWiden();
            default -> throw new IllegalArgumentException(name);
        };
    }

    static DoubleVector widen(MemorySegment m, long at) {
        return (DoubleVector) FloatVector.fromMemorySegment(HALF_FLOATS, m, at, ORDER).convertShape(VectorOperators.F2D, DOUBLES, 0);
    }

    static double tail(MemorySegment m, long from, int start, int count) {
        double tail = 0;
        for (int k = start; k < count; k++) {
            double x = m.getAtIndex(FLOAT, from + k);
            tail += x * x;
        }
        return tail;
    }

    /** Folds a vector's lanes left to right: a fixed order, though not the shipped halving one. */
    static double fold(DoubleVector v) {
        double s = 0;
        for (int i = 0; i < W; i++) {
            s += v.lane(i);
        }
        return s;
    }

    /** Base: delegates scaling to the shipped kernels. */
    abstract static class Variant implements Kernels {
        final Kernels shipped = dev.gradclip.internal.KernelProvider.kernels();

        @Override
        public void scaleBlock(MemorySegment floats, long from, int count, float c) {
            shipped.scaleBlock(floats, from, count, c);
        }

        @Override
        public double blockSumOfSquares(MemorySegment floats, long from, int count) {
            return shipped.blockSumOfSquares(floats, from, count);
        }

        @Override
        public int logicalLanes() {
            return shipped.logicalLanes();
        }

        @Override
        public String description() {
            return getClass().getSimpleName();
        }
    }

    /** One fused multiply-add per vector instead of a multiply and an add (same bits: squares are exact). */
    static final class Fma extends Variant {
        @Override
        public double blockSumOfSquares(MemorySegment m, long from, int count) {
            long base = from * 4;
            int full = count - count % (4 * W);
            DoubleVector a0 = DoubleVector.zero(DOUBLES), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < full; k += 4 * W) {
                long at = base + 4L * k;
                DoubleVector x0 = widen(m, at), x1 = widen(m, at + 4 * W), x2 = widen(m, at + 8 * W), x3 = widen(m, at + 12 * W);
                a0 = x0.fma(x0, a0);
                a1 = x1.fma(x1, a1);
                a2 = x2.fma(x2, a2);
                a3 = x3.fma(x3, a3);
            }
            return fold(a0.add(a2).add(a1.add(a3))) + tail(m, from, full, count);
        }
    }

    /** Eight accumulators: twice the independent add chains. */
    static final class EightAccumulators extends Variant {
        @Override
        public double blockSumOfSquares(MemorySegment m, long from, int count) {
            long base = from * 4;
            int full = count - count % (8 * W);
            DoubleVector a0 = DoubleVector.zero(DOUBLES), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (int k = 0; k < full; k += 8 * W) {
                long at = base + 4L * k;
                DoubleVector x0 = widen(m, at), x1 = widen(m, at + 4 * W), x2 = widen(m, at + 8 * W), x3 = widen(m, at + 12 * W);
                DoubleVector x4 = widen(m, at + 16 * W), x5 = widen(m, at + 20 * W), x6 = widen(m, at + 24 * W), x7 = widen(m, at + 28 * W);
                a0 = a0.add(x0.mul(x0));
                a1 = a1.add(x1.mul(x1));
                a2 = a2.add(x2.mul(x2));
                a3 = a3.add(x3.mul(x3));
                a4 = a4.add(x4.mul(x4));
                a5 = a5.add(x5.mul(x5));
                a6 = a6.add(x6.mul(x6));
                a7 = a7.add(x7.mul(x7));
            }
            return fold(a0.add(a4).add(a2.add(a6)).add(a1.add(a5).add(a3.add(a7)))) + tail(m, from, full, count);
        }
    }

    /** Full-width float loads, each widened in two halves (two conversions, one lane shuffle). */
    static final class FullWidthLoad extends Variant {
        @Override
        public double blockSumOfSquares(MemorySegment m, long from, int count) {
            long base = from * 4;
            int full = count - count % (4 * W);
            DoubleVector a0 = DoubleVector.zero(DOUBLES), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < full; k += 4 * W) {
                long at = base + 4L * k;
                FloatVector f0 = FloatVector.fromMemorySegment(FULL_FLOATS, m, at, ORDER);
                FloatVector f1 = FloatVector.fromMemorySegment(FULL_FLOATS, m, at + 8 * W, ORDER);
                DoubleVector x0 = (DoubleVector) f0.convertShape(VectorOperators.F2D, DOUBLES, 0);
                DoubleVector x1 = (DoubleVector) f0.convertShape(VectorOperators.F2D, DOUBLES, 1);
                DoubleVector x2 = (DoubleVector) f1.convertShape(VectorOperators.F2D, DOUBLES, 0);
                DoubleVector x3 = (DoubleVector) f1.convertShape(VectorOperators.F2D, DOUBLES, 1);
                a0 = a0.add(x0.mul(x0));
                a1 = a1.add(x1.mul(x1));
                a2 = a2.add(x2.mul(x2));
                a3 = a3.add(x3.mul(x3));
            }
            return fold(a0.add(a2).add(a1.add(a3))) + tail(m, from, full, count);
        }
    }

    /**
     * The former scale pass: widen to double, multiply, narrow, two conversions per element. With a
     * double coefficient it rounds each product once; here it gets the float one, so it measures
     * the cost of the double path and writes the same bits as the shipped float multiply.
     */
    static final class DoubleScale extends Variant {
        @Override
        public void scaleBlock(MemorySegment m, long from, int count, float c) {
            double cd = c;
            long base = from * 4;
            int full = count - count % W;
            for (int k = 0; k < full; k += W) {
                long at = base + 4L * k;
                DoubleVector scaled = widen(m, at).mul(cd);
                ((FloatVector) scaled.convertShape(VectorOperators.D2F, HALF_FLOATS, 0)).intoMemorySegment(m, at, ORDER);
            }
            for (long i = from + full, end = from + count; i < end; i++) {
                m.setAtIndex(FLOAT, i, (float) (m.getAtIndex(FLOAT, i) * cd));
            }
        }
    }

    /**
     * Half the vectors widened by integer ops instead of vcvtps2pd, to use other ports: the float's
     * bits without the sign, shifted into a double's fields, are |x| * 2^-896 exactly (subnormals
     * included), and one multiply restores |x|. Inf and NaN become finite here, so a real kernel
     * would have to recheck blocks whose sum is huge; this variant only measures the speed.
     */
    static final class IntWiden extends Variant {
        static final VectorSpecies<Integer> HALF_INTS =
                VectorSpecies.of(int.class, VectorShape.forBitSize(DOUBLES.vectorBitSize() / 2));
        static final VectorSpecies<Long> LONGS = VectorSpecies.of(long.class, VectorShape.forBitSize(DOUBLES.vectorBitSize()));

        static DoubleVector widenBits(MemorySegment m, long at) {
            LongVector bits = (LongVector) IntVector.fromMemorySegment(HALF_INTS, m, at, ORDER)
                    .convertShape(VectorOperators.I2L, LONGS, 0);
            return bits.lanewise(VectorOperators.LSHL, 33).lanewise(VectorOperators.LSHR, 4)
                    .reinterpretAsDoubles().mul(0x1p896);
        }

        @Override
        public double blockSumOfSquares(MemorySegment m, long from, int count) {
            long base = from * 4;
            int full = count - count % (4 * W);
            DoubleVector a0 = DoubleVector.zero(DOUBLES), a1 = a0, a2 = a0, a3 = a0;
            for (int k = 0; k < full; k += 4 * W) {
                long at = base + 4L * k;
                DoubleVector x0 = widen(m, at), x1 = widenBits(m, at + 4 * W), x2 = widen(m, at + 8 * W), x3 = widenBits(m, at + 12 * W);
                a0 = a0.add(x0.mul(x0));
                a1 = a1.add(x1.mul(x1));
                a2 = a2.add(x2.mul(x2));
                a3 = a3.add(x3.mul(x3));
            }
            return fold(a0.add(a2).add(a1.add(a3))) + tail(m, from, full, count);
        }
    }
}
