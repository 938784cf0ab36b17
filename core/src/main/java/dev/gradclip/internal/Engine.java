package dev.gradclip.internal;

/**
 * The one internal entry of every clip: {@link dev.gradclip.GradClip}'s static methods (on
 * {@link #ofThisThread()}), {@link dev.gradclip.Clipper} (on its own engine, with its threads) and
 * adaptive clipping all read and write gradients through these methods, over a {@link TensorTable}.
 *
 * <p>Each job has its class: the {@link Scheduler} splits a table into chunks of whole blocks over
 * the threads; the {@link NormPass} sums blocks into exact sums ({@link ChunkSums}) and per-tensor
 * figures ({@link TensorFigures}), with {@link PowerSums} for the norms of other p; the
 * {@link MapPass} scales and clamps; {@link UnitRuns}, adaptive clipping's passes over runs of small
 * units, split their work themselves and run on the same threads. The {@link Kernels} do the
 * arithmetic of one block. A block is the same block on any thread and its sum goes into an exact
 * sum, so every result is the same bits for any thread count.
 *
 * <p>Not thread-safe: one call at a time (the owner serializes). Allocation-free after warm-up.
 */
public final class Engine implements AutoCloseable {

    /**
     * Below this many bytes a call stays on the calling thread: waking a parked worker costs tens of
     * microseconds, about what one core needs for this much memory (docs/performance.md, section
     * "The parallel cut-off").
     */
    public static final long DEFAULT_MIN_PARALLEL_BYTES = 1L << 20;

    /** The static methods' engines: one thread each, so those calls are thread-safe and allocation-free. */
    private static final ThreadLocal<Engine> THIS_THREAD =
            ThreadLocal.withInitial(() -> new Engine(KernelProvider.kernels(), 1, Long.MAX_VALUE));

    private final Kernels kernels;
    private final Scheduler scheduler;
    private final NormPass norms;
    private final MapPass maps;
    /** The global figures of {@link #norm(TensorTable, NormType, double)}. */
    private final NormState state = new NormState();

    public Engine(Kernels kernels, int threads, long minParallelBytes) {
        this.kernels = kernels;
        this.scheduler = new Scheduler(threads, minParallelBytes);
        this.norms = new NormPass(kernels, threads);
        this.maps = new MapPass(kernels);
    }

    /** The calling thread's one-thread engine. */
    public static Engine ofThisThread() {
        return THIS_THREAD.get();
    }

    public int threads() {
        return scheduler.threads();
    }

    public Kernels kernels() {
        return kernels;
    }

    /** The global norm of type {@code type} ({@code p} for POWER) of the table's tensors. */
    public double norm(TensorTable table, NormType type, double p) {
        norms.run(scheduler, table, type, p, false, false, state);
        return state.norm();
    }

    /**
     * The norm pass: fills {@code out} with the norm state of the table's tensors. With
     * {@code perTensor}, also each tensor's norm, largest magnitude and (with
     * {@code countNonFinite}) count of non-finite elements, read from {@link #tensorNorm} and friends.
     */
    public void norm(TensorTable table, NormType type, double p, boolean perTensor, boolean countNonFinite,
                     NormState out) {
        norms.run(scheduler, table, type, p, perTensor, countNonFinite, out);
    }

    public double tensorNorm(int i) {
        return norms.tensors.norm[i];
    }

    public double tensorMax(int i) {
        return norms.tensors.max[i];
    }

    public long tensorNonFinite(int i) {
        return norms.tensors.nonFinite[i];
    }

    /**
     * Applies a clip's coefficient: nothing when it is 1, so read-only tensors are fine then;
     * otherwise checks that every tensor with elements is writable, and scales.
     *
     * @return whether anything was written
     * @throws IllegalArgumentException naming the first read-only tensor, before anything is written
     */
    public boolean clip(TensorTable table, double c) {
        if (c == 1.0) {
            return false;
        }
        table.checkWritable("scaled");
        scale(table, c);
        return true;
    }

    /** Multiplies every element by {@code c}, unchecked: in double for float64, by {@code (float) c} for the other types. */
    public void scale(TensorTable table, double c) {
        maps.scale(scheduler, table, c);
    }

    /**
     * Clamps every element to {@code [-bound, bound]}, the bound rounded to each tensor's type; a
     * read-only tensor is fine when none of its elements is beyond the bound.
     *
     * @throws IllegalArgumentException naming the first read-only tensor that has an element to
     *     clamp, before anything is written
     */
    public void clamp(TensorTable table, double bound) {
        for (int i = 0; i < table.size(); i++) {
            if (table.segment(i).isReadOnly() && table.segment(i).byteSize() > 0 && MapPass.clampChanges(table, i, bound)) {
                throw new IllegalArgumentException(table.label(i) + " is read-only but has elements beyond ±"
                        + bound + " to clamp");
            }
        }
        maps.clamp(scheduler, table, bound);
    }

    /** How many chunks a pass over {@code table} runs in: 1, or all threads for large work that they may access. */
    int chunksFor(TensorTable table) {
        return scheduler.chunksFor(table);
    }

    /**
     * Runs chunks 0 to {@code n - 1} of a pass that splits its work itself (adaptive clipping's
     * {@link UnitRuns}), {@code n} from {@link #chunksFor}: chunk 0 on the caller.
     */
    void runChunks(WorkerPool.Task task, int n) {
        scheduler.run(task, n);
    }

    /** Stops the workers now; an engine that is dropped unclosed stops them once the GC finds it unreachable. */
    @Override
    public void close() {
        scheduler.close();
    }
}
