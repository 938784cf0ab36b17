package dev.gradclip;

import java.time.Duration;
import java.util.Objects;

/**
 * An {@link AllReduce} over the threads of one JVM: a fixed number of participants share one
 * instance, each passes its words to {@link #sum} or {@link #max}, waits until all have, and gets
 * the element-wise result. For users who shard a model's gradients across threads, and for testing
 * the hook's contract without MPI.
 *
 * <pre>{@code
 * InProcessAllReduce hook = new InProcessAllReduce(4);
 * // in thread p of 4, with its own shard and its own Clipper:
 * Clipper clipper = Clipper.builder().maxNorm(1.0).allReduce(hook.participant(p)).build();
 * double norm = clipper.clip(shard);          // the same bits in every thread
 * }</pre>
 *
 * <p>{@link #participant(int)} gives a thread's view of the instance with its {@link #rank()}, so
 * that when one participant's clip fails, the others' exceptions name it; the instance itself works
 * as a hook too, with rank -1 (unknown).
 *
 * <p>The contract is that of any collective: each participant makes the same sequence of calls with
 * the same word count, and one thread acts as one participant. What it checks, on every participant
 * of a round and without blocking anyone:
 * <ul>
 *   <li>different word counts, or a {@code sum} meeting a {@code max}: an
 *       {@link IllegalArgumentException} on every participant of that round, and no word changes;
 *       the instance stays usable;
 *   <li>a participant that waits longer than the timeout, or is interrupted: that participant gets
 *       an {@link IllegalStateException}, and the instance is broken for good: every participant
 *       that waits, or calls later, gets one too (as a {@link java.util.concurrent.CyclicBarrier}
 *       breaks). Participants that wait for a thread that died are released the same way.
 * </ul>
 * A {@code null} array throws {@link NullPointerException} at once, before joining the round. A
 * timeout too long for a {@code long} of nanoseconds (about 292 years) waits without limit.
 *
 * <p>The sum wraps on overflow, as MPI's int64 sum does in practice; gradclip's words leave room
 * for it. After warm-up a call allocates nothing: two rounds' buffers alternate, which suffices
 * because round {@code g + 2} cannot open before every participant has left round {@code g}.
 */
public final class InProcessAllReduce implements AllReduce {

    /** Long enough for any step of a training loop to catch up; short enough that a test ends. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(5);

    private enum Op { SUM, MAX }

    /** One rendezvous: the combined words so far and who has arrived. */
    private static final class Round {
        long[] words = new long[0];
        int count;
        Op op;
        int arrived;
        boolean complete;
        String mismatch;

        void open() {
            count = -1;
            op = null;
            arrived = 0;
            complete = false;
            mismatch = null;
        }
    }

    private final int participants;
    private final Duration timeout;
    /** The timeout in nanoseconds, saturated at {@code Long.MAX_VALUE}: the deadline arithmetic wraps correctly then. */
    private final long timeoutNanos;
    /** Guards everything below. A monitor, because its waits allocate nothing on the Java heap. */
    private final Object lock = new Object();
    private final Round[] rounds = {new Round(), new Round()};
    private long generation;
    private String broken;

    /**
     * An all-reduce over {@code participants} threads, each waiting at most {@link #DEFAULT_TIMEOUT}.
     *
     * @param participants the number of threads in every call, >= 1
     * @throws IllegalArgumentException if {@code participants < 1}
     */
    public InProcessAllReduce(int participants) {
        this(participants, DEFAULT_TIMEOUT);
    }

    /**
     * An all-reduce over {@code participants} threads.
     *
     * @param participants the number of threads in every call, >= 1
     * @param timeout how long one participant waits for the others in one call
     * @throws IllegalArgumentException if {@code participants < 1} or {@code timeout} is not positive
     */
    public InProcessAllReduce(int participants, Duration timeout) {
        if (participants < 1) {
            throw new IllegalArgumentException("participants must be at least 1, got " + participants);
        }
        Objects.requireNonNull(timeout, "timeout");
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be positive, got " + timeout);
        }
        this.participants = participants;
        this.timeout = timeout;
        this.timeoutNanos = saturatedNanos(timeout);
        rounds[0].open();
    }

    /** {@code timeout} in nanoseconds, or {@code Long.MAX_VALUE} if it is longer (about 292 years). */
    static long saturatedNanos(Duration timeout) {
        return timeout.compareTo(Duration.ofNanos(Long.MAX_VALUE)) >= 0 ? Long.MAX_VALUE : timeout.toNanos();
    }

    /**
     * The number of threads that take part in every call.
     *
     * @return the participant count
     */
    public int participants() {
        return participants;
    }

    /**
     * The hook for participant {@code rank}: this all-reduce, whose {@link AllReduce#rank()} is
     * {@code rank}. Give each participant's thread its own rank; the calls are this instance's.
     *
     * @param rank the participant's index, from 0
     * @return a hook that reports {@code rank}
     * @throws IllegalArgumentException if {@code rank} is not in {@code [0, participants())}
     */
    public AllReduce participant(int rank) {
        if (rank < 0 || rank >= participants) {
            throw new IllegalArgumentException("rank must be in [0, " + participants + "), got " + rank);
        }
        return new AllReduce() {
            @Override
            public void sum(long[] words) {
                InProcessAllReduce.this.sum(words);
            }

            @Override
            public void max(long[] words) {
                InProcessAllReduce.this.max(words);
            }

            @Override
            public int rank() {
                return rank;
            }

            @Override
            public String toString() {
                return InProcessAllReduce.this + " as participant " + rank;
            }
        };
    }

    @Override
    public void sum(long[] words) {
        reduce(words, Op.SUM);
    }

    @Override
    public void max(long[] words) {
        reduce(words, Op.MAX);
    }

    private void reduce(long[] words, Op op) {
        Objects.requireNonNull(words, "words");
        if (participants == 1) {
            return;
        }
        synchronized (lock) {
            if (broken != null) {
                throw new IllegalStateException("this InProcessAllReduce is broken: " + broken);
            }
            long myGeneration = generation;
            Round round = rounds[(int) (myGeneration & 1)];
            contribute(round, words, op);
            if (++round.arrived == participants) {
                round.complete = true;
                generation++;
                rounds[(int) (generation & 1)].open();
                lock.notifyAll();
            } else {
                awaitRound(round, myGeneration);
            }
            if (round.mismatch != null) {
                throw new IllegalArgumentException(round.mismatch);
            }
            System.arraycopy(round.words, 0, words, 0, words.length);
        }
    }

    private void contribute(Round round, long[] words, Op op) {
        if (round.arrived == 0) {
            round.op = op;
            round.count = words.length;
            if (round.words.length < words.length) {
                round.words = new long[words.length];
            }
            System.arraycopy(words, 0, round.words, 0, words.length);
            return;
        }
        if (round.mismatch != null) {
            return;
        }
        if (round.count != words.length) {
            round.mismatch = "participants passed different word counts in one all-reduce (" + round.count + " and "
                    + words.length + "): every participant must pass the same count, in the same call sequence";
        } else if (round.op != op) {
            round.mismatch = "participants called different operations in one all-reduce (" + name(round.op) + " and "
                    + name(op) + "): every participant must make the same call sequence";
        } else if (op == Op.SUM) {
            for (int i = 0; i < words.length; i++) {
                round.words[i] += words[i];
            }
        } else {
            for (int i = 0; i < words.length; i++) {
                round.words[i] = Math.max(round.words[i], words[i]);
            }
        }
    }

    private void awaitRound(Round round, long myGeneration) {
        long deadline = System.nanoTime() + timeoutNanos;
        try {
            while (generation == myGeneration && broken == null) {
                long remaining = deadline - System.nanoTime();
                if (remaining <= 0) {
                    breakAll("a participant waited " + timeout + " and only " + round.arrived
                            + " of " + participants + " participants arrived");
                    throw new IllegalStateException("all-reduce timed out after " + timeout
                            + ": only " + round.arrived + " of " + participants + " participants arrived");
                }
                lock.wait(remaining / 1_000_000, (int) (remaining % 1_000_000));
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            breakAll("a participant was interrupted while waiting");
            throw new IllegalStateException("interrupted while waiting for the other participants of an all-reduce", e);
        }
        if (!round.complete) {
            throw new IllegalStateException("this InProcessAllReduce is broken: " + broken);
        }
    }

    private void breakAll(String reason) {
        broken = reason;
        lock.notifyAll();
    }

    private static String name(Op op) {
        return op == Op.SUM ? "sum" : "max";
    }

    @Override
    public String toString() {
        synchronized (lock) {
            return "InProcessAllReduce[" + participants + " participants" + (broken == null ? "" : ", broken: " + broken) + "]";
        }
    }
}
