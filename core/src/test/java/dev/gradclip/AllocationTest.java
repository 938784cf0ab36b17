package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * After warm-up the hot paths allocate nothing per call: the static methods on a {@link Gradients} of
 * native segments, a Clipper at one and two threads with and without a report, and every norm type. Measured
 * with {@code ThreadMXBean#getThreadAllocatedBytes} over stretches in which the JIT was idle
 * ({@link JitWatch}), so that a loaded machine, whose compiler lags far behind, gives the same answer.
 */
class AllocationTest {

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    private static final int WARM_UP_CALLS = 15_000;
    private static final int MEASURED_CALLS = 1_000;
    private static final Duration JIT_WAIT = Duration.ofMinutes(10);

    private static JitWatch jit;

    @BeforeAll
    static void watchTheJit() {
        jit = new JitWatch();
    }

    @AfterAll
    static void stopWatching() {
        jit.close();
    }

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

    /** Bytes this thread allocated over {@link #MEASURED_CALLS} calls, in a stretch in which the JIT was idle. */
    private static long allocatedBytes(Runnable normThenClip) {
        return allocatedBytes(normThenClip, new long[0]);
    }

    /**
     * Bytes this thread and the threads {@code others} allocated over {@link #MEASURED_CALLS} calls,
     * after {@link #WARM_UP_CALLS} calls of the same loop, in a stretch of calls in which the JIT
     * neither compiled nor deoptimized anything and had nothing queued ({@link JitWatch}: until then
     * C1's code, or the objects a deoptimization re-creates, allocate what C2's code does not).
     * Stretches in which the JIT was busy are measured again, for up to {@link #JIT_WAIT}.
     */
    private static long allocatedBytes(Runnable call, long[] others) {
        assertTrue(THREADS.isThreadAllocatedMemorySupported() && THREADS.isThreadAllocatedMemoryEnabled());
        for (int i = 0; i < WARM_UP_CALLS; i++) {
            call.run();
        }
        long deadline = System.nanoTime() + JIT_WAIT.toNanos();
        for (int stretch = 1; ; stretch++) {
            boolean idleBefore = JitWatch.compileQueueIdle(); // these reads allocate: outside the measurement
            long othersBefore = sum(THREADS.getThreadAllocatedBytes(others));
            Instant from = Instant.now();
            long before = THREADS.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < MEASURED_CALLS; i++) {
                call.run();
            }
            long caller = THREADS.getCurrentThreadAllocatedBytes() - before;
            Instant to = Instant.now();
            long bytes = caller + sum(THREADS.getThreadAllocatedBytes(others)) - othersBefore;
            try {
                if (idleBefore && !jit.wasBusy(from, to)) {
                    System.out.println("AllocationTest: " + bytes + " bytes over " + MEASURED_CALLS + " calls, after "
                            + (stretch - 1) + " stretches with the JIT busy");
                    return bytes;
                }
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("the JIT was busy in each of " + stretch + " stretches of " + MEASURED_CALLS
                        + " calls for " + JIT_WAIT + " (the last allocated " + bytes + " bytes):\n"
                        + JitWatch.compileQueue());
            }
        }
    }

    /** A norm, then a clip to 0.9999 of it, which has to scale every element. */
    private static long allocatedBytes(Gradients grads) {
        return allocatedBytes(() -> {
            double norm = GradClip.totalNorm(grads);
            assertEquals(norm, GradClip.clipGradNorm(grads, 0.9999 * norm));
            assertTrue(GradClip.totalNorm(grads) < norm);
        });
    }

    /** The same through the float32 list shorthands, which reuse the set built from the same segments. */
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
            List<MemorySegment> grads = grads(arena, false);
            assertEquals(0, allocatedBytes(Gradients.of(DType.FLOAT32, grads)));
            assertEquals(0, allocatedBytes(grads));
        }
    }

    @Test
    void normAndClipAllocateNothingOnNativeSegmentsInShuffledOrder() {
        try (Arena arena = Arena.ofConfined()) {
            List<MemorySegment> grads = grads(arena, true);
            assertEquals(0, allocatedBytes(Gradients.of(DType.FLOAT32, grads)));
            assertEquals(0, allocatedBytes(grads));
        }
    }

    /** A LinkedList is read through one iterator per call: at most the iterator is allocated, never a copy of the list. */
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

    /** {@link #allocatedBytes(Runnable, long[])}, counting gradclip's worker threads too. */
    private static long allocatedBytesOnAllThreads(Runnable call) {
        long[] workers = Thread.getAllStackTraces().keySet().stream() // allocates: before the measurement
                .filter(t -> t.getName().startsWith("gradclip-worker-") && t.isAlive())
                .mapToLong(Thread::threadId).toArray();
        return allocatedBytes(call, workers);
    }

    private static long sum(long[] values) {
        long sum = 0;
        for (long v : values) {
            sum += Math.max(0, v); // -1 for a thread that ended
        }
        return sum;
    }

    /**
     * Norm types other than 1, 2 and +Infinity (2.5 through the static methods, 3 through a two-thread
     * Clipper with a report): {@code StrictMath.pow} allocated 96 bytes per element per call.
     */
    @Test
    void otherNormTypesAllocateNothing() {
        try (Arena arena = Arena.ofShared()) {
            Gradients grads = Tensors.gradients(arena, Tensors.mixed(79, 5, false), 0); // every dtype, 4,731 elements
            MemorySegment[] backup = new MemorySegment[grads.size()];
            for (int i = 0; i < backup.length; i++) {
                backup[i] = arena.allocate(Math.max(1, grads.segment(i).byteSize())).copyFrom(grads.segment(i));
            }
            GradReport report = new GradReport(grads);
            try (Clipper clipper = Clipper.builder().maxNorm(1e-6).normType(3).threads(2).minParallelBytes(0).build()) {
                Runnable call = () -> {
                    for (int i = 0; i < backup.length; i++) {
                        MemorySegment.copy(backup[i], 0, grads.segment(i), 0, grads.segment(i).byteSize());
                    }
                    double norm = GradClip.totalNorm(grads, 2.5);
                    assertEquals(norm, GradClip.clipGradNorm(grads, norm / 2, 2.5));
                    assertTrue(clipper.clip(grads, report) > 0);
                };
                assertEquals(0, allocatedBytesOnAllThreads(call));
            }
        }
    }

    /** The report's log line finds the largest tensor without sorting: on 100k tensors it allocated 2.5 MB. */
    @Test
    void aReportsLogLineDoesNotGrowWithTheTensorCount() {
        Gradients.Builder builder = Gradients.builder();
        for (int i = 0; i < 100_000; i++) {
            builder.add("t" + i, MemorySegment.ofArray(new float[] {i % 1000}), DType.FLOAT32);
        }
        Gradients grads = builder.build();
        GradReport report = new GradReport(grads);
        try (Clipper clipper = Clipper.builder().maxNorm(1).threads(1).build()) {
            clipper.clip(grads, report);
        }
        String line = report.toString();
        assertTrue(line.contains("largest t999 999"), line);
        long before = THREADS.getCurrentThreadAllocatedBytes();
        for (int i = 0; i < 10; i++) {
            report.toString();
        }
        long bytes = (THREADS.getCurrentThreadAllocatedBytes() - before) / 10;
        assertTrue(bytes < 64 * 1024, bytes + " bytes per toString()");
    }

    /**
     * The control: a {@code float[][]} call wraps each array in a segment and builds its set anew, as
     * its javadoc says, and the probe must see that (a few hundred bytes per tensor and call).
     */
    @Test
    void theMeasurementSeesAllocationWhereThereIsSome() {
        float[][] grads = Buffers.toArrays(grads(Arena.ofAuto(), false));
        long bytes = allocatedBytes(() -> {
            double norm = GradClip.totalNorm(grads);
            GradClip.clipGradNorm(grads, 0.9999 * norm);
        });
        long perTensorAndCall = bytes / (2L * MEASURED_CALLS * grads.length);
        System.out.println("AllocationTest: the float[][] shorthand allocates " + perTensorAndCall
                + " bytes per tensor and call (" + grads.length + " tensors)");
        assertTrue(perTensorAndCall > 0 && perTensorAndCall < 1024, perTensorAndCall + " bytes per tensor and call");
    }
}
