package dev.gradclip;

import dev.gradclip.testing.ShardedGrads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Example;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.LongRange;

/**
 * The all-reduce hook's contract, through the in-process engine: however the tensors are split
 * across 1 to 8 participants (threads), every participant gets the unsplit clip's norm bits, and
 * the clipped shards together equal the unsplit clip, bit for bit; non-finite values and broken
 * hooks fail the same way on every participant, and nothing is written.
 */
class ShardedClipTest {

    private static final double[] NORM_TYPES = {1, 2, Double.POSITIVE_INFINITY};
    private static final int TENSORS = 14;

    /** What each participant saw: its norm's bits, or the exception it got. */
    private record Outcome(long normBits, RuntimeException error) {}

    /** Bytes of each segment. */
    private static List<byte[]> snapshot(List<MemorySegment> segments) {
        List<byte[]> bytes = new ArrayList<>();
        for (MemorySegment segment : segments) {
            bytes.add(segment.toArray(ValueLayout.JAVA_BYTE));
        }
        return bytes;
    }

    /**
     * Clips each participant's shard with its own Clipper over one shared hook, on its own thread, and
     * returns the outcomes. {@code shards.get(p)} are participant p's segments (tensors {@code which.get(p)}).
     */
    private static List<Outcome> clipSharded(List<ShardedGrads.Tensor> tensors, List<List<Integer>> which,
            List<List<MemorySegment>> shards, List<Clipper.Builder> builders, AllReduce hook) throws InterruptedException {
        List<Object> results = InProcessAllReduceTest.runAll(which.size(), p -> {
            Gradients grads = ShardedGrads.gradients(tensors, which.get(p), shards.get(p));
            GradReport report = new GradReport(grads);
            double norm;
            try (Clipper clipper = builders.get(p).allReduce(hook).build()) {
                norm = clipper.clip(grads, report);
            }
            // The report holds the global norm too, whatever this participant's own tensors are.
            assertEquals(Double.doubleToRawLongBits(norm), Double.doubleToRawLongBits(report.totalNorm()));
            return Double.doubleToRawLongBits(norm);
        });
        List<Outcome> outcomes = new ArrayList<>();
        for (Object result : results) {
            if (result instanceof Long bits) {
                outcomes.add(new Outcome(bits, null));
            } else if (result instanceof RuntimeException e) {
                outcomes.add(new Outcome(0, e));
            } else {
                throw new AssertionError("participant failed", (Throwable) result);
            }
        }
        return outcomes;
    }

    private static double clipOnce(Clipper.Builder builder, Gradients grads) {
        try (Clipper clipper = builder.build()) {
            return clipper.clip(grads);
        }
    }

    private static List<List<Integer>> shardIndices(long seed, int participants) {
        int[] owner = ShardedGrads.split(seed, TENSORS, participants);
        List<List<Integer>> which = new ArrayList<>();
        for (int p = 0; p < participants; p++) {
            which.add(ShardedGrads.shardOf(owner, p, seed));
        }
        return which;
    }

    private static List<Clipper.Builder> builders(int participants, double maxNorm, double normType, NonFinite policy) {
        List<Clipper.Builder> builders = new ArrayList<>();
        for (int p = 0; p < participants; p++) {
            builders.add(Clipper.builder().maxNorm(maxNorm).normType(normType).nonFinite(policy));
        }
        return builders;
    }

    @Property(tries = 60)
    void everyParticipantGetsTheUnsplitNormBitsAndTheShardsTheUnsplitClip(
            @ForAll @IntRange(min = 1, max = 8) int participants, @ForAll @IntRange(min = 0, max = 2) int normTypeIndex,
            @ForAll @LongRange(min = 0, max = 1_000_000) long seed, @ForAll boolean clips) throws InterruptedException {
        double normType = NORM_TYPES[normTypeIndex];
        List<ShardedGrads.Tensor> tensors = ShardedGrads.tensors(seed, TENSORS);
        try (Arena arena = Arena.ofShared()) {
            List<MemorySegment> whole = ShardedGrads.copies(arena, tensors, ShardedGrads.all(TENSORS));
            Gradients wholeGrads = ShardedGrads.gradients(tensors, ShardedGrads.all(TENSORS), whole);
            double norm = GradClip.totalNorm(wholeGrads, normType);
            double maxNorm = clips ? 0.5 * norm : 2 * norm;
            double unsplitNorm = clipOnce(Clipper.builder().maxNorm(maxNorm).normType(normType), wholeGrads);
            assertEquals(Double.doubleToRawLongBits(norm), Double.doubleToRawLongBits(unsplitNorm));

            List<List<Integer>> which = shardIndices(seed, participants);
            List<List<MemorySegment>> shards = new ArrayList<>();
            for (List<Integer> mine : which) {
                shards.add(ShardedGrads.copies(arena, tensors, mine));
            }
            List<Outcome> outcomes = clipSharded(tensors, which, shards,
                    builders(participants, maxNorm, normType, NonFinite.PROPAGATE), new InProcessAllReduce(participants));
            for (int p = 0; p < participants; p++) {
                assertEquals(null, outcomes.get(p).error(), "participant " + p);
                assertEquals(Double.doubleToRawLongBits(unsplitNorm), outcomes.get(p).normBits(),
                        "participant " + p + " of " + participants + ", norm type " + normType);
                for (int k = 0; k < which.get(p).size(); k++) {
                    int t = which.get(p).get(k);
                    assertArrayEquals(whole.get(t).toArray(ValueLayout.JAVA_BYTE), shards.get(p).get(k).toArray(ValueLayout.JAVA_BYTE),
                            "tensor " + tensors.get(t).name() + " on participant " + p);
                }
            }
        }
    }

    /** A NaN or an inf on one participant: each policy acts on every participant alike. */
    @Property(tries = 24)
    void aNonFiniteValueOnOneParticipantActsOnEveryParticipant(@ForAll @IntRange(min = 2, max = 8) int participants,
            @ForAll @IntRange(min = 0, max = 2) int normTypeIndex, @ForAll @IntRange(min = 0, max = 2) int policyIndex,
            @ForAll boolean nan, @ForAll @LongRange(min = 0, max = 1_000_000) long seed) throws InterruptedException {
        double normType = NORM_TYPES[normTypeIndex];
        NonFinite policy = NonFinite.values()[policyIndex];
        List<ShardedGrads.Tensor> tensors = ShardedGrads.tensors(seed, TENSORS);
        // The bad value goes into the first non-empty tensor.
        int bad = 0;
        while (tensors.get(bad).elements() == 0) {
            bad++;
        }
        MemorySegment badBytes = MemorySegment.ofArray(tensors.get(bad).bytes());
        ShardedGrads.set(badBytes, tensors.get(bad).type(), tensors.get(bad).elements() / 2, nan ? Double.NaN : Double.POSITIVE_INFINITY);
        try (Arena arena = Arena.ofShared()) {
            List<MemorySegment> whole = ShardedGrads.copies(arena, tensors, ShardedGrads.all(TENSORS));
            Gradients wholeGrads = ShardedGrads.gradients(tensors, ShardedGrads.all(TENSORS), whole);
            double unsplitNorm = clipOnce(Clipper.builder().maxNorm(1.0).normType(normType), wholeGrads);
            assertFalse(Double.isFinite(unsplitNorm));

            List<List<Integer>> which = shardIndices(seed, participants);
            List<List<byte[]>> before = new ArrayList<>();
            List<List<MemorySegment>> shards = copiesWithSnapshots(arena, tensors, which, before);
            List<Outcome> outcomes = clipSharded(tensors, which, shards, builders(participants, 1.0, normType, policy),
                    new InProcessAllReduce(participants));
            for (int p = 0; p < participants; p++) {
                Outcome outcome = outcomes.get(p);
                switch (policy) {
                    case ERROR -> {
                        ArithmeticException e = assertInstanceOf(ArithmeticException.class, outcome.error(), "participant " + p);
                        assertTrue(e.getMessage() != null && !e.getMessage().isBlank());
                    }
                    case SKIP, PROPAGATE -> {
                        assertEquals(null, outcome.error(), "participant " + p);
                        assertEquals(Double.doubleToLongBits(unsplitNorm), Double.doubleToLongBits(Double.longBitsToDouble(outcome.normBits())),
                                "participant " + p);
                    }
                }
                for (int k = 0; k < which.get(p).size(); k++) {
                    byte[] now = shards.get(p).get(k).toArray(ValueLayout.JAVA_BYTE);
                    byte[] expected = policy == NonFinite.PROPAGATE
                            ? whole.get(which.get(p).get(k)).toArray(ValueLayout.JAVA_BYTE) : before.get(p).get(k);
                    assertArrayEquals(expected, now, policy + ": tensor " + which.get(p).get(k) + " on participant " + p);
                }
            }
        }
    }

    /** A hook that corrupts the reduced words: a clear error on every participant, and nothing written. */
    @Example
    void aHookThatReturnsWrongWordsFailsAndWritesNothing() throws InterruptedException {
        int participants = 3;
        InProcessAllReduce engine = new InProcessAllReduce(participants);
        AllReduce corrupting = new AllReduce() {
            @Override
            public void sum(long[] words) {
                engine.sum(words);
                java.util.Arrays.fill(words, -1L);
            }

            @Override
            public void max(long[] words) {
                engine.max(words);
                java.util.Arrays.fill(words, -1L);
            }
        };
        for (double normType : NORM_TYPES) {
            assertNothingWritten(participants, corrupting, builders(participants, 1e-3, normType, NonFinite.PROPAGATE),
                    IllegalStateException.class, "wrong words, norm type " + normType);
        }
    }

    /**
     * Participants configured with different norm types pass different words (count or operation):
     * the engine's clear error reaches every participant, and nothing is written.
     */
    @Example
    void participantsThatDisagreeOnTheWordsFailAndWriteNothing() throws InterruptedException {
        int participants = 3;
        List<Clipper.Builder> builders = builders(participants, 1e-3, 2, NonFinite.PROPAGATE);
        builders.set(1, Clipper.builder().maxNorm(1e-3).normType(Double.POSITIVE_INFINITY));
        assertNothingWritten(participants, new InProcessAllReduce(participants), builders, IllegalArgumentException.class,
                "norm types 2 and inf");
    }

    private static void assertNothingWritten(int participants, AllReduce hook, List<Clipper.Builder> builders,
            Class<? extends RuntimeException> expected, String what) throws InterruptedException {
        long seed = 99;
        List<ShardedGrads.Tensor> tensors = ShardedGrads.tensors(seed, TENSORS);
        List<List<Integer>> which = new ArrayList<>();
        for (int p = 0; p < participants; p++) {
            which.add(new ArrayList<>());
        }
        for (int t = 0; t < TENSORS; t++) {
            which.get(t % participants).add(t); // every participant holds something to write
        }
        try (Arena arena = Arena.ofShared()) {
            List<List<byte[]>> before = new ArrayList<>();
            List<List<MemorySegment>> shards = copiesWithSnapshots(arena, tensors, which, before);
            List<Outcome> outcomes = clipSharded(tensors, which, shards, builders, hook);
            for (int p = 0; p < participants; p++) {
                RuntimeException e = outcomes.get(p).error();
                assertInstanceOf(expected, e, what + ": participant " + p);
                assertTrue(e.getMessage() != null && !e.getMessage().isBlank(), what);
                if (e instanceof IllegalStateException) {
                    assertTrue(e.getMessage().contains("all-reduce hook returned words"), e.getMessage());
                }
                List<byte[]> now = snapshot(shards.get(p));
                for (int k = 0; k < now.size(); k++) {
                    assertArrayEquals(before.get(p).get(k), now.get(k), what + ": tensor " + which.get(p).get(k) + " was written");
                }
            }
        }
    }

    /** Each participant's copies of its tensors; their bytes before any clip go into {@code before}. */
    private static List<List<MemorySegment>> copiesWithSnapshots(Arena arena, List<ShardedGrads.Tensor> tensors,
                                                               List<List<Integer>> which, List<List<byte[]>> before) {
        List<List<MemorySegment>> shards = new ArrayList<>();
        for (List<Integer> mine : which) {
            List<MemorySegment> shard = ShardedGrads.copies(arena, tensors, mine);
            shards.add(shard);
            before.add(snapshot(shard));
        }
        return shards;
    }
}
