package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.internal.Engine;
import dev.gradclip.internal.KernelProvider;
import dev.gradclip.internal.UnitClipping;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Adaptive gradient clipping against timm's formula unit by unit, with exact (BigDecimal) unit norms
 * as the reference: every dtype, units that cross blocks, empty and scalar tensors, non-finite
 * units, the same bits for any thread count, no allocation after warm-up, and bad input.
 */
class AdaptiveGradClipTest {

    private static final MathContext DIGITS = new MathContext(40);

    /** Shapes that hit one-unit tensors, small units, units crossing a 4096-element block, empty and scalar tensors. */
    private static final long[][] SHAPES = {
        {4, 300}, {3, 5, 7}, {1000}, {0, 5}, {5, 0}, {}, {2, 4096 + 9}, {1, 3}, {17, 1}, {0}, {2, 2, 2, 2},
    };

    /** One tensor pair: its shape and the exact values of its gradients and parameters. */
    private record Pair(long[] shape, DType gradType, double[] grads, DType paramType, double[] params) {
        int units() {
            if (grads.length == 0) {
                return 0;
            }
            return shape.length < 2 ? 1 : (int) shape[0];
        }
    }

    /**
     * Pairs whose units sit at different ratios of gradient to parameter norm, around the clip
     * factor 0.01: units far above, far below, with zero parameters (the eps bound), and with a NaN
     * or an infinite gradient.
     */
    private static List<Pair> pairs(long seed, DType gradType, DType paramType) {
        SplittableRandom random = new SplittableRandom(seed);
        List<Pair> pairs = new ArrayList<>();
        for (long[] shape : SHAPES) {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            int units = n == 0 ? 0 : shape.length < 2 ? 1 : (int) shape[0];
            int length = units == 0 ? 0 : (int) (n / units);
            double[] g = new double[(int) n];
            double[] p = new double[(int) n];
            for (int u = 0; u < units; u++) {
                int kind = random.nextInt(6);
                double gradScale = switch (kind) {
                    case 0, 1 -> 0.1; // far above the bound 0.01 * |W|
                    case 2, 3 -> 1e-4; // far below
                    default -> 0.02;
                };
                for (int k = 0; k < length; k++) {
                    int i = u * length + k;
                    p[i] = Tensors.round(paramType, kind == 4 ? 0 : random.nextDouble(-1, 1));
                    g[i] = Tensors.round(gradType, gradScale * random.nextDouble(-1, 1));
                }
                if (kind == 5 && length > 0) {
                    g[u * length + random.nextInt(length)] = random.nextBoolean() ? Double.NaN : Double.NEGATIVE_INFINITY;
                }
            }
            pairs.add(new Pair(shape, gradType, g, paramType, p));
        }
        return pairs;
    }

    private static Gradients set(Arena arena, List<Pair> pairs, boolean ofGrads) {
        Gradients.Builder builder = Gradients.builder();
        for (int t = 0; t < pairs.size(); t++) {
            Pair pair = pairs.get(t);
            DType type = ofGrads ? pair.gradType() : pair.paramType();
            double[] values = ofGrads ? pair.grads() : pair.params();
            MemorySegment segment = Tensors.segment(arena, new Tensors.Tensor("t" + t, type, values), t % 3);
            builder.add("layer" + t + ".weight", segment, type, pair.shape());
        }
        return builder.build();
    }

    private static BigDecimal exactNorm(double[] values, int from, int to) {
        BigDecimal sum = BigDecimal.ZERO;
        for (int i = from; i < to; i++) {
            BigDecimal v = new BigDecimal(values[i]);
            sum = sum.add(v.multiply(v));
        }
        return sum.sqrt(DIGITS);
    }

    /** The spacing of the dtype's values at {@code x}: one unit in the last place. */
    private static double ulp(DType type, double x) {
        return switch (type) {
            case FLOAT64 -> Math.ulp(x);
            case FLOAT32 -> Math.ulp((float) x);
            case FLOAT16 -> Math.scalb(1.0, Math.max(Math.getExponent(x), -14) - 10);
            case BFLOAT16 -> Math.scalb(1.0, Math.max(Math.getExponent(x), -126) - 7);
        };
    }

    /**
     * timm's rule with exact norms: returns the number of units that clip, and checks every element
     * of {@code grads} against it: the bits of a unit that keeps them, the rounded product within one
     * ulp of the dtype (float64: 1e-13 relative, the norm's error moving the factor) for one that clips.
     */
    private static int checkAgainstTimm(List<Pair> pairs, long[][] before, Gradients grads, double clipFactor, double eps) {
        int clipped = 0;
        for (int t = 0; t < pairs.size(); t++) {
            Pair pair = pairs.get(t);
            MemorySegment segment = grads.segment(t);
            int units = pair.units();
            int length = units == 0 ? 0 : pair.grads().length / units;
            for (int u = 0; u < units; u++) {
                int from = u * length;
                int to = from + length;
                boolean finite = Arrays.stream(pair.grads(), from, to).allMatch(Double::isFinite);
                double gradNorm = finite ? exactNorm(pair.grads(), from, to).doubleValue() : Double.NaN;
                double bound = clipFactor * Math.max(exactNorm(pair.params(), from, to).doubleValue(), eps);
                boolean clips = finite && gradNorm >= bound;
                assertTrue(!finite || Math.abs(gradNorm - bound) > 1e-10 * bound, "a unit on its bound: the test data is ambiguous");
                clipped += clips ? 1 : 0;
                double c = bound / Math.max(gradNorm, UnitClipping.GRAD_NORM_FLOOR);
                for (int i = from; i < to; i++) {
                    String where = pair.gradType() + " tensor " + t + " unit " + u + " element " + (i - from);
                    if (!clips) {
                        assertEquals(before[t][i], Tensors.bits(segment, pair.gradType(), i), where);
                        continue;
                    }
                    double exact = pair.grads()[i] * c;
                    double got = Tensors.get(segment, pair.gradType(), i);
                    double tolerance = pair.gradType() == DType.FLOAT64 ? 1e-13 * Math.abs(exact) : ulp(pair.gradType(), exact);
                    assertTrue(Math.abs(got - exact) <= tolerance, where + ": " + got + " vs " + exact);
                }
            }
        }
        return clipped;
    }

    private static long[][] bits(Gradients grads) {
        long[][] bits = new long[grads.size()][];
        for (int t = 0; t < grads.size(); t++) {
            bits[t] = new long[(int) grads.numel(t)];
            for (int i = 0; i < bits[t].length; i++) {
                bits[t][i] = Tensors.bits(grads.segment(t), grads.dtype(t), i);
            }
        }
        return bits;
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void everyUnitFollowsTimmsRuleWithExactNorms(DType type) {
        for (long seed = 1; seed <= 3; seed++) {
            List<Pair> pairs = pairs(seed, type, type);
            try (Arena arena = Arena.ofConfined()) {
                Gradients grads = set(arena, pairs, true);
                Gradients params = set(arena, pairs, false);
                long[][] before = bits(grads);
                int clipped = GradClip.adaptiveGradClip(grads, params, 0.01, 1e-3);
                assertEquals(checkAgainstTimm(pairs, before, grads, 0.01, 1e-3), clipped, type + ", seed " + seed);
                assertTrue(clipped > 0, "some units clip");
            }
        }
    }

    @Test
    void gradientsAndParametersMayHaveDifferentDtypes() {
        List<Pair> pairs = pairs(4, DType.BFLOAT16, DType.FLOAT32);
        pairs.addAll(pairs(5, DType.FLOAT16, DType.FLOAT64));
        Gradients grads = set(null, pairs, true);
        Gradients params = set(null, pairs, false);
        long[][] before = bits(grads);
        int clipped = GradClip.adaptiveGradClip(grads, params, 0.01, 1e-3);
        assertEquals(checkAgainstTimm(pairs, before, grads, 0.01, 1e-3), clipped);
    }

    /**
     * Exact norms make the bound exact here: ‖[3, 4]‖ = 5 = 0.05 · ‖[60, 80]‖ clips (factor 1: no bit
     * changes), the row with 4 one float below does not; with the factor 0.0499 both clip.
     */
    @Test
    void aUnitExactlyOnItsBoundClipsAndOneJustBelowDoesNot() {
        float[] g = {3, 4, 3, Math.nextDown(4f)};
        float[] p = {60, 80, 60, 80};
        Gradients grads = Gradients.builder().add("w", MemorySegment.ofArray(g), DType.FLOAT32, 2, 2).build();
        Gradients params = Gradients.builder().add("w", MemorySegment.ofArray(p), DType.FLOAT32, 2, 2).build();
        assertEquals(1, GradClip.adaptiveGradClip(grads, params, 0.05, 1e-3));
        assertArrayEquals(new float[] {3, 4, 3, Math.nextDown(4f)}, g);
        assertEquals(2, GradClip.adaptiveGradClip(grads, params, 0.0499, 1e-3));
        assertEquals((float) (3 * (4.99 / 5)), g[0]);
        assertTrue(g[3] < Math.nextDown(4f));
    }

    @Test
    void theEpsBoundAppliesToZeroParametersAndEmptyTensorsHaveNoUnits() {
        float[] g = {0.3f, 0.4f};
        float[] empty = {};
        Gradients grads = Gradients.builder().add("bias", MemorySegment.ofArray(g), DType.FLOAT32)
                .add("none", MemorySegment.ofArray(empty), DType.FLOAT32, 0, 8).build();
        Gradients params = Gradients.builder().add("bias", MemorySegment.ofArray(new float[2]), DType.FLOAT32)
                .add("none", MemorySegment.ofArray(new float[0]), DType.FLOAT32, 0, 8).build();
        assertEquals(1, GradClip.adaptiveGradClip(grads, params, 0.01, 1e-3));
        assertEquals(0.3 * 1e-5 / 0.5, g[0], 1e-12);
        assertEquals(0.4 * 1e-5 / 0.5, g[1], 1e-12);
    }

    /** The engine split into 1 to 4 chunks, at any size: the same bits and count as the one-thread call. */
    @Test
    void theBitsAreTheSameForAnyThreadCount() {
        List<Pair> pairs = new ArrayList<>();
        for (DType type : DType.values()) {
            pairs.addAll(pairs(9, type, DType.FLOAT32));
        }
        long[] expected = null;
        int expectedCount = -1;
        try (Arena arena = Arena.ofShared()) {
            for (int threads = 1; threads <= 4; threads++) {
                Gradients grads = set(arena, pairs, true);
                Gradients params = set(arena, pairs, false);
                GradClip.adaptiveGradClip(grads, params, 1e9, 1e-3); // builds the plan; a factor that clips nothing
                try (Engine engine = new Engine(KernelProvider.kernels(), threads, 0)) {
                    int count = UnitClipping.clip(engine, grads.unitPlan(), grads.table(), 0.01, 1e-3);
                    long[] bits = Tensors.allBits(grads);
                    if (expected == null) {
                        expected = bits;
                        expectedCount = count;
                    }
                    assertEquals(expectedCount, count, threads + " threads");
                    assertArrayEquals(expected, bits, threads + " threads");
                }
            }
            Gradients grads = set(arena, pairs, true);
            assertEquals(expectedCount, GradClip.adaptiveGradClip(grads, set(arena, pairs, false), 0.01, 1e-3));
            assertArrayEquals(expected, Tensors.allBits(grads), "the shared engine");
        }
    }

    /**
     * A call with a read-only gradient tensor (whose units all stay under their bounds) computes every
     * factor before it writes, then scales in a pass of its own; a call with every tensor writable
     * scales each run as it goes. Both give the same count and the same bits in every tensor, on 1 to
     * 4 threads and on the shared pool.
     */
    @Test
    void scalingAsItGoesAndInAPassOfItsOwnGiveTheSameBits() {
        List<Pair> pairs = new ArrayList<>();
        for (DType type : DType.values()) {
            pairs.addAll(pairs(10, type, DType.FLOAT32));
        }
        SplittableRandom random = new SplittableRandom(11);
        int n = 3 * 50;
        pairs.add(new Pair(new long[] {3, 50}, DType.FLOAT32, random.doubles(n, -1e-6, 1e-6).map(x -> Tensors.round(DType.FLOAT32, x)).toArray(),
                DType.FLOAT32, random.doubles(n, -1, 1).map(x -> Tensors.round(DType.FLOAT32, x)).toArray()));
        int last = pairs.size() - 1;
        try (Arena arena = Arena.ofShared()) {
            Gradients params = set(arena, pairs, false);
            Gradients reference = set(arena, pairs, true);
            int expected = GradClip.adaptiveGradClip(reference, params, 0.01, 1e-3);
            assertTrue(expected > 0, "units clip");
            long[] expectedBits = Tensors.allBits(reference);
            for (int threads = 0; threads <= 4; threads++) { // 0: the shared pool
                for (boolean readOnly : new boolean[] {false, true}) {
                    Gradients.Builder builder = Gradients.builder();
                    Gradients copy = set(arena, pairs, true);
                    for (int t = 0; t <= last; t++) {
                        MemorySegment segment = readOnly && t == last ? copy.segment(t).asReadOnly() : copy.segment(t);
                        builder.add(copy.name(t), segment, copy.dtype(t), copy.shape(t));
                    }
                    Gradients grads = builder.build();
                    String where = (threads == 0 ? "the shared pool" : threads + " threads") + (readOnly ? ", a read-only tensor" : "");
                    int count;
                    if (threads == 0) {
                        count = GradClip.adaptiveGradClip(grads, params, 0.01, 1e-3);
                    } else {
                        GradClip.adaptiveGradClip(grads, params, 1e9, 1e-3); // builds the plan; clips nothing
                        try (Engine engine = new Engine(KernelProvider.kernels(), threads, 0)) {
                            count = UnitClipping.clip(engine, grads.unitPlan(), grads.table(), 0.01, 1e-3);
                        }
                    }
                    assertEquals(expected, count, where);
                    assertArrayEquals(expectedBits, Tensors.allBits(grads), where);
                }
            }
            assertArrayEquals(Tensors.allBits(set(arena, pairs.subList(last, last + 1), true)),
                    Tensors.allBits(Gradients.of(DType.FLOAT32, List.of(reference.segment(last)))), "the tensor under its bounds");
        }
    }

    /** The norms the decision uses are, bit for bit, each slice's norm as a tensor of its own. */
    @Test
    void aUnitsNormIsTheNormOfItsSliceAlone() {
        List<Pair> pairs = new ArrayList<>();
        for (DType type : DType.values()) {
            pairs.addAll(pairs(12, type, type));
        }
        Gradients grads = set(null, pairs, true);
        Gradients params = set(null, pairs, false);
        GradClip.adaptiveGradClip(grads, params, 1e9, 1e-3); // builds the plan, clips nothing
        try (Engine engine = new Engine(KernelProvider.kernels(), 2, 0)) {
            assertEquals(0, UnitClipping.clip(engine, grads.unitPlan(), grads.table(), 1e9, 1e-3));
            int unit = 0;
            for (int t = 0; t < pairs.size(); t++) {
                int units = pairs.get(t).units();
                for (int u = 0; u < units; u++, unit++) {
                    for (Gradients set : List.of(grads, params)) {
                        long bytes = set.segment(t).byteSize() / units;
                        double alone = GradClip.totalNorm(Gradients.of(set.dtype(t), List.of(set.segment(t).asSlice(u * bytes, bytes))));
                        // The plan's entries: tensor by tensor, its gradient units, then its parameter units.
                        int first = unit - u;
                        double inPlan = grads.unitPlan().norm(2 * first + (set == grads ? u : units + u));
                        assertEquals(Double.doubleToRawLongBits(alone), Double.doubleToRawLongBits(inPlan),
                                set.dtype(t) + " tensor " + t + " unit " + u);
                    }
                }
            }
            assertEquals(grads.unitPlan().units(), unit);
        }
    }

    @Test
    void badInputThrowsNamingTheArgumentAndTheTensorAndWritesNothing() {
        List<Pair> pairs = pairs(2, DType.FLOAT32, DType.FLOAT32);
        Gradients grads = set(null, pairs, true);
        Gradients params = set(null, pairs, false);
        long[] before = Tensors.allBits(grads);
        for (double bad : new double[] {0, -1, Double.NaN, Double.POSITIVE_INFINITY}) {
            assertRejected("clipFactor", () -> GradClip.adaptiveGradClip(grads, params, bad, 1e-3));
        }
        for (double bad : new double[] {-1e-9, Double.NaN, Double.POSITIVE_INFINITY}) {
            assertRejected("eps", () -> GradClip.adaptiveGradClip(grads, params, 0.01, bad));
        }
        Gradients fewer = Gradients.builder().add("w", MemorySegment.ofArray(new float[4]), DType.FLOAT32).build();
        assertRejected("grads has " + pairs.size() + " tensors but params has 1", () -> GradClip.adaptiveGradClip(grads, fewer, 0.01, 1e-3));
        Gradients.Builder reshaped = Gradients.builder();
        for (int t = 0; t < pairs.size(); t++) {
            long[] shape = pairs.get(t).shape();
            reshaped.add(params.name(t), params.segment(t), DType.FLOAT32,
                    t == 0 ? new long[] {shape[1], shape[0]} : shape);
        }
        assertRejected("\"layer0.weight\" (grads[0]) has shape [4, 300] but \"layer0.weight\" (params[0]) has shape [300, 4]",
                () -> GradClip.adaptiveGradClip(grads, reshaped.build(), 0.01, 1e-3));
        assertRejected("overlap", () -> GradClip.adaptiveGradClip(grads, grads, 0.01, 1e-3));
        assertThrows(NullPointerException.class, () -> GradClip.adaptiveGradClip(null, params, 0.01, 1e-3));
        assertThrows(NullPointerException.class, () -> GradClip.adaptiveGradClip(grads, null, 0.01, 1e-3));
        assertArrayEquals(before, Tensors.allBits(grads));

        // A read-only tensor late in the set with a unit to scale: nothing written anywhere, the earlier tensors included.
        Gradients.Builder frozen = Gradients.builder();
        for (int t = 0; t < pairs.size(); t++) {
            MemorySegment segment = t == 6 ? grads.segment(t).asReadOnly() : grads.segment(t);
            frozen.add(grads.name(t), segment, DType.FLOAT32, pairs.get(t).shape());
        }
        assertRejected("\"layer6.weight\" (grads[6]) is read-only but its unit",
                () -> GradClip.adaptiveGradClip(frozen.build(), params, 0.01, 1e-3));
        assertArrayEquals(before, Tensors.allBits(grads));
        assertEquals(0, GradClip.adaptiveGradClip(frozen.build(), params, 1e9, 1e-3), "read-only is fine when nothing clips");

        Arena arena = Arena.ofConfined();
        Gradients closed = set(arena, pairs, true);
        arena.close();
        assertThrows(IllegalStateException.class, () -> GradClip.adaptiveGradClip(closed, params, 0.01, 1e-3));
    }

    @Test
    void shapesAreCheckedWhenTheSetIsBuilt() {
        MemorySegment six = MemorySegment.ofArray(new float[6]);
        assertRejected("\"w\" (grads[1]) has 6 elements, but its shape [2, 4] has 8",
                () -> Gradients.builder().add("v", MemorySegment.ofArray(new float[1]), DType.FLOAT32).add("w", six, DType.FLOAT32, 2, 4).build());
        assertRejected("dimension 0 is negative", () -> Gradients.builder().add("w", six, DType.FLOAT32, -2, -3).build());
        assertRejected("overflows", () -> Gradients.builder().add("w", six, DType.FLOAT32, 1L << 40, 1L << 40).build());
        assertThrows(NullPointerException.class, () -> Gradients.builder().add("w", six, DType.FLOAT32, (long[]) null));
        Gradients ok = Gradients.builder().add("w", six, DType.FLOAT32, 2, 3).add("s", MemorySegment.ofArray(new float[1]),
                DType.FLOAT32, new long[0]).add("v", MemorySegment.ofArray(new float[6]), DType.FLOAT32).add("z", MemorySegment.ofArray(new float[0]),
                DType.FLOAT32, 1L << 40, 0, 1L << 40).build();
        assertArrayEquals(new long[] {2, 3}, ok.shape(0));
        assertArrayEquals(new long[] {}, ok.shape(1));
        assertArrayEquals(new long[] {6}, ok.shape(2));
        assertArrayEquals(new long[] {6}, Gradients.of(new float[6]).shape(0));
    }

    private static void assertRejected(String fragment, Runnable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call::run);
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    /**
     * After warm-up a call allocates nothing, on the caller or the shared pool's workers: two rounds
     * of 200 calls in a row allocate no byte. 1.5 MB of float32 across 45 tensors of several shapes, so that
     * the pool's threads take part. Each call restores the gradients first, so every call clips.
     */
    @Test
    void aCallAllocatesNothingAfterWarmUp() {
        try (Arena arena = Arena.ofShared()) {
            List<Pair> pairs = new ArrayList<>();
            for (int k = 0; k < 4; k++) {
                pairs.addAll(pairs(20 + k, DType.FLOAT32, DType.FLOAT32));
            }
            pairs.add(new Pair(new long[] {200, 768}, DType.FLOAT32, new SplittableRandom(1).doubles(200 * 768, -1, 1).toArray(),
                    DType.FLOAT32, new SplittableRandom(2).doubles(200 * 768, -10, 10).toArray()));
            Gradients grads = set(arena, pairs, true);
            Gradients params = set(arena, pairs, false);
            Gradients backup = set(arena, pairs, true);
            Runnable call = () -> {
                for (int t = 0; t < grads.size(); t++) {
                    MemorySegment.copy(backup.segment(t), 0, grads.segment(t), 0, grads.segment(t).byteSize());
                }
                assertTrue(GradClip.adaptiveGradClip(grads, params, 0.01, 1e-3) > 0);
            };
            for (int i = 0; i < 400; i++) {
                call.run();
            }
            long[] workers = Thread.getAllStackTraces().keySet().stream()
                    .filter(t -> t.getName().startsWith("gradclip-worker-") && t.isAlive())
                    .mapToLong(Thread::threadId).toArray();
            assertTrue(workers.length > 0, "the shared pool runs");
            // Until C2 has compiled every loop copy, which a loaded machine delays, and now and then
            // after that, the JVM allocates a few bytes of its own (64 to 1,520 under load, at the
            // entry of methods such as Gradients.segment). Two rounds of 200 calls in a row must
            // allocate nothing: an allocation once in a few hundred calls or more often would fail.
            long[] rounds = new long[40];
            int round = 0;
            do {
                rounds[round] = allocated(call, 200, workers);
                round++;
            } while (round < rounds.length && !(round >= 2 && rounds[round - 1] == 0 && rounds[round - 2] == 0));
            assertTrue(round >= 2 && rounds[round - 1] == 0 && rounds[round - 2] == 0,
                    "bytes allocated in each round of 200 calls: " + Arrays.toString(Arrays.copyOf(rounds, round)));
        }
    }

    /** Bytes allocated over {@code calls} calls by this thread and the workers. */
    private static long allocated(Runnable call, int calls, long[] workers) {
        long workersBefore = sum(THREADS.getThreadAllocatedBytes(workers));
        long before = THREADS.getCurrentThreadAllocatedBytes();
        for (int i = 0; i < calls; i++) {
            call.run();
        }
        return THREADS.getCurrentThreadAllocatedBytes() - before + sum(THREADS.getThreadAllocatedBytes(workers)) - workersBefore;
    }

    private static long sum(long[] values) {
        long sum = 0;
        for (long v : values) {
            sum += Math.max(0, v);
        }
        return sum;
    }
}
