package dev.gradclip.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Locale;
import java.util.SplittableRandom;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Ways to widen bfloat16 for its sum of squares (docs/performance.md, section "Half-width loads"). Each squares every
 * element exactly in double, so the sums agree to rounding (each is checked against the full-width form
 * to 1e-12, relative; the half-width form adds in another order); only the cost differs:
 * <ul>
 *   <li>a full-width load: 16 elements as 8 ints, each half moved into a float's place, and each
 *       vector of 8 floats converted to doubles in two parts, the upper one extracted first (the 0.2
 *       norm loop);</li>
 *   <li>half-width loads: 8 elements as 4 ints, each half converted at once, into 8 accumulators
 *       rotating by two (the norm loop now);</li>
 *   <li>integer widening (did not pay): the pairs zero-extended to longs, each half's magnitude shifted
 *       into a double's fields, which gives the value times 2^-896 for normal and subnormal numbers
 *       alike, then one exact multiply by 2^896;</li>
 *   <li>for scale, no widening: the squares summed in float (not exact, not shippable).</li>
 * </ul>
 *
 * <pre>for v in full-width half-width integer float; do
 *   java --add-modules=jdk.incubator.vector -cp benchmarks.jar dev.gradclip.bench.WideningProbe $v [elements [rounds]]; done</pre>
 */
public final class WideningProbe {
    static final VectorSpecies<Integer> I8 = IntVector.SPECIES_256;
    static final VectorSpecies<Integer> I4 = IntVector.SPECIES_128;
    static final VectorSpecies<Double> D4 = DoubleVector.SPECIES_256;
    static final VectorSpecies<Long> L4 = LongVector.SPECIES_256;
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    /**
     * One 128-bit load per 8 elements, each half widened by one conversion, into 8 accumulators that
     * rotate by two: the shape of the norm loop now.
     */
    static double halfWidth(MemorySegment s, int n) {
        DoubleVector a0 = DoubleVector.zero(D4), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (int k = 0; k < n; k += 8) {
            IntVector p = IntVector.fromMemorySegment(I4, s, k * 2L, LE);
            DoubleVector v0 = (DoubleVector) p.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                    .convertShape(VectorOperators.F2D, D4, 0);
            DoubleVector v1 = (DoubleVector) p.and(0xffff0000).reinterpretAsFloats().convertShape(VectorOperators.F2D, D4, 0);
            DoubleVector n0 = v0.fma(v0, a0);
            DoubleVector n1 = v1.fma(v1, a1);
            a0 = a2; a1 = a3; a2 = a4; a3 = a5; a4 = a6; a5 = a7; a6 = n0; a7 = n1;
        }
        return a0.add(a1).add(a2.add(a3)).add(a4.add(a5).add(a6.add(a7))).reduceLanes(VectorOperators.ADD);
    }

    /** One 256-bit load per 16 elements, the upper half of each widened vector extracted before its conversion: the 0.2 loop. */
    static double conversion(MemorySegment s, int n) {
        DoubleVector a0 = DoubleVector.zero(D4), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < n; k += 16) {
            IntVector p = IntVector.fromMemorySegment(I8, s, k * 2L, LE);
            FloatVector lo = p.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector hi = p.and(0xffff0000).reinterpretAsFloats();
            DoubleVector v0 = (DoubleVector) lo.convertShape(VectorOperators.F2D, D4, 0);
            DoubleVector v1 = (DoubleVector) lo.convertShape(VectorOperators.F2D, D4, 1);
            DoubleVector v2 = (DoubleVector) hi.convertShape(VectorOperators.F2D, D4, 0);
            DoubleVector v3 = (DoubleVector) hi.convertShape(VectorOperators.F2D, D4, 1);
            a0 = v0.fma(v0, a0); a1 = v1.fma(v1, a1); a2 = v2.fma(v2, a2); a3 = v3.fma(v3, a3);
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }

    /**
     * No widening at all: the squares summed in float (not exact, not shipped): what the loop would cost
     * without the conversions, for scale.
     */
    static double floats(MemorySegment s, int n) {
        FloatVector a0 = FloatVector.zero(FloatVector.SPECIES_256), a1 = a0;
        for (int k = 0; k < n; k += 16) {
            IntVector p = IntVector.fromMemorySegment(I8, s, k * 2L, LE);
            FloatVector lo = p.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector hi = p.and(0xffff0000).reinterpretAsFloats();
            a0 = lo.fma(lo, a0);
            a1 = hi.fma(hi, a1);
        }
        return a0.add(a1).reduceLanes(VectorOperators.ADD);
    }

    /** A bfloat16 magnitude shifted into a double's fields is its value times 2^(127 - 1023). */
    static final double REBIAS = 0x1p896;

    static double integer(MemorySegment s, int n) {
        DoubleVector a0 = DoubleVector.zero(D4), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < n; k += 16) {
            IntVector p = IntVector.fromMemorySegment(I8, s, k * 2L, LE);
            LongVector q0 = (LongVector) p.convertShape(VectorOperators.ZERO_EXTEND_I2L, L4, 0);
            LongVector q1 = (LongVector) p.convertShape(VectorOperators.ZERO_EXTEND_I2L, L4, 1);
            DoubleVector v0 = q0.and(0x7fffL).lanewise(VectorOperators.LSHL, 45).reinterpretAsDoubles().mul(REBIAS);
            DoubleVector v1 = q1.and(0x7fffL).lanewise(VectorOperators.LSHL, 45).reinterpretAsDoubles().mul(REBIAS);
            DoubleVector v2 = q0.and(0x7fff0000L).lanewise(VectorOperators.LSHL, 29).reinterpretAsDoubles().mul(REBIAS);
            DoubleVector v3 = q1.and(0x7fff0000L).lanewise(VectorOperators.LSHL, 29).reinterpretAsDoubles().mul(REBIAS);
            a0 = v0.fma(v0, a0); a1 = v1.fma(v1, a1); a2 = v2.fma(v2, a2); a3 = v3.fma(v3, a3);
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }

    private WideningProbe() {}

    public static void main(String[] args) {
        String variant = args[0];
        int n = Integer.parseInt(args.length > 1 ? args[1] : "65536") & ~15; // the loops take 16 elements a step
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 25;
        MemorySegment s = Arena.global().allocate(n * 2L, 64);
        SplittableRandom r = new SplittableRandom(1);
        for (int i = 0; i < n; i++) {
            float value = (float) (r.nextDouble() * 2 - 1);
            s.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(value) >>> 16));
        }
        // One loop per JVM, so that each is compiled alone (a call site that had seen all four loops
        // compiled some of them boxing their vectors, 2-4x slower in cache).
        Loop loop = switch (variant) {
            case "full-width" -> WideningProbe::conversion;
            case "half-width" -> WideningProbe::halfWidth;
            case "integer" -> WideningProbe::integer;
            case "float" -> WideningProbe::floats;
            default -> throw new IllegalArgumentException("full-width, half-width, integer or float");
        };
        double expected = conversion(s, n);
        double got = loop.sum(s, n);
        if (!variant.equals("float") && Math.abs(got - expected) > 1e-12 * expected) {
            throw new AssertionError(variant + " gives " + got + ", the full-width loop " + expected);
        }
        int reps = Math.max(1, (1 << 26) / n);
        double sink = 0; // every result feeds it, and it is printed, so no loop is dead code
        double[] nanos = new double[rounds];
        for (int round = -5; round < rounds; round++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < reps; i++) {
                sink += loop.sum(s, n);
            }
            if (round >= 0) {
                nanos[round] = (System.nanoTime() - t0) / (double) reps / n;
            }
        }
        java.util.Arrays.sort(nanos);
        System.out.printf(Locale.ROOT, "%s n=%d: median %.3f ns/element (p25 %.3f, p75 %.3f; sum %s)%n", variant, n,
                nanos[rounds / 2], nanos[rounds / 4], nanos[3 * rounds / 4], sink);
    }

    /** One of the loops above. */
    private interface Loop {
        double sum(MemorySegment segment, int elements);
    }
}
