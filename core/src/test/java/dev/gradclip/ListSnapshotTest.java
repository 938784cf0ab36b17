package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.AbstractList;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;

/**
 * The list shorthands of {@link GradClip} read the list once and work from that snapshot, and reuse
 * the set of the previous call only for the same segment objects: a list that changes during the call can neither get an unchecked segment past the checks (and throw
 * after writing) nor have a segment scaled twice.
 */
class ListSnapshotTest {

    /** A list whose elements change after their first read: what another thread could do between two reads. */
    private static final class ChangingList extends AbstractList<MemorySegment> implements java.util.RandomAccess {
        final List<MemorySegment> first;
        final IntFunction<MemorySegment> later;
        final int[] reads;
        int sizeCalls;

        ChangingList(List<MemorySegment> first, IntFunction<MemorySegment> later) {
            this.first = first;
            this.later = later;
            this.reads = new int[first.size()];
        }

        @Override
        public MemorySegment get(int i) {
            return reads[i]++ == 0 ? first.get(i) : later.apply(i);
        }

        @Override
        public int size() {
            sizeCalls++;
            return first.size();
        }
    }

    private static MemorySegment filled(Arena arena, int length, float value) {
        MemorySegment segment = arena.allocate(4L * length, 4);
        for (int i = 0; i < length; i++) {
            segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, value);
        }
        return segment;
    }

    private static float[] floats(MemorySegment segment) {
        return segment.toArray(ValueLayout.JAVA_FLOAT);
    }

    @Test
    void eachElementIsReadOnceAndTheSnapshotIsWhatGetsScaled() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = filled(arena, 100, 3f);
            MemorySegment b = filled(arena, 100, 4f);
            List<IntFunction<MemorySegment>> swaps = List.of(
                    i -> null,                                   // a null
                    i -> (i == 0 ? a : b).asReadOnly(),          // a read-only view
                    i -> a.asSlice(0, 16),                       // an alias of tensor 0
                    i -> Arena.ofConfined().allocate(16));       // another thread's... or a dead arena's
            for (IntFunction<MemorySegment> swap : swaps) {
                float[] a0 = floats(a);
                float[] b0 = floats(b);
                ChangingList list = new ChangingList(List.of(a, b), swap);
                double norm = GradClip.clipGradNorm(list, 1.0);
                assertArrayEquals(new int[] {1, 1}, list.reads, "each element is read once");
                assertEquals(1, list.sizeCalls, "size() is read once");
                double c = GradClip.clipCoefficient(norm, 1.0);
                for (int i = 0; i < 100; i++) {
                    assertEquals(a0[i] * (float) c, floats(a)[i], "tensor 0 scaled exactly once");
                    assertEquals(b0[i] * (float) c, floats(b)[i], "tensor 1 scaled exactly once");
                }
                // Restore the norm for the next swap.
                a.fill((byte) 0);
                for (int i = 0; i < 100; i++) {
                    a.setAtIndex(ValueLayout.JAVA_FLOAT, i, 3f);
                    b.setAtIndex(ValueLayout.JAVA_FLOAT, i, 4f);
                }
            }
        }
    }

    /**
     * A CopyOnWriteArrayList that another thread keeps changing, swapping a
     * read-only view or an aliasing slice in and out. Every call either throws with nothing written,
     * or scales each tensor exactly once.
     */
    @Test
    void aConcurrentlyChangedCopyOnWriteListNeverThrowsAfterWriting() throws Exception {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment a = filled(arena, 256, 1f);
            MemorySegment b = filled(arena, 256, 1f);
            MemorySegment[] swapIns = {b.asReadOnly(), a.asSlice(0, 64), b};
            CopyOnWriteArrayList<MemorySegment> list = new CopyOnWriteArrayList<>(List.of(a, b));
            AtomicBoolean stop = new AtomicBoolean();
            Thread mutator = new Thread(() -> {
                for (int k = 0; !stop.get(); k++) {
                    list.set(1, swapIns[k % swapIns.length]);
                }
            });
            mutator.start();
            int threw = 0;
            try {
                for (int call = 0; call < 400; call++) {
                    float[] a0 = floats(a);
                    float[] b0 = floats(b);
                    double norm;
                    try {
                        norm = GradClip.clipGradNorm(list, 0.5 * Math.sqrt(512) * a0[0]);
                    } catch (IllegalArgumentException expected) {
                        threw++;
                        assertArrayEquals(a0, floats(a), "call " + call + " threw after writing tensor 0");
                        assertArrayEquals(b0, floats(b), "call " + call + " threw after writing tensor 1");
                        continue;
                    }
                    float c = (float) GradClip.clipCoefficient(norm, 0.5 * Math.sqrt(512) * a0[0]);
                    assertEquals(a0[0] * c, floats(a)[0], "call " + call + ": tensor 0 scaled once");
                    if (a0[0] < 1e-30f) { // refill before the values underflow
                        for (int i = 0; i < 256; i++) {
                            a.setAtIndex(ValueLayout.JAVA_FLOAT, i, 1f);
                            b.setAtIndex(ValueLayout.JAVA_FLOAT, i, 1f);
                        }
                    }
                }
            } finally {
                stop.set(true);
                mutator.join();
            }
            assertTrue(threw < 400, "some calls must run");
        }
    }

    /** One iteration, not get(i) per index: 200,000 segments in a LinkedList took about two minutes by index. */
    @Test
    void aLinkedListIsReadThroughOneIteration() {
        java.util.LinkedList<MemorySegment> linked = new java.util.LinkedList<>();
        for (int i = 0; i < 200_000; i++) {
            linked.add(MemorySegment.ofArray(new float[] {1f, 1f, 1f}));
        }
        org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(30),
                () -> assertEquals(Math.sqrt(600_000), GradClip.clipGradNorm(linked, 1e9), 1e-9));
    }

    /**
     * The set built for a list is reused only while the list holds the same segments: a list that
     * differs in one element, by length, or in kind is validated again, and nothing is written when
     * that fails.
     */
    @Test
    void aListWithOtherSegmentsIsValidatedAgain() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = filled(arena, 100, 3f);
            MemorySegment b = filled(arena, 100, 4f);
            assertEquals(50, GradClip.totalNorm(List.of(a, b)), 1e-12);
            assertEquals(50, GradClip.totalNorm(new ArrayList<>(List.of(a, b))), 1e-12);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> GradClip.clipGradNorm(List.of(a, a.asSlice(0, 16)), 1));
            assertTrue(e.getMessage().contains("grads[0] and grads[1] overlap"), e.getMessage());
            assertEquals(50, GradClip.totalNorm(List.of(a, b)), 1e-12);
            e = assertThrows(IllegalArgumentException.class,
                    () -> GradClip.clipGradNorm(new java.util.LinkedList<>(List.of(a, b.asReadOnly())), 1));
            assertTrue(e.getMessage().contains("grads[1] is read-only"), e.getMessage());
            assertArrayEquals(floats(filled(arena, 100, 3f)), floats(a), "nothing written");
            assertEquals(30, GradClip.totalNorm(List.of(a)), 1e-12);
            assertEquals(50, GradClip.totalNorm(new java.util.LinkedList<>(List.of(a, b))), 1e-12);
            assertEquals(30, GradClip.totalNorm(new java.util.LinkedList<>(List.of(a))), 1e-12);
            assertEquals(0, GradClip.totalNorm(List.of()));
            NullPointerException n = assertThrows(NullPointerException.class, () -> GradClip.totalNorm(java.util.Arrays.asList(a, null)));
            assertTrue(n.getMessage().contains("grads[1]"), n.getMessage());
        }
    }
}
