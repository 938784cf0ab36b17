package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * Each bad input gets an exception that names the argument and the segment index, and nothing is
 * written: the valid segments before and after the bad one must come out unchanged. The grads are
 * large enough (norm 40) that a call with maxNorm 1 would scale them if it got that far.
 */
class BadInputTest {

    private static final double CLIPS = 1.0;

    private static float[] big(int length) {
        return Buffers.filled(length, 10f);
    }

    /** Runs the call, checks the exception and its message, then checks that nothing was written. */
    private static <T extends Throwable> void assertRejected(Class<T> type, String message, float[][] watched, Executable call) {
        float[][] before = Buffers.copy(watched);
        T thrown = assertThrows(type, call);
        assertTrue(thrown.getMessage().contains(message), () -> "message '" + thrown.getMessage() + "' lacks '" + message + "'");
        for (int i = 0; i < watched.length; i++) {
            assertArrayEquals(before[i], watched[i], "array " + i + " was modified");
        }
    }

    @Test
    void negativeOrNanMaxNormIsRejected() {
        float[][] grads = {big(16), big(5)};
        for (double maxNorm : new double[] {-1.0, -0.0 - Double.MIN_VALUE, Double.NaN, Double.NEGATIVE_INFINITY}) {
            assertRejected(IllegalArgumentException.class, "maxNorm", grads, () -> GradClip.clipGradNorm(grads, maxNorm));
            try (Arena arena = Arena.ofConfined()) {
                List<MemorySegment> segments = Buffers.nativeCopy(arena, grads, 0);
                float[][] watched = Buffers.toArrays(segments);
                assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm(segments, maxNorm));
                assertTrue(Arrays.deepEquals(watched, Buffers.toArrays(segments)));
            }
        }
    }

    @Test
    void zeroAndInfiniteMaxNormAreAccepted() {
        float[][] grads = {big(16)};
        assertEquals(40.0, GradClip.clipGradNorm(grads, Double.POSITIVE_INFINITY));
        assertEquals(10f, grads[0][0]);
        assertEquals(40.0, GradClip.clipGradNorm(grads, 0.0));
        assertEquals(0f, grads[0][0]);
    }

    @Test
    void nullListIsRejected() {
        NullPointerException e = assertThrows(NullPointerException.class, () -> GradClip.clipGradNorm((List<MemorySegment>) null, CLIPS));
        assertTrue(e.getMessage().contains("grads"));
        e = assertThrows(NullPointerException.class, () -> GradClip.totalNorm((float[][]) null));
        assertTrue(e.getMessage().contains("grads"));
    }

    @Test
    void nullElementIsRejectedWithItsIndex() {
        float[][] grads = {big(16), null, big(3)};
        assertRejected(NullPointerException.class, "grads[1]", new float[][] {grads[0], grads[2]},
                () -> GradClip.clipGradNorm(grads, CLIPS));
        List<MemorySegment> segments = Arrays.asList(MemorySegment.ofArray(grads[0]), MemorySegment.ofArray(grads[2]), null);
        assertRejected(NullPointerException.class, "grads[2]", new float[][] {grads[0], grads[2]},
                () -> GradClip.clipGradNorm(segments, CLIPS));
    }

    @Test
    void byteSizeThatIsNotAMultipleOfFourIsRejectedWithItsIndex() {
        float[] first = big(16);
        float[] last = big(16);
        byte[] odd = new byte[10];
        List<MemorySegment> segments = List.of(MemorySegment.ofArray(first), MemorySegment.ofArray(odd), MemorySegment.ofArray(last));
        assertRejected(IllegalArgumentException.class, "grads[1]", new float[][] {first, last},
                () -> GradClip.clipGradNorm(segments, CLIPS));
        assertThrows(IllegalArgumentException.class, () -> GradClip.totalNorm(segments));
        assertArrayEquals(new byte[10], odd);
    }

    @Test
    void readOnlySegmentThatMustBeScaledIsRejectedWithItsIndex() {
        float[] first = big(16);
        float[] readOnly = big(7);
        float[] last = big(9);
        List<MemorySegment> segments = List.of(MemorySegment.ofArray(first),
                MemorySegment.ofArray(readOnly).asReadOnly(), MemorySegment.ofArray(last));
        assertRejected(IllegalArgumentException.class, "grads[1]", new float[][] {first, readOnly, last},
                () -> GradClip.clipGradNorm(segments, CLIPS));
        // Reading it is fine, and so is a clip whose factor is 1 (maxNorm at least norm + 1e-6).
        double norm = GradClip.totalNorm(segments);
        assertEquals(norm, GradClip.clipGradNorm(segments, 2 * norm));
    }

    @Test
    void segmentOfAClosedArenaIsRejectedWithItsIndex() {
        Arena open = Arena.ofConfined();
        Arena closed = Arena.ofConfined();
        try (open) {
            List<MemorySegment> segments = new ArrayList<>(Buffers.nativeCopy(open, new float[][] {big(16), big(4)}, 0));
            segments.add(1, Buffers.nativeCopy(closed, new float[][] {big(8)}, 0).get(0));
            closed.close();
            float[][] before = Buffers.toArrays(List.of(segments.get(0), segments.get(2)));
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> GradClip.clipGradNorm(segments, CLIPS));
            assertTrue(e.getMessage().contains("grads[1]") && e.getMessage().contains("closed"), e.getMessage());
            assertTrue(Arrays.deepEquals(before, Buffers.toArrays(List.of(segments.get(0), segments.get(2)))));
        }
    }

    @Test
    void segmentConfinedToAnotherThreadIsRejectedWithItsIndex() throws Exception {
        try (Arena shared = Arena.ofShared(); ExecutorService other = Executors.newSingleThreadExecutor()) {
            Future<Arena> confinedElsewhere = other.submit(Arena::ofConfined);
            Arena foreign = confinedElsewhere.get();
            MemorySegment theirs = other.submit(() -> foreign.allocate(64)).get();
            List<MemorySegment> segments = new ArrayList<>(Buffers.nativeCopy(shared, new float[][] {big(16)}, 0));
            segments.add(theirs);
            float[][] before = Buffers.toArrays(segments.subList(0, 1));
            WrongThreadException e = assertThrows(WrongThreadException.class, () -> GradClip.clipGradNorm(segments, CLIPS));
            assertTrue(e.getMessage().contains("grads[1]"), e.getMessage());
            assertTrue(Arrays.deepEquals(before, Buffers.toArrays(segments.subList(0, 1))));
            other.submit(foreign::close).get();
        }
    }

    @Test
    void overlappingNativeSegmentsAreRejectedWithBothIndices() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment whole = Buffers.nativeCopy(arena, new float[][] {big(64)}, 0).get(0);
            MemorySegment separate = Buffers.nativeCopy(arena, new float[][] {big(8)}, 0).get(0);
            // In list order, in reverse address order, and a slice nested in another.
            List<List<MemorySegment>> cases = List.of(
                    List.of(whole.asSlice(0, 128), separate, whole.asSlice(124, 64)),
                    List.of(whole.asSlice(128, 64), separate, whole.asSlice(0, 132)),
                    List.of(separate, whole, whole.asSlice(64, 4)));
            for (List<MemorySegment> segments : cases) {
                float[][] before = Buffers.toArrays(List.of(whole, separate));
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm(segments, CLIPS));
                assertTrue(e.getMessage().contains("grads[0]") || e.getMessage().contains("grads[1]"), e.getMessage());
                assertTrue(e.getMessage().contains("grads[2]") && e.getMessage().contains("overlap"), e.getMessage());
                assertTrue(Arrays.deepEquals(before, Buffers.toArrays(List.of(whole, separate))));
                assertThrows(IllegalArgumentException.class, () -> GradClip.totalNorm(segments));
            }
            // Adjacent slices share no byte; empty slices share nothing.
            List<MemorySegment> adjacent = List.of(whole.asSlice(128, 128), whole.asSlice(0, 128), whole.asSlice(4, 0), whole.asSlice(4, 0));
            assertEquals(Math.sqrt(64 * 100.0), GradClip.totalNorm(adjacent), 1e-12);
        }
    }

    @Test
    void overlappingHeapSegmentsAndRepeatedArraysAreRejected() {
        float[] shared = big(32);
        float[] other = big(32);
        List<MemorySegment> slices = List.of(MemorySegment.ofArray(other), MemorySegment.ofArray(shared).asSlice(0, 64),
                MemorySegment.ofArray(shared).asSlice(60, 40));
        assertRejected(IllegalArgumentException.class, "grads[1] and grads[2] overlap", new float[][] {shared, other},
                () -> GradClip.clipGradNorm(slices, CLIPS));
        float[][] repeated = {other, shared, other};
        assertRejected(IllegalArgumentException.class, "grads[0] and grads[2] overlap", new float[][] {shared, other},
                () -> GradClip.clipGradNorm(repeated, CLIPS));
        // A read-only view hides its array; it is still caught.
        List<MemorySegment> hidden = List.of(MemorySegment.ofArray(shared).asReadOnly(), MemorySegment.ofArray(other),
                MemorySegment.ofArray(shared).asSlice(8, 8));
        assertRejected(IllegalArgumentException.class, "grads[0] and grads[2] overlap", new float[][] {shared, other},
                () -> GradClip.totalNorm(hidden));
        // Same offsets in different arrays do not overlap.
        assertEquals(Math.sqrt(64 * 100.0), GradClip.totalNorm(new float[][] {shared, other}), 1e-12);
    }

    @Test
    void overlapIsFoundAmongManySegmentsInShuffledOrder() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pool = arena.allocate(4 * 3000L);
            List<MemorySegment> segments = new ArrayList<>();
            for (int i = 0; i < 1000; i++) {
                segments.add(pool.asSlice(12L * i, 12));
            }
            Collections.shuffle(segments, new java.util.Random(7));
            assertEquals(0.0, GradClip.totalNorm(segments));
            segments.add(pool.asSlice(12L * 500 + 8, 8));
            Collections.shuffle(segments, new java.util.Random(8));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GradClip.totalNorm(segments));
            assertTrue(e.getMessage().contains("overlap"));
        }
    }

    @Test
    void emptyListsAndEmptySegmentsAreFine() {
        assertEquals(0.0, GradClip.totalNorm(List.of()));
        assertEquals(0.0, GradClip.clipGradNorm(new float[0][], CLIPS));
        float[][] grads = {new float[0], big(16), new float[0]};
        assertEquals(40.0, GradClip.clipGradNorm(grads, 4.0));
        assertEquals(10f * (float) (4.0 / (40 + 1e-6)), grads[1][0]);
        assertEquals(0.0, GradClip.clipGradNorm(List.of(MemorySegment.ofArray(new float[0]).asReadOnly()), 0.0));
    }
}
