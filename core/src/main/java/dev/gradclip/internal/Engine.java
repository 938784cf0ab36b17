package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Cleaner;

/**
 * Runs the passes of a clip over a {@link TensorTable}: the norm pass (with per-tensor figures when
 * asked), the scale pass and the clamp pass, on one thread or split into chunks of whole blocks over
 * a {@link WorkerPool}. Threads are an execution detail: every chunk runs the same kernels on the
 * same blocks, block sums go into exact sums, and the per-chunk results merge exactly, so the
 * results are the same bits for any thread count.
 *
 * <p>Not thread-safe: one call at a time (the owner serializes). Allocation-free after warm-up.
 */
public final class Engine implements AutoCloseable, WorkerPool.Task {

    /**
     * Below this many bytes a call stays on the calling thread: waking a parked worker costs tens of
     * microseconds, about what one core needs for this much memory (docs/performance.md, section
     * "The parallel cut-off").
     */
    public static final long DEFAULT_MIN_PARALLEL_BYTES = 1L << 20;

    /** Float64 blocks whose largest magnitude is outside [2^-400, 2^400] are summed again, scaled. */
    private static final double SAFE_HIGH = 0x1p400;
    private static final double SAFE_LOW = 0x1p-400;

    private enum Pass { SUMS, MAXIMA, POWERS, SCALE, CLAMP, SCALE_EACH }

    private final Kernels kernels;
    private final WorkerPool pool; // null for one thread
    /** Closes the pool: by {@link #close()}, or by the cleaner once this engine is unreachable. */
    private final Cleaner.Cleanable closer;
    private final long minParallelBytes;
    private final Worker[] workers;

    // The current call, read by every worker.
    private TensorTable table;
    private Pass pass;
    private NormType normType;
    private double p;
    private boolean perTensor;
    /** Whether per-tensor figures include each tensor's largest magnitude (else only its status: NaN, +Infinity or 0). */
    private boolean maxima;
    private boolean countNonFinite;
    private double argument;
    private long[] bounds;
    /** SCALE_EACH: each tensor's factor. */
    private double[] factors;

    // Per-tensor figures of the last norm pass with perTensor, indexed by tensor.
    private double[] tensorNorm = new double[0];
    private double[] tensorMax = new double[0];
    private long[] tensorNonFinite = new long[0];
    private double[] tensorPowerSum = new double[0];

    private final Piece combined = new Piece();

    public Engine(Kernels kernels, int threads, long minParallelBytes) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1, was " + threads);
        }
        this.kernels = kernels;
        this.pool = threads > 1 ? new WorkerPool(threads) : null;
        this.closer = pool == null ? null : pool.closeWhenUnreachable(this);
        this.minParallelBytes = minParallelBytes;
        this.workers = new Worker[threads];
        for (int w = 0; w < threads; w++) {
            workers[w] = new Worker();
        }
    }

    public int threads() {
        return workers.length;
    }

    public Kernels kernels() {
        return kernels;
    }

    /**
     * The norm pass: fills {@code out} with the norm state of the table's tensors. With
     * {@code perTensor}, also each tensor's norm, largest magnitude and (with
     * {@code countNonFinite}) count of non-finite elements, read from {@link #tensorNorm} and friends.
     */
    public void norm(TensorTable table, NormType normType, double p, boolean perTensor, boolean countNonFinite,
                     NormState out) {
        this.maxima = true;
        normPass(table, normType, p, perTensor, countNonFinite, out);
    }

    /**
     * The L2 norm pass with each tensor's norm, for tables of many small tensors (the units of
     * adaptive clipping): the same norms, bit for bit, but {@link #tensorMax} holds only whether the
     * tensor is finite (NaN, +Infinity or 0), except for float64, whose kernel needs the maximum
     * anyway. Tracking the maximum costs up to a fifth of a float32 pass.
     */
    public void tensorNorms(TensorTable table, NormState out) {
        this.maxima = false;
        normPass(table, NormType.L2, 2, true, false, out);
    }

    private void normPass(TensorTable table, NormType normType, double p, boolean perTensor, boolean countNonFinite,
                          NormState out) {
        out.reset(normType, p);
        this.normType = normType;
        this.p = p;
        this.countNonFinite = countNonFinite;
        boolean power = normType == NormType.POWER;
        this.perTensor = perTensor || power;
        if (this.perTensor) {
            ensureTensorCapacity(table.size());
        }
        if (power) {
            // First each tensor's largest magnitude, then the sums relative to it: no overflow, no underflow.
            run(table, Pass.MAXIMA, 0);
            collect(out);
            run(table, Pass.POWERS, 0);
            collectPowers(table, out);
        } else {
            run(table, Pass.SUMS, 0);
            collect(out);
        }
    }

    public double tensorNorm(int i) {
        return tensorNorm[i];
    }

    public double tensorMax(int i) {
        return tensorMax[i];
    }

    public long tensorNonFinite(int i) {
        return tensorNonFinite[i];
    }

    /** Multiplies every element by {@code c}: in double for float64, by {@code (float) c} for the other types. */
    public void scale(TensorTable table, double c) {
        perTensor = false;
        run(table, Pass.SCALE, c);
    }

    /**
     * Multiplies each tensor {@code i} by {@code factors[i]}, as {@link #scale} does, and leaves the
     * tensors whose factor is 1 untouched: per-unit clipping, where the tensors are units.
     */
    public void scaleEach(TensorTable table, double[] factors) {
        perTensor = false;
        this.factors = factors;
        try {
            run(table, Pass.SCALE_EACH, 0);
        } finally {
            this.factors = null;
        }
    }

    /** Clamps every element to {@code [-bound, bound]}, the bound rounded to each tensor's type. */
    public void clamp(TensorTable table, double bound) {
        perTensor = false;
        run(table, Pass.CLAMP, bound);
    }

    /** Whether clamping tensor {@code i} to {@code bound} would change an element (a NaN never changes). */
    public boolean clampChanges(TensorTable table, int i, double bound) {
        DType type = table.type(i);
        double b = boundIn(type, bound);
        MemorySegment segment = table.segment(i);
        for (long k = 0, n = table.elements(i); k < n; k++) {
            double x = type == DType.FLOAT64 ? segment.getAtIndex(ScalarKernels.DOUBLE, k)
                    : ScalarKernels.load(type, segment, k);
            if (Math.abs(x) > b) {
                return true;
            }
        }
        return false;
    }

    /** The clamp bound rounded to the type, as torch converts a Python scalar to the tensor's dtype. */
    public static double boundIn(DType type, double bound) {
        return switch (type) {
            case FLOAT64 -> bound;
            case FLOAT32 -> (float) bound;
            case FLOAT16 -> ScalarKernels.float16ToFloat(ScalarKernels.toFloat16((float) bound));
            case BFLOAT16 -> Float.intBitsToFloat(ScalarKernels.toBfloat16((float) bound) << 16);
        };
    }

    /** One pass over the table; the table is forgotten afterwards, so the engine keeps no gradients alive. */
    private void run(TensorTable table, Pass pass, double argument) {
        this.table = table;
        this.pass = pass;
        this.argument = argument;
        int n = workersFor(table);
        this.bounds = table.chunks(n);
        try {
            if (n == 1) {
                run(0);
            } else {
                pool.run(this, n);
            }
        } finally {
            this.table = null;
        }
    }

    private int workersFor(TensorTable table) {
        if (pool == null || table.bytes() < minParallelBytes || !table.accessibleBy(pool.anyWorker())) {
            return 1; // small work, or segments confined to the calling thread
        }
        return workers.length;
    }

    /** Chunk {@code w}: global blocks {@code bounds[w]} to {@code bounds[w + 1]}. */
    @Override
    public void run(int w) {
        Worker worker = workers[w];
        worker.reset();
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
            long stop = Math.min(end, table.blockStart(tensor + 1));
            worker.beginTensor();
            for (long b = block; b < stop; b++) {
                long from = (b - first) * Kernels.BLOCK;
                int count = (int) Math.min(Kernels.BLOCK, table.elements(tensor) - from);
                block(worker, tensor, from, count);
            }
            worker.endTensor(tensor, block == first, stop == table.blockStart(tensor + 1));
            block = stop;
        }
    }

    private void block(Worker worker, int tensor, long from, int count) {
        DType type = table.type(tensor);
        MemorySegment segment = table.segment(tensor);
        switch (pass) {
            case SCALE -> kernels.scaleBlock(type, segment, from, count, argument);
            case SCALE_EACH -> {
                double c = factors[tensor];
                if (c != 1.0) {
                    kernels.scaleBlock(type, segment, from, count, c);
                }
            }
            case CLAMP -> {
                if (!segment.isReadOnly()) { // read-only tensors were checked to need no change
                    kernels.clampBlock(type, segment, from, count, boundIn(type, argument));
                }
            }
            case SUMS, MAXIMA -> {
                BlockFigures figures = worker.figures;
                // The maximum only where something needs it; otherwise a non-finite element shows in the sum.
                boolean wantMax = (perTensor && maxima) || normType == NormType.INF || type == DType.FLOAT64;
                kernels.normBlock(type, normType.squares(), wantMax, segment, from, count, 1.0, figures);
                double max = figures.max;
                worker.tensorMax = Math.max(worker.tensorMax, max);
                if (!(max <= Double.MAX_VALUE)) {
                    if (Double.isNaN(max)) {
                        worker.nanBlocks++;
                    } else {
                        worker.infBlocks++;
                    }
                    if (countNonFinite) {
                        worker.tensorNonFinite += nonFinite(type, segment, from, count);
                    }
                } else if (pass == Pass.SUMS && normType != NormType.INF) {
                    int exponent = 0;
                    if (type == DType.FLOAT64 && (max > SAFE_HIGH || (max < SAFE_LOW && max > 0))) {
                        // Scale the block's largest magnitude into [1, 2) (subnormals: just above), so that
                        // its squares can neither overflow nor underflow; the exact sum takes the power back.
                        exponent = Math.getExponent(max);
                        kernels.normBlock(type, normType.squares(), true, segment, from, count,
                                Math.scalb(1.0, -exponent), figures);
                    }
                    worker.deposit(figures.sum, normType == NormType.L2 ? 2 * exponent : exponent, perTensor);
                }
            }
            case POWERS -> {
                double max = tensorMax[tensor];
                if (max > 0 && max <= Double.MAX_VALUE) {
                    worker.deposit(powerSum(type, segment, from, count, max, p), 0, true);
                }
            }
        }
    }

    /**
     * Sum of {@code (|x| / max)^p} over a block, in 8 interleaved accumulators. Each term is at most 1;
     * its error is {@link Powers}' (the division's u, raised to p, comes on top); the sum adds at most
     * gamma(521): up to 518 adds into one accumulator and 3 to fold ({@link Clipping#powerBound()}).
     * StrictMath's exp and log, so the bits are the same on every JVM.
     */
    private static double powerSum(DType type, MemorySegment segment, long from, int count, double max, double p) {
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
        int full = count & ~7;
        for (int k = 0; k < full; k += 8) {
            long i = from + k;
            a0 += Powers.pow(ScalarKernels.magnitude(type, segment, i, 1) / max, p);
            a1 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 1, 1) / max, p);
            a2 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 2, 1) / max, p);
            a3 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 3, 1) / max, p);
            a4 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 4, 1) / max, p);
            a5 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 5, 1) / max, p);
            a6 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 6, 1) / max, p);
            a7 += Powers.pow(ScalarKernels.magnitude(type, segment, i + 7, 1) / max, p);
        }
        for (int k = full; k < count; k++) {
            a0 += Powers.pow(ScalarKernels.magnitude(type, segment, from + k, 1) / max, p);
        }
        return ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7));
    }

    private static long nonFinite(DType type, MemorySegment segment, long from, int count) {
        long n = 0;
        for (long i = from; i < from + count; i++) {
            if (!(ScalarKernels.magnitude(type, segment, i, 1) <= Double.MAX_VALUE)) {
                n++;
            }
        }
        return n;
    }

    /** Merges the workers' results in worker order, and finishes the tensors that chunks split. */
    private void collect(NormState out) {
        int n = bounds.length - 1;
        for (int w = 0; w < n; w++) {
            Worker worker = workers[w];
            out.sum.add(worker.sum);
            out.max = Math.max(out.max, worker.max);
            out.nanBlocks += worker.nanBlocks;
            out.infBlocks += worker.infBlocks;
        }
        if (perTensor) {
            finishSplitTensors(n);
        }
    }

    /**
     * A tensor that several chunks share has a piece in each: the tail piece of the chunk where it
     * starts, and head pieces in the chunks after. They are consecutive in worker order.
     */
    private void finishSplitTensors(int n) {
        combined.tensor = -1;
        for (int w = 0; w < n; w++) {
            absorb(workers[w].head);
            absorb(workers[w].tail);
        }
        if (combined.tensor >= 0) {
            finish(combined.tensor, combined.sum, combined.max, combined.nonFinite);
        }
    }

    private void absorb(Piece piece) {
        if (piece.tensor < 0) {
            return;
        }
        if (piece.tensor == combined.tensor) {
            combined.sum.add(piece.sum);
            combined.max = Math.max(combined.max, piece.max);
            combined.nonFinite += piece.nonFinite;
            return;
        }
        if (combined.tensor >= 0) {
            finish(combined.tensor, combined.sum, combined.max, combined.nonFinite);
        }
        combined.set(piece);
    }

    /** A tensor's figures, once all its blocks are in. */
    private void finish(int tensor, ExactSum sum, double max, long nonFinite) {
        store(tensor, takesRoot() ? sum.sqrt() : sum.toDouble(), max, nonFinite);
    }

    /**
     * The same for a tensor whose blocks made at most one deposit, {@code single} at exponent offset 0
     * (zero for none): the exact sum of one double is that double, and its {@link ExactSum#sqrt()} is
     * {@code Math.sqrt} of it, bit for bit (both round the root once, and the root of a positive double
     * is a normal double, so halving the exponent apart from the significand changes nothing).
     */
    private void finish(int tensor, double single, double max, long nonFinite) {
        store(tensor, takesRoot() ? Math.sqrt(single) : single, max, nonFinite);
    }

    private boolean takesRoot() {
        return pass != Pass.POWERS && normType == NormType.L2;
    }

    /** Stores a tensor's figures; {@code total} is its exact sum rounded, or for L2 the root of it. */
    private void store(int tensor, double total, double max, long nonFinite) {
        if (pass == Pass.POWERS) {
            tensorPowerSum[tensor] = total;
            double m = tensorMax[tensor];
            tensorNorm[tensor] = m > 0 && m <= Double.MAX_VALUE
                    ? m * Powers.root(total, p) : m;
            return;
        }
        tensorMax[tensor] = max;
        tensorNonFinite[tensor] = nonFinite;
        tensorNorm[tensor] = !(max <= Double.MAX_VALUE) ? max // NaN, or +Infinity
                : switch (normType) {
                    case L2, L1 -> total;
                    case INF, POWER -> max;
                };
    }

    /**
     * POWER: the global sum relative to the global maximum, from each tensor's sum relative to its
     * own, in tensor order with a Neumaier sum, on this thread: the same bits for any thread count.
     */
    private void collectPowers(TensorTable table, NormState out) {
        finishSplitTensors(bounds.length - 1); // the pieces hold the POWERS pass's sums
        double global = out.max;
        if (!(global > 0 && global <= Double.MAX_VALUE)) {
            return;
        }
        double sum = 0;
        double compensation = 0;
        for (int i = 0; i < table.size(); i++) {
            double m = tensorMax[i];
            if (m == 0) {
                continue;
            }
            double term = tensorPowerSum[i] * Powers.pow(m / global, p);
            double t = sum + term;
            compensation += Math.abs(sum) >= Math.abs(term) ? (sum - t) + term : (term - t) + sum;
            sum = t;
        }
        out.powerSum = sum + compensation;
    }

    private void ensureTensorCapacity(int n) {
        if (tensorNorm.length < n) {
            tensorNorm = new double[n];
            tensorMax = new double[n];
            tensorNonFinite = new long[n];
            tensorPowerSum = new double[n];
        }
        java.util.Arrays.fill(tensorNorm, 0, n, 0);
        java.util.Arrays.fill(tensorMax, 0, n, 0);
        java.util.Arrays.fill(tensorNonFinite, 0, n, 0);
        java.util.Arrays.fill(tensorPowerSum, 0, n, 0);
    }

    /** Stops the workers now; an engine that is dropped unclosed stops them once the GC finds it unreachable. */
    @Override
    public void close() {
        if (closer != null) {
            closer.clean();
        }
    }

    /** A tensor's share of a chunk that does not hold the whole tensor. */
    private static final class Piece {
        int tensor = -1;
        final ExactSum sum = new ExactSum();
        double max;
        long nonFinite;

        void set(Piece other) {
            tensor = other.tensor;
            sum.set(other.sum);
            max = other.max;
            nonFinite = other.nonFinite;
        }

        void set(int tensor, ExactSum sum, double max, long nonFinite) {
            this.tensor = tensor;
            this.sum.set(sum);
            this.max = max;
            this.nonFinite = nonFinite;
        }
    }

    /** One worker's results; reused for every call. */
    private final class Worker {
        final BlockFigures figures = new BlockFigures();
        final ExactSum sum = new ExactSum();
        /**
         * The current tensor's block sums: the first one held as a double ({@code firstValue} times
         * 2^{@code firstExponent}), from the second on all of them in {@code tensorSum}.
         */
        final ExactSum tensorSum = new ExactSum();
        int tensorDeposits;
        double firstValue;
        int firstExponent;
        double max;
        long nanBlocks;
        long infBlocks;
        double tensorMax;
        long tensorNonFinite;
        final Piece head = new Piece();
        final Piece tail = new Piece();

        void reset() {
            sum.clear();
            max = 0;
            nanBlocks = 0;
            infBlocks = 0;
            head.tensor = -1;
            tail.tensor = -1;
        }

        void beginTensor() {
            tensorDeposits = 0;
            tensorMax = 0;
            tensorNonFinite = 0;
        }

        void deposit(double value, int exponent, boolean toTensor) {
            if (!toTensor) {
                sum.add(value, exponent);
                return;
            }
            if (tensorDeposits++ == 0) {
                firstValue = value;
                firstExponent = exponent;
                return;
            }
            if (tensorDeposits == 2) {
                tensorSum.clear();
                tensorSum.add(firstValue, firstExponent);
            }
            tensorSum.add(value, exponent);
        }

        void endTensor(int tensor, boolean startsHere, boolean endsHere) {
            max = Math.max(max, tensorMax);
            if (!perTensor) {
                return;
            }
            if (tensorDeposits < 2 && startsHere && endsHere && (tensorDeposits == 0 || firstExponent == 0)) {
                // One deposit (a one-block tensor) or none (zeros, non-finite blocks, the MAXIMA and INF
                // passes): no exact sum to clear, merge and round.
                double single = tensorDeposits == 0 ? 0 : firstValue;
                sum.add(single, 0);
                finish(tensor, single, tensorMax, tensorNonFinite);
                return;
            }
            if (tensorDeposits < 2) { // a piece of a split tensor, or a scaled float64 block: as an exact sum
                tensorSum.clear();
                if (tensorDeposits == 1) {
                    tensorSum.add(firstValue, firstExponent);
                }
            }
            sum.add(tensorSum);
            if (startsHere && endsHere) {
                finish(tensor, tensorSum, tensorMax, tensorNonFinite);
            } else if (!startsHere) {
                head.set(tensor, tensorSum, tensorMax, tensorNonFinite);
            } else {
                tail.set(tensor, tensorSum, tensorMax, tensorNonFinite);
            }
        }
    }
}
