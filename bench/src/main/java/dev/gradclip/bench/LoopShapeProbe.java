package dev.gradclip.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Locale;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * How the shape of a vector loop changes its speed on short units: a sum of squares over 124 M
 * floats from DRAM (the accumulators carried throughout, so only the loop structure differs), as units of
 * {@code length} elements each summed by one inner loop, and as the same units in a loop over pieces.
 * The bytes and their order are the same in every line. Units of 512 to 1,024 elements as one inner
 * loop took about twice the time on Zen 5; in pieces, even pieces as long as the unit, they did not,
 * so the cost follows the compiled loop shape, not the trip count. Medians of interleaved rounds,
 * one thread.
 *
 * <pre>java --add-modules=jdk.incubator.vector -cp benchmarks.jar dev.gradclip.bench.LoopShapeProbe [rounds]</pre>
 */
public final class LoopShapeProbe {

    private static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_256;
    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_128;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final long ELEMENTS = 124_000_000L;

    private LoopShapeProbe() {}

    /** Units of {@code length} elements, each one inner loop: the one-loop shape. */
    static double oneLoop(MemorySegment segment, int length) {
        DoubleVector s0 = DoubleVector.zero(DOUBLES), s1 = s0, s2 = s0, s3 = s0;
        for (long start = 0; start + length <= ELEMENTS; start += length) {
            for (int k = 0; k < length; k += 8) {
                long at = (start + k) * Float.BYTES;
                DoubleVector v0 = (DoubleVector) FloatVector.fromMemorySegment(FLOATS, segment, at, ORDER)
                        .convertShape(VectorOperators.F2D, DOUBLES, 0);
                DoubleVector v1 = (DoubleVector) FloatVector.fromMemorySegment(FLOATS, segment, at + 16, ORDER)
                        .convertShape(VectorOperators.F2D, DOUBLES, 0);
                DoubleVector n0 = v0.fma(v0, s0);
                DoubleVector n1 = v1.fma(v1, s1);
                s0 = s2;
                s1 = s3;
                s2 = n0;
                s3 = n1;
            }
        }
        return s0.add(s2).add(s1.add(s3)).lane(0);
    }

    /** The same units, each a loop over pieces of {@code piece} elements. */
    static double pieces(MemorySegment segment, int length, int piece) {
        DoubleVector s0 = DoubleVector.zero(DOUBLES), s1 = s0, s2 = s0, s3 = s0;
        for (long start = 0; start + length <= ELEMENTS; start += length) {
            for (long p = start; p < start + length; p += piece) {
                for (int k = 0; k < piece; k += 8) {
                    long at = (p + k) * Float.BYTES;
                    DoubleVector v0 = (DoubleVector) FloatVector.fromMemorySegment(FLOATS, segment, at, ORDER)
                            .convertShape(VectorOperators.F2D, DOUBLES, 0);
                    DoubleVector v1 = (DoubleVector) FloatVector.fromMemorySegment(FLOATS, segment, at + 16, ORDER)
                            .convertShape(VectorOperators.F2D, DOUBLES, 0);
                    DoubleVector n0 = v0.fma(v0, s0);
                    DoubleVector n1 = v1.fma(v1, s1);
                    s0 = s2;
                    s1 = s3;
                    s2 = n0;
                    s3 = n1;
                }
            }
        }
        return s0.add(s2).add(s1.add(s3)).lane(0);
    }

    public static void main(String[] args) {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 7;
        int[][] cases = {{256, 0}, {512, 0}, {768, 0}, {1024, 0}, {2048, 0}, {4096, 0}, {768, 256}, {4096, 256}, {512, 512}, {768, 768}};
        double[][] times = new double[cases.length][rounds];
        double sink = 0;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment segment = arena.allocate(ELEMENTS * Float.BYTES, 64);
            // A shared arena, as the benchmarks' models use.
            for (long i = 0; i < ELEMENTS; i++) {
                segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (i % 7));
            }
            for (int r = -3; r < rounds; r++) { // three warm-up rounds
                for (int c = 0; c < cases.length; c++) {
                    long start = System.nanoTime();
                    sink += cases[c][1] == 0 ? oneLoop(segment, cases[c][0]) : pieces(segment, cases[c][0], cases[c][1]);
                    if (r >= 0) {
                        times[c][r] = (System.nanoTime() - start) / 1e6;
                    }
                }
            }
        }
        for (int c = 0; c < cases.length; c++) {
            Arrays.sort(times[c]);
            System.out.printf(Locale.ROOT, "units of %5d, %s: median %7.2f ms%n", cases[c][0],
                    cases[c][1] == 0 ? "one inner loop each " : "in pieces of " + cases[c][1], times[c][rounds / 2]);
        }
        System.out.print(sink == 42 ? "\n" : "");
    }
}
