package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** A Clipper's threads and life: the thread cap, workers that end with their Clipper, and a closed Clipper. */
class ClipperLifecycleTest {

    private static Set<Thread> liveWorkers() {
        Set<Thread> workers = new java.util.HashSet<>(Thread.getAllStackTraces().keySet());
        workers.removeIf(t -> !t.getName().startsWith("gradclip-worker-") || !t.isAlive());
        return workers;
    }

    /**
     * A Clipper dropped without {@code close()} stops its workers once the garbage collector finds it
     * unreachable: 200 dropped two-thread Clippers left 200 live threads. Waits for the cleaner as long
     * as a loaded machine needs (up to two minutes of GCs), and follows only the threads these Clippers started.
     */
    @Test
    void droppedClippersStopTheirWorkers() throws InterruptedException {
        Set<Thread> known = liveWorkers();
        List<Thread> started = new ArrayList<>();
        int clippers = 200;
        for (int i = 0; i < clippers; i++) {
            Clipper clipper = Clipper.builder().maxNorm(1).threads(2).minParallelBytes(0).build();
            Set<Thread> now = liveWorkers(); // while the Clipper is still in use below
            now.removeAll(known);
            assertEquals(1, now.size(), "a two-thread Clipper starts one worker");
            started.addAll(now);
            known.addAll(now);
            clipper.clip(Gradients.of(new float[] {3, 4}, new float[] {1}));
        }
        long deadline = System.nanoTime() + 120_000_000_000L;
        while (started.stream().anyMatch(Thread::isAlive) && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(100);
        }
        long alive = started.stream().filter(Thread::isAlive).count();
        assertEquals(0, alive, alive + " of " + clippers + " workers of unreachable Clippers are still running");
    }

    @Test
    void closeStopsTheWorkersAtOnce() throws InterruptedException {
        Set<Thread> before = liveWorkers();
        Clipper clipper = Clipper.builder().maxNorm(1).threads(3).build();
        List<Thread> started = new ArrayList<>(liveWorkers());
        started.removeAll(before);
        assertEquals(2, started.size());
        clipper.close();
        for (Thread worker : started) {
            worker.join(10_000);
            assertFalse(worker.isAlive(), worker.getName() + " outlived close()");
        }
        clipper.close(); // idempotent
    }

    /**
     * A closed Clipper throws on every clip, small or large, with or without a report, at one thread or
     * several, and writes nothing: small calls that never reach the workers included.
     */
    @Test
    void aClosedClipperThrowsOnEveryClipAndWritesNothing() {
        try (Arena arena = Arena.ofShared()) {
            Gradients small = Tensors.gradients(arena, Tensors.mixed(5, 4, false), 0);
            List<Tensors.Tensor> large = new ArrayList<>(Tensors.mixed(6, 4, false));
            large.add(new Tensors.Tensor("large", DType.FLOAT32,
                    Tensors.values(new java.util.SplittableRandom(6), DType.FLOAT32, 1 << 19, false)));
            Gradients big = Tensors.gradients(arena, large, 0);
            for (int threads : new int[] {1, 2}) {
                Clipper clipper = Clipper.builder().maxNorm(1e-9).threads(threads).build();
                clipper.close();
                for (Gradients grads : List.of(small, big)) {
                    long[] bits = Tensors.allBits(grads);
                    GradReport report = new GradReport(grads);
                    IllegalStateException e = assertThrows(IllegalStateException.class, () -> clipper.clip(grads));
                    assertTrue(e.getMessage().contains("closed"), e.getMessage());
                    assertThrows(IllegalStateException.class, () -> clipper.clip(grads, report));
                    assertArrayEquals(bits, Tensors.allBits(grads), threads + " threads: nothing written");
                }
            }
        }
    }

    /**
     * Thread counts: 1 to {@link Clipper#MAX_THREADS}. {@code threads(10000)} took 9.8 s to build and
     * {@code Integer.MAX_VALUE} ran out of memory; both are rejected now, naming the argument.
     */
    @Test
    void threadCountsBeyondTheCapAreRejected() {
        for (int threads : new int[] {0, -1, Clipper.MAX_THREADS + 1, 10_000, Integer.MAX_VALUE}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Clipper.builder().threads(threads));
            assertTrue(e.getMessage().contains("threads must be in 1.." + Clipper.MAX_THREADS), e.getMessage());
        }
        try (Clipper clipper = Clipper.builder().maxNorm(1).build()) {
            assertEquals(Math.min(Runtime.getRuntime().availableProcessors(), Clipper.MAX_THREADS), clipper.threads());
        }
        try (Clipper clipper = Clipper.builder().maxNorm(1).threads(Clipper.MAX_THREADS).minParallelBytes(0).build()) {
            float[] g = {3, 4};
            assertEquals(5, clipper.clip(Gradients.of(g)));
            assertEquals(Clipper.MAX_THREADS, clipper.threads());
        }
    }
}
