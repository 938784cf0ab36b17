package dev.gradclip.internal;

import java.lang.ref.Cleaner;

/**
 * Runs a {@link BlockPass} over a table's blocks: on the calling thread, or split into chunks of
 * whole blocks over a {@link WorkerPool}, one chunk per worker ({@link TensorTable#chunks}). Threads
 * are an execution detail: a block is the same block whichever chunk holds it, so a pass whose
 * per-chunk results merge exactly gives the same bits for any thread count.
 *
 * <p>Not thread-safe: one pass at a time (the engine's owner serializes its calls).
 */
final class Scheduler implements WorkerPool.Task, AutoCloseable {

    private final WorkerPool pool; // null for one thread
    /** Closes the pool: by {@link #close()}, or by the cleaner once this scheduler is unreachable. */
    private final Cleaner.Cleanable closer;
    private final int threads;
    private final long minParallelBytes;

    // The pass running now, read by every worker: set before the hand-off, which publishes it.
    private TensorTable table;
    private BlockPass pass;
    private long[] bounds;

    Scheduler(int threads, long minParallelBytes) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, was " + threads);
        }
        this.threads = threads;
        this.minParallelBytes = minParallelBytes;
        this.pool = threads > 1 ? new WorkerPool(threads) : null;
        this.closer = pool == null ? null : pool.closeWhenUnreachable(this);
    }

    int threads() {
        return threads;
    }

    /**
     * Runs {@code pass} over every block of {@code table} and returns the number of chunks it ran
     * in: the pass's workers 0 to that number minus 1 hold its results. The table is forgotten
     * afterwards, so the scheduler keeps no gradients alive.
     */
    int run(TensorTable table, BlockPass pass) {
        int chunks = chunksFor(table);
        this.table = table;
        this.pass = pass;
        this.bounds = table.chunks(chunks);
        try {
            if (chunks == 1) {
                run(0);
            } else {
                pool.run(this, chunks);
            }
        } finally {
            this.table = null;
            this.pass = null;
        }
        return chunks;
    }

    /** How many chunks a pass over {@code table} runs in: all threads, unless the work is small or confined to the caller. */
    int chunksFor(TensorTable table) {
        if (pool == null || table.bytes() < minParallelBytes || !table.accessibleBy(pool.anyWorker())) {
            return 1; // small work, or segments confined to the calling thread
        }
        return threads;
    }

    /** Runs chunks 0 to {@code chunks - 1} of a task that splits its own work: chunk 0 on the caller. */
    void run(WorkerPool.Task task, int chunks) {
        if (chunks == 1) {
            task.run(0);
        } else {
            pool.run(task, chunks);
        }
    }

    /** Chunk {@code w}: global blocks {@code bounds[w]} to {@code bounds[w + 1]}, tensor by tensor. */
    @Override
    public void run(int w) {
        pass.beginChunk(w);
        long block = bounds[w];
        long end = bounds[w + 1];
        if (block >= end) {
            return;
        }
        int tensor = table.tensorOfBlock(block);
        while (block < end) {
            while (table.blockStart(tensor + 1) <= block) {
                tensor++; // empty tensors have no blocks
            }
            long first = table.blockStart(tensor);
            long next = table.blockStart(tensor + 1);
            long stop = Math.min(end, next);
            long elements = table.elements(tensor);
            pass.beginTensor(w, tensor);
            for (long b = block; b < stop; b++) {
                long from = (b - first) * Kernels.BLOCK;
                int count = (int) Math.min(Kernels.BLOCK, elements - from);
                pass.block(w, tensor, table.type(tensor), table.segment(tensor), from, count);
            }
            pass.endTensor(w, tensor, block == first, stop == next);
            block = stop;
        }
    }

    /** Stops the workers now; a scheduler that is dropped unclosed stops them once the GC finds it unreachable. */
    @Override
    public void close() {
        if (closer != null) {
            closer.clean();
        }
    }
}
