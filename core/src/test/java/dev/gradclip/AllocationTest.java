package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** After warm-up, the {@code List<MemorySegment>} path allocates nothing per call on native segments. */
class AllocationTest {

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    private static final int WARM_UP_CALLS = 15_000;
    private static final int MEASURED_CALLS = 1_000;

    /** 40 tensors of 1 to 5000 floats in one arena; {@code shuffled} defeats the ascending-address fast path. */
    private static List<MemorySegment> grads(Arena arena, boolean shuffled) {
        Random random = new Random(5);
        List<MemorySegment> grads = new ArrayList<>();
        for (int t = 0; t < 40; t++) {
            MemorySegment segment = arena.allocate(4L * (1 + random.nextInt(5000)), 4);
            for (long i = 0; i < segment.byteSize() / 4; i++) {
                segment.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, random.nextFloat() - 0.5f);
            }
            grads.add(segment);
        }
        if (shuffled) {
            Collections.shuffle(grads, random);
        }
        return grads;
    }

    /** Bytes allocated by this thread over the measured calls, after warm-up calls of the same loop. */
    private static long allocatedBytes(Runnable normThenClip) {
        assertTrue(THREADS.isThreadAllocatedMemorySupported() && THREADS.isThreadAllocatedMemoryEnabled());
        for (int i = 0; i < WARM_UP_CALLS; i++) {
            normThenClip.run();
        }
        long before = THREADS.getCurrentThreadAllocatedBytes();
        for (int i = 0; i < MEASURED_CALLS; i++) {
            normThenClip.run();
        }
        return THREADS.getCurrentThreadAllocatedBytes() - before;
    }

    /** A norm, then a clip to 0.9999 of it, which has to scale every element. */
    private static long allocatedBytes(List<MemorySegment> grads) {
        return allocatedBytes(() -> {
            double norm = GradClip.totalNorm(grads);
            assertEquals(norm, GradClip.clipGradNorm(grads, 0.9999 * norm));
            assertTrue(GradClip.totalNorm(grads) < norm);
        });
    }

    @Test
    void normAndClipAllocateNothingOnNativeSegmentsInAddressOrder() {
        try (Arena arena = Arena.ofConfined()) {
            assertEquals(0, allocatedBytes(grads(arena, false)));
        }
    }

    @Test
    void normAndClipAllocateNothingOnNativeSegmentsInShuffledOrder() {
        try (Arena arena = Arena.ofConfined()) {
            assertEquals(0, allocatedBytes(grads(arena, true)));
        }
    }

    /**
     * A LinkedList is read through one iterator per call (hardening item 7): at most the iterator is
     * allocated, never a copy of the list (which cost 1.6 MB per call for 200,000 segments).
     */
    @Test
    void aLinkedListCostsAtMostAnIteratorPerCall() {
        try (Arena arena = Arena.ofConfined()) {
            long bytes = allocatedBytes(new java.util.LinkedList<>(grads(arena, true)));
            assertTrue(bytes <= MEASURED_CALLS * 3L * 64, bytes + " bytes over " + MEASURED_CALLS + " calls");
        }
    }

    /**
     * A Clipper over mixed dtypes, with and without a report, at one thread and at two (the work is
     * split at every size): after warm-up no call allocates, on the caller or on the workers. Each
     * call starts from the same gradients (copied back, which allocates nothing), so each one scales.
     */
    @Test
    void clipperAllocatesNothingWithOrWithoutAReportAtAnyThreadCount() {
        try (Arena arena = Arena.ofShared()) {
            Gradients grads = Tensors.gradients(arena, Tensors.mixed(77, 30, false), 0);
            MemorySegment[] backup = new MemorySegment[grads.size()];
            for (int i = 0; i < backup.length; i++) {
                backup[i] = arena.allocate(Math.max(1, grads.segment(i).byteSize())).copyFrom(grads.segment(i));
            }
            GradReport report = new GradReport(grads);
            for (int threads : new int[] {1, 2}) {
                try (Clipper clipper = Clipper.builder().maxNorm(1e-6).threads(threads).minParallelBytes(0).build()) {
                    for (boolean withReport : new boolean[] {false, true}) {
                        Runnable clip = () -> {
                            for (int i = 0; i < backup.length; i++) {
                                MemorySegment.copy(backup[i], 0, grads.segment(i), 0, grads.segment(i).byteSize());
                            }
                            double norm = withReport ? clipper.clip(grads, report) : clipper.clip(grads);
                            assertTrue(norm > 1e-6);
                        };
                        assertEquals(0, allocatedBytesOnAllThreads(clip), threads + " threads, report " + withReport);
                    }
                }
            }
        }
    }

    /**
     * {@link #allocatedBytes(Runnable)}, counting gradclip's worker threads too. Warm-up: 3,000 calls,
     * then rounds of 250 until one allocates nothing (at most 12,000 calls more). A mixed-dtype set runs
     * 24 loop copies, which C2 compiles in the background; on this loaded two-core machine that has
     * taken longer than 3,000 calls, and until then C1's code boxes every vector. The measured 1,000
     * calls come after, and must allocate nothing.
     */
    private static long allocatedBytesOnAllThreads(Runnable call) {
        for (int i = 0; i < WARM_UP_CALLS / 5; i++) {
            call.run();
        }
        long[] workers = Thread.getAllStackTraces().keySet().stream() // allocates: before the measurement
                .filter(t -> t.getName().startsWith("gradclip-worker-") && t.isAlive())
                .mapToLong(Thread::threadId).toArray();
        for (int round = 0; round < 48 && allocatedOnAllThreads(call, 250, workers) > 0; round++) {
            // still compiling
        }
        return allocatedOnAllThreads(call, MEASURED_CALLS, workers);
    }

    private static long allocatedOnAllThreads(Runnable call, int calls, long[] workers) {
        long workersBefore = sum(THREADS.getThreadAllocatedBytes(workers));
        long before = THREADS.getCurrentThreadAllocatedBytes();
        for (int i = 0; i < calls; i++) {
            call.run();
        }
        long caller = THREADS.getCurrentThreadAllocatedBytes() - before;
        return caller + sum(THREADS.getThreadAllocatedBytes(workers)) - workersBefore;
    }

    private static long sum(long[] values) {
        long sum = 0;
        for (long v : values) {
            sum += Math.max(0, v); // -1 for a thread that ended
        }
        return sum;
    }

    @Test
    void theMeasurementSeesAllocationWhereThereIsSome() {
        // The float[][] path wraps each array in a segment per call: the probe must report it.
        float[][] grads = Buffers.toArrays(grads(Arena.ofAuto(), false));
        long bytes = allocatedBytes(() -> {
            double norm = GradClip.totalNorm(grads);
            GradClip.clipGradNorm(grads, 0.9999 * norm);
        });
        assertTrue(bytes > MEASURED_CALLS, "allocated " + bytes);
    }
}
