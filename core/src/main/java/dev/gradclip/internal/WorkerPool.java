package dev.gradclip.internal;

import java.lang.ref.Cleaner;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Daemon threads that run one task's chunks beside the calling thread, which takes chunk 0. The
 * threads are created once and parked between calls; a call allocates nothing. One call at a time.
 */
final class WorkerPool implements AutoCloseable {

    /** One call's work: {@code run(w)} processes chunk {@code w}. */
    interface Task {
        void run(int worker);
    }

    /**
     * Spins before parking: a hand-off to a spinning thread takes well under a microsecond, an
     * unpark tens of microseconds. Short, because between training steps the cores belong to others.
     */
    private static final int SPINS = 20_000;

    /** Closes the pools whose owner became unreachable without being closed; its one thread starts with the first pool. */
    private static final Cleaner CLEANER = Cleaner.create();

    private final Thread[] threads; // threads[0] is unused: worker 0 is the caller
    private final Throwable[] failures;
    private final AtomicInteger pending = new AtomicInteger();
    private volatile Task task;
    private volatile int active;
    private volatile int generation;
    private volatile Thread caller;
    private volatile boolean closed;

    WorkerPool(int workers) {
        threads = new Thread[workers];
        failures = new Throwable[workers];
        for (int w = 1; w < workers; w++) {
            int index = w;
            Thread thread = new Thread(() -> loop(index), "gradclip-worker-" + w);
            thread.setDaemon(true); // a forgotten Clipper never keeps the JVM alive
            threads[w] = thread;
            thread.start();
        }
    }

    /**
     * Closes this pool once {@code owner} is unreachable, unless {@link Cleaner.Cleanable#clean()} closed
     * it first. The workers hold the pool, never the owner, so a forgotten owner does become unreachable.
     */
    Cleaner.Cleanable closeWhenUnreachable(Object owner) {
        return CLEANER.register(owner, this::close);
    }

    int workers() {
        return threads.length;
    }

    /** A worker thread, to ask whether segments are accessible from the pool's threads. */
    Thread anyWorker() {
        return threads.length > 1 ? threads[1] : Thread.currentThread();
    }

    /** Runs chunks 0 to {@code workers - 1} and returns when all are done; rethrows the first failure. */
    void run(Task task, int workers) {
        if (closed) {
            throw new IllegalStateException("the Clipper is closed");
        }
        this.task = task;
        this.active = workers;
        this.caller = Thread.currentThread();
        pending.set(workers - 1);
        generation++; // publishes the fields above to the workers
        for (int w = 1; w < workers; w++) {
            LockSupport.unpark(threads[w]);
        }
        try {
            task.run(0);
        } catch (Throwable t) {
            failures[0] = t;
        }
        for (int spins = 0; pending.get() != 0; spins++) {
            if (spins < SPINS) {
                Thread.onSpinWait();
            } else {
                LockSupport.park(this);
            }
        }
        this.task = null;
        rethrowFirstFailure(workers);
    }

    private void rethrowFirstFailure(int workers) {
        Throwable first = null;
        for (int w = 0; w < workers; w++) {
            if (first == null) {
                first = failures[w];
            }
            failures[w] = null;
        }
        if (first instanceof RuntimeException e) {
            throw e;
        }
        if (first instanceof Error e) {
            throw e;
        }
        if (first != null) {
            throw new IllegalStateException(first);
        }
    }

    private void loop(int index) {
        int seen = 0;
        int spins = 0;
        while (true) {
            int current = generation;
            if (current == seen) {
                if (closed) {
                    return; // only once every published call has been served: a caller never waits on us forever
                }
                if (spins++ < SPINS) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.park(this);
                }
                continue;
            }
            seen = current;
            spins = 0;
            if (index < active) {
                try {
                    task.run(index);
                } catch (Throwable t) {
                    failures[index] = t;
                }
                if (pending.decrementAndGet() == 0) {
                    LockSupport.unpark(caller);
                }
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (int w = 1; w < threads.length; w++) {
            LockSupport.unpark(threads[w]);
        }
    }
}
