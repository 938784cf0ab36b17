package dev.gradclip.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.GradClip;
import dev.gradclip.Gradients;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.ref.WeakReference;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The overlap check against a pairwise brute force, read-only heap views included. */
class OverlapsTest {

    private static boolean bruteForceOverlap(MemorySegment[] segments) {
        for (int i = 0; i < segments.length; i++) {
            for (int j = i + 1; j < segments.length; j++) {
                boolean empty = segments[i].byteSize() == 0 || segments[j].byteSize() == 0; // shares no memory
                if (!empty && segments[i].asOverlappingSlice(segments[j]).isPresent()) {
                    return true;
                }
            }
        }
        return false;
    }

    private static boolean checkFinds(MemorySegment[] segments) {
        try {
            Overlaps.requireDisjoint(segments, segments.length, SegmentChecks::name);
            return false;
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().contains("overlap in memory"), e.getMessage());
            return true;
        }
    }

    /** Random slices of a few arrays (each wrapped more than once), read-only or not, and of native memory. */
    @Test
    void agreesWithPairwiseComparisonOnRandomSlices() {
        Random random = new Random(7);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment nativeMemory = arena.allocate(4096);
            int found = 0;
            for (int trial = 0; trial < 3000; trial++) {
                float[][] arrays = {new float[256], new float[256], new float[64]};
                byte[] bytes = new byte[512];
                int n = 2 + random.nextInt(8);
                MemorySegment[] segments = new MemorySegment[n];
                for (int i = 0; i < n; i++) {
                    int kind = random.nextInt(4);
                    MemorySegment whole = switch (kind) {
                        case 0 -> nativeMemory;
                        case 1 -> MemorySegment.ofBuffer(ByteBuffer.wrap(bytes)); // heap buffer: same array, other wrapper
                        case 2 -> MemorySegment.ofArray(bytes);
                        default -> MemorySegment.ofArray(arrays[random.nextInt(arrays.length)]);
                    };
                    long offset = random.nextLong(whole.byteSize() / 4) * 4;
                    long length = Math.min(whole.byteSize() - offset, 4L * random.nextInt(24));
                    MemorySegment slice = whole.asSlice(offset, length);
                    segments[i] = random.nextBoolean() ? slice.asReadOnly() : slice;
                }
                boolean expected = bruteForceOverlap(segments);
                assertEquals(expected, checkFinds(segments), () -> "trial with " + List.of(segments));
                found += expected ? 1 : 0;
            }
            assertTrue(found > 300 && found < 2700, "both outcomes must be exercised: " + found);
        }
    }

    @Test
    void overlappingReadOnlyViewsOfOneArrayAreFound() {
        float[] array = new float[100];
        MemorySegment[] segments = {
                MemorySegment.ofArray(new float[100]).asReadOnly(),
                MemorySegment.ofArray(array).asSlice(0, 40).asReadOnly(),
                MemorySegment.ofArray(array).asSlice(36, 8).asReadOnly()};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Overlaps.requireDisjoint(segments, 3, SegmentChecks::name));
        assertEquals("grads[1] and grads[2] overlap in memory", e.getMessage());
    }

    /** Issue: 32,000 read-only heap views took 6.2 s and 200,000 over 600 s, pairwise. */
    @Test
    void twoHundredThousandReadOnlyHeapViewsTakeNoPairwiseTime() {
        List<MemorySegment> views = new ArrayList<>();
        float[] shared = new float[100_000];
        for (int i = 0; i < 100_000; i++) {
            views.add(MemorySegment.ofArray(new float[] {1f}).asReadOnly());
            views.add(MemorySegment.ofArray(shared).asSlice(4L * i, 4).asReadOnly());
        }
        assertTimeoutPreemptively(Duration.ofSeconds(30), () -> {
            for (int call = 0; call < 3; call++) {
                assertEquals(Math.sqrt(100_000), GradClip.totalNorm(views), 1e-9);
            }
        });
    }

    /**
     * Neither the check nor the calls keep gradients alive: after a norm and a clip of heap
     * segments (which takes the sorting path) and of a Gradients, the arrays can be collected.
     */
    @Test
    void noCallKeepsTheGradientsAlive() throws InterruptedException {
        List<WeakReference<float[]>> arrays = new ArrayList<>();
        callAndForget(arrays);
        for (int attempt = 0; attempt < 50 && arrays.stream().anyMatch(r -> r.get() != null); attempt++) {
            System.gc();
            Thread.sleep(20);
        }
        assertTrue(arrays.stream().allMatch(r -> r.get() == null), "a gradient array is still reachable");
    }

    private static void callAndForget(List<WeakReference<float[]>> arrays) {
        List<MemorySegment> views = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            float[] array = {3f, 4f};
            arrays.add(new WeakReference<>(array));
            views.add(MemorySegment.ofArray(array));
        }
        java.util.Collections.reverse(views); // not in address order: the sorting path
        assertEquals(Math.sqrt(75), GradClip.totalNorm(views), 1e-12);
        assertEquals(Math.sqrt(75), GradClip.clipGradNorm(views, 1), 1e-12);
        float[] single = {3f, 4f};
        arrays.add(new WeakReference<>(single));
        assertEquals(5, GradClip.clipGradNorm(Gradients.of(single), 1), 0);
    }
}
