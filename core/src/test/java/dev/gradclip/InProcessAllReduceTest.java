package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The in-process all-reduce: results, the contract checks, and that nobody blocks forever. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class InProcessAllReduceTest {

    /** A participant's body: gets its index, returns what it wants checked. */
    @FunctionalInterface
    interface Participant<T> {
        T run(int index) throws Exception;
    }

    /** Runs {@code n} participants on their own threads and returns each one's result or exception. */
    static <T> List<Object> runAll(int n, Participant<T> body) throws InterruptedException {
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int index = i;
                futures.add(pool.submit(() -> body.run(index)));
            }
            List<Object> outcomes = new ArrayList<>();
            for (Future<T> future : futures) {
                try {
                    outcomes.add(future.get(30, TimeUnit.SECONDS));
                } catch (java.util.concurrent.ExecutionException e) {
                    outcomes.add(e.getCause());
                } catch (java.util.concurrent.TimeoutException e) {
                    throw new AssertionError("a participant blocked for 30 s", e);
                }
            }
            return outcomes;
        } finally {
            pool.shutdownNow();
            assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS), "participants did not finish");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 3, 4, 5, 6, 7, 8})
    void everyParticipantGetsTheElementWiseSumAndMax(int n) throws InterruptedException {
        int length = 37;
        long[][] inputs = new long[n][length];
        SplittableRandom random = new SplittableRandom(n);
        for (long[] words : inputs) {
            for (int k = 0; k < length; k++) {
                // Wide values, negatives, and one column of extremes to exercise wrap-around and MAX.
                words[k] = k == 0 ? (random.nextBoolean() ? Long.MAX_VALUE : Long.MIN_VALUE) : random.nextLong() >> 8;
            }
        }
        long[] sum = new long[length];
        long[] max = new long[length];
        Arrays.fill(max, Long.MIN_VALUE);
        for (long[] words : inputs) {
            for (int k = 0; k < length; k++) {
                sum[k] += words[k];
                max[k] = Math.max(max[k], words[k]);
            }
        }
        InProcessAllReduce hook = new InProcessAllReduce(n);
        List<Object> outcomes = runAll(n, i -> {
            long[] s = inputs[i].clone();
            long[] m = inputs[i].clone();
            // Many rounds back to back: the alternating round buffers must never mix two rounds.
            for (int rep = 0; rep < 200; rep++) {
                s = inputs[i].clone();
                hook.sum(s);
                m = inputs[i].clone();
                hook.max(m);
            }
            return new long[][] {s, m};
        });
        for (Object outcome : outcomes) {
            long[][] result = (long[][]) outcome;
            assertArrayEquals(sum, result[0]);
            assertArrayEquals(max, result[1]);
        }
    }

    @Test
    void differentWordCountsFailOnEveryParticipantAndChangeNothing() throws InterruptedException {
        int n = 4;
        InProcessAllReduce hook = new InProcessAllReduce(n);
        List<long[]> arrays = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long[] words = new long[i == 2 ? 5 : 4];
            Arrays.fill(words, i + 1);
            arrays.add(words);
        }
        List<Object> outcomes = runAll(n, i -> {
            hook.sum(arrays.get(i));
            return "no exception";
        });
        for (int i = 0; i < n; i++) {
            IllegalArgumentException e = assertInstanceOf(IllegalArgumentException.class, outcomes.get(i));
            assertTrue(e.getMessage().contains("different word counts") && e.getMessage().contains("5")
                    && e.getMessage().contains("4"), e.getMessage());
            long[] expected = new long[i == 2 ? 5 : 4];
            Arrays.fill(expected, i + 1);
            assertArrayEquals(expected, arrays.get(i), "participant " + i + "'s words changed");
        }
        // The instance stays usable after a mismatch.
        List<Object> next = runAll(n, i -> {
            long[] words = {i};
            hook.sum(words);
            return words[0];
        });
        assertEquals(List.of(6L, 6L, 6L, 6L), next);
    }

    @Test
    void sumMeetingMaxFailsOnEveryParticipant() throws InterruptedException {
        InProcessAllReduce hook = new InProcessAllReduce(3);
        List<Object> outcomes = runAll(3, i -> {
            long[] words = {i};
            if (i == 1) {
                hook.max(words);
            } else {
                hook.sum(words);
            }
            return words[0];
        });
        for (Object outcome : outcomes) {
            IllegalArgumentException e = assertInstanceOf(IllegalArgumentException.class, outcome);
            assertTrue(e.getMessage().contains("different operations"), e.getMessage());
        }
    }

    @Test
    void aMissingParticipantTimesOutAndBreaksTheInstance() throws InterruptedException {
        InProcessAllReduce hook = new InProcessAllReduce(3, Duration.ofMillis(300));
        long start = System.nanoTime();
        List<Object> outcomes = runAll(2, i -> {
            hook.sum(new long[] {i});
            return "no exception";
        });
        assertTrue(System.nanoTime() - start < TimeUnit.SECONDS.toNanos(20));
        for (Object outcome : outcomes) {
            IllegalStateException e = assertInstanceOf(IllegalStateException.class, outcome);
            assertTrue(e.getMessage().contains("timed out") || e.getMessage().contains("broken"), e.getMessage());
            assertTrue(e.getMessage().contains("of 3 participants"), e.getMessage());
        }
        IllegalStateException later = assertThrows(IllegalStateException.class, () -> hook.max(new long[1]));
        assertTrue(later.getMessage().contains("broken"), later.getMessage());
    }

    @Test
    void anInterruptedParticipantGetsItsCauseAndReleasesTheOthers() throws Exception {
        InProcessAllReduce hook = new InProcessAllReduce(3);
        Throwable[] caught = new Throwable[2];
        boolean[] stillInterrupted = new boolean[1];
        Thread[] threads = new Thread[2];
        for (int i = 0; i < 2; i++) {
            int index = i;
            threads[i] = new Thread(() -> {
                try {
                    hook.sum(new long[] {index});
                } catch (Throwable t) {
                    caught[index] = t;
                    if (index == 0) {
                        stillInterrupted[0] = Thread.currentThread().isInterrupted();
                    }
                }
            });
            threads[i].start();
        }
        // Both wait for a third participant that never comes, until one is interrupted.
        while (threads[0].getState() != Thread.State.TIMED_WAITING || threads[1].getState() != Thread.State.TIMED_WAITING) {
            Thread.sleep(5);
        }
        threads[0].interrupt();
        for (Thread thread : threads) {
            thread.join(10_000);
            assertTrue(!thread.isAlive(), "a participant is still blocked");
        }
        IllegalStateException interrupted = assertInstanceOf(IllegalStateException.class, caught[0]);
        assertInstanceOf(InterruptedException.class, interrupted.getCause());
        assertTrue(stillInterrupted[0], "the interrupt flag must be restored");
        IllegalStateException released = assertInstanceOf(IllegalStateException.class, caught[1]);
        assertTrue(released.getMessage().contains("interrupted"), released.getMessage());
        assertThrows(IllegalStateException.class, () -> hook.sum(new long[] {1}));
    }

    @Test
    void oneParticipantReturnsItsOwnWords() {
        InProcessAllReduce hook = new InProcessAllReduce(1);
        long[] words = {3, -4, Long.MIN_VALUE};
        hook.sum(words);
        assertArrayEquals(new long[] {3, -4, Long.MIN_VALUE}, words);
        hook.max(words);
        assertArrayEquals(new long[] {3, -4, Long.MIN_VALUE}, words);
    }

    @Test
    void emptyWordsAreAValidRound() throws InterruptedException {
        InProcessAllReduce hook = new InProcessAllReduce(2);
        List<Object> outcomes = runAll(2, i -> {
            long[] words = new long[0];
            hook.sum(words);
            return words.length;
        });
        assertEquals(List.of(0, 0), outcomes);
    }

    @Test
    void badArgumentsNameTheArgument() {
        IllegalArgumentException zero = assertThrows(IllegalArgumentException.class, () -> new InProcessAllReduce(0));
        assertTrue(zero.getMessage().contains("participants"), zero.getMessage());
        IllegalArgumentException timeout = assertThrows(IllegalArgumentException.class,
                () -> new InProcessAllReduce(2, Duration.ZERO));
        assertTrue(timeout.getMessage().contains("timeout"), timeout.getMessage());
        assertThrows(NullPointerException.class, () -> new InProcessAllReduce(2, null));
        NullPointerException words = assertThrows(NullPointerException.class, () -> new InProcessAllReduce(2).sum(null));
        assertTrue(words.getMessage().contains("words"), words.getMessage());
    }

    /** A timeout beyond what a long holds in nanoseconds (292 years) means "wait as long as it takes", not an ArithmeticException. */
    @Test
    void timeoutsTooLongForNanosecondsSaturate() throws InterruptedException {
        for (Duration timeout : new Duration[] {Duration.ofDays(365_000_000_000L), Duration.ofSeconds(Long.MAX_VALUE, 999_999_999),
                Duration.ofNanos(Long.MAX_VALUE)}) {
            InProcessAllReduce hook = new InProcessAllReduce(2, timeout);
            List<Object> outcomes = runAll(2, i -> {
                if (i == 1) {
                    Thread.sleep(50); // participant 0 waits, against the saturated deadline
                }
                long[] words = {i + 1};
                hook.sum(words);
                return words[0];
            });
            assertEquals(List.of(3L, 3L), outcomes, timeout.toString());
        }
    }

    @Test
    void callsAllocateNothingAfterWarmUp() throws InterruptedException {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        InProcessAllReduce hook = new InProcessAllReduce(2);
        List<Object> outcomes = runAll(2, i -> {
            long[] words = new long[64];
            for (int rep = 0; rep < 20_000; rep++) {
                hook.sum(words);
                hook.max(words);
            }
            long before = threads.getCurrentThreadAllocatedBytes();
            for (int rep = 0; rep < 2_000; rep++) {
                hook.sum(words);
                hook.max(words);
            }
            return threads.getCurrentThreadAllocatedBytes() - before;
        });
        // One array per call would be 2 MB here; a monitor's wait allocates nothing on the heap.
        for (Object bytes : outcomes) {
            assertTrue((Long) bytes < 4_000, "allocated " + bytes + " bytes in 4000 calls");
        }
    }
}
