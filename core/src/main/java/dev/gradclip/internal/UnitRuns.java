package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * The passes of adaptive clipping, over runs of consecutive units of one tensor. The norm pass: the
 * L2 norm of every unit of the gradients and the parameters, each the same bits as {@link Engine#norm}
 * gives that unit as a tensor of its own (its blocks' sums, summed exactly and rooted once). A unit
 * of at most {@link Kernels#BLOCK} elements is one block, one {@link Kernels#normBlock} call; a
 * longer unit is summed block by block into an exact sum. A run's loop over its units keeps only
 * their norms, without the engine's per-tensor bookkeeping, which cost float32 AGC a few percent of
 * its time (docs/adaptive.md, section "AGC"). The scale pass: each gradient unit whose factor is not
 * 1 times its factor, block by block with {@link Kernels#scaleBlock}, as a global clip scales.
 *
 * <p>Entry i is the plan's entry i (tensor by tensor: its gradient units, then its parameter units). The runs are split over the engine's threads
 * by bytes, whole runs each ({@link Engine#runChunks}); every unit is summed by one call on one
 * thread, and scaling is elementwise, so the bits do not depend on the split. Not thread-safe: one
 * call at a time. Allocation-free after the first call for each thread count.
 */
final class UnitRuns implements WorkerPool.Task {

    /**
     * Elements per run at most: short enough that two threads get even shares of a model's tensors,
     * long enough that a call and its bookkeeping come once per 64K elements, not once per unit.
     */
    static final int RUN_ELEMENTS = 16 * Kernels.BLOCK;

    private final MemorySegment[] segments;
    private final DType[] types;
    /** The run's first element in its segment. */
    private final long[] from;
    /** Its units' length: at most BLOCK for a run of one-block units, else a run of one long unit. */
    private final long[] length;
    private final int[] units;
    /** Entry of its first unit. */
    private final int[] entry;
    /** Bytes before run r; {@code byteStart[runs]} all bytes. */
    private final long[] byteStart;
    /** The same, counting only the gradients' runs: the scale pass's share of the work. */
    private final long[] gradByteStart;
    /** Whether run r is a run of gradient units. */
    private final boolean[] grad;
    private final int runs;

    /** Each entry's norm. */
    private final double[] norms;

    /** Run boundaries per worker count, for the norm pass and the scale pass: index n for n workers, made on first use. */
    private int[][] normBounds = new int[1][];
    private int[][] scaleBounds = new int[1][];
    /** Per-worker scratch, grown on first use of a thread count. */
    private BlockFigures[] figures = {};
    private ExactSum[] exact = {};

    // The current call.
    private Kernels kernels;
    private int[] current;
    /** The scale pass's factors by entry, or null in the norm pass. */
    private double[] factors;

    /** Room for {@code runs} runs (from {@link #runsFor}), filled by {@link #add}, over {@code entries} entries. */
    UnitRuns(int runs, int entries) {
        segments = new MemorySegment[runs];
        types = new DType[runs];
        from = new long[runs];
        length = new long[runs];
        units = new int[runs];
        entry = new int[runs];
        byteStart = new long[runs + 1];
        gradByteStart = new long[runs + 1];
        grad = new boolean[runs];
        norms = new double[entries];
        this.runs = runs;
    }

    /** How many runs {@code count} units of {@code unitLength} elements take. */
    static int runsFor(int count, long unitLength) {
        if (unitLength > Kernels.BLOCK) {
            return count;
        }
        int perRun = (int) Math.max(1, RUN_ELEMENTS / unitLength);
        return (count + perRun - 1) / perRun;
    }

    /**
     * Lays out the runs of one tensor's {@code count} units of {@code unitLength} elements, whose
     * entries start at {@code first}, from run {@code run} on; returns the next run. {@code isGrad}:
     * whether they are gradients, which the scale pass writes.
     */
    int add(int run, MemorySegment segment, DType type, int count, long unitLength, int first, boolean isGrad) {
        int perRun = unitLength > Kernels.BLOCK ? 1 : (int) Math.max(1, RUN_ELEMENTS / unitLength);
        for (int k = 0; k < count; k += perRun) {
            int n = Math.min(perRun, count - k);
            segments[run] = segment;
            types[run] = type;
            from[run] = k * unitLength;
            length[run] = unitLength;
            units[run] = n;
            entry[run] = first + k;
            byteStart[run + 1] = byteStart[run] + n * unitLength * type.byteSize();
            gradByteStart[run + 1] = gradByteStart[run] + (isGrad ? n * unitLength * type.byteSize() : 0);
            grad[run] = isGrad;
            run++;
        }
        return run;
    }

    /** Entry i's norm after {@link #run}: NaN or +Infinity when the unit holds such values. */
    double norm(int i) {
        return norms[i];
    }

    /** Every entry's norm, on {@code workers} of the engine's threads (from {@link Engine#chunksFor}). */
    void norms(Engine engine, int workers) {
        normBounds = boundsFor(normBounds, byteStart, workers);
        pass(engine, normBounds[workers], null);
    }

    /** Multiplies each gradient entry i by {@code factors[i]} unless it is 1, on {@code workers} threads. */
    void scale(Engine engine, int workers, double[] factors) {
        scaleBounds = boundsFor(scaleBounds, gradByteStart, workers);
        pass(engine, scaleBounds[workers], factors);
    }

    private void pass(Engine engine, int[] bounds, double[] factors) {
        int workers = bounds.length - 1;
        if (figures.length < workers) {
            figures = new BlockFigures[workers];
            exact = new ExactSum[workers];
            for (int w = 0; w < workers; w++) {
                figures[w] = new BlockFigures();
                exact[w] = new ExactSum();
            }
        }
        kernels = engine.kernels();
        current = bounds;
        this.factors = factors;
        try {
            engine.runChunks(this, workers);
        } finally {
            kernels = null;
            this.factors = null;
        }
    }

    /** {@code known}, with the boundaries for n workers over the bytes {@code start} counts made if missing. */
    private int[][] boundsFor(int[][] known, long[] start, int n) {
        if (known.length <= n) {
            known = Arrays.copyOf(known, n + 1);
        }
        if (known[n] == null) {
            known[n] = split(start, n);
        }
        return known;
    }

    /** Run boundaries for n workers: about an equal share of the bytes each. */
    private int[] split(long[] start, int n) {
        int[] b = new int[n + 1];
        int r = 0;
        for (int w = 1; w < n; w++) {
            long target = Math.round((double) start[runs] * w / n);
            while (r < runs && start[r] < target) {
                r++;
            }
            b[w] = r;
        }
        b[n] = runs;
        return b;
    }

    @Override
    public void run(int w) {
        if (factors != null) {
            scaleRuns(current[w], current[w + 1]);
            return;
        }
        BlockFigures out = figures[w];
        for (int r = current[w]; r < current[w + 1]; r++) {
            DType type = types[r];
            if (length[r] <= Kernels.BLOCK) {
                int count = (int) length[r];
                for (int i = entry[r], u = 0; u < units[r]; i++, u++) {
                    long start = from[r] + (long) u * count;
                    kernels.normBlock(type, true, type == DType.FLOAT64, segments[r], start, count, 1, out);
                    norms[i] = blockNorm(type, segments[r], start, count, out.sum, out.max, out, exact[w]);
                }
            } else {
                norms[entry[r]] = longNorm(type, segments[r], from[r], length[r], out, exact[w]);
            }
        }
    }

    private void scaleRuns(int first, int end) {
        for (int r = first; r < end; r++) {
            if (!grad[r]) {
                continue;
            }
            for (int i = entry[r], u = 0; u < units[r]; i++, u++) {
                double c = factors[i];
                if (c != 1.0) {
                    long start = from[r] + u * length[r];
                    for (long k = 0; k < length[r]; k += Kernels.BLOCK) {
                        kernels.scaleBlock(types[r], segments[r], start + k, (int) Math.min(Kernels.BLOCK, length[r] - k), c);
                    }
                }
            }
        }
    }

    /**
     * A one-block unit's norm from its sum and maximum, as the engine finishes a one-block tensor:
     * the status if not finite, else the root of the one deposit; a float64 block whose maximum is
     * outside [2^-400, 2^400] is summed again scaled by a power of two, and rooted from an exact sum.
     */
    private double blockNorm(DType type, MemorySegment segment, long start, int count, double sum, double max,
                             BlockFigures out, ExactSum exactSum) {
        if (!(max <= Double.MAX_VALUE)) {
            return max;
        }
        int exponent = NormPass.float64Exponent(type, max);
        if (exponent == 0) {
            return Math.sqrt(sum);
        }
        kernels.normBlock(type, true, true, segment, start, count, Math.scalb(1.0, -exponent), out);
        exactSum.clear();
        exactSum.add(out.sum, 2 * exponent);
        return exactSum.sqrt();
    }

    /** A unit of more than one block: its block sums into an exact sum, as the engine sums a tensor's. */
    private double longNorm(DType type, MemorySegment segment, long start, long count, BlockFigures out,
                            ExactSum exactSum) {
        exactSum.clear();
        double max = 0;
        for (long k = 0; k < count; k += Kernels.BLOCK) {
            int n = (int) Math.min(Kernels.BLOCK, count - k);
            kernels.normBlock(type, true, type == DType.FLOAT64, segment, start + k, n, 1, out);
            max = Math.max(max, out.max);
            if (out.max <= Double.MAX_VALUE) {
                int exponent = NormPass.float64Exponent(type, out.max);
                if (exponent != 0) {
                    kernels.normBlock(type, true, true, segment, start + k, n, Math.scalb(1.0, -exponent), out);
                }
                exactSum.add(out.sum, 2 * exponent);
            }
        }
        return !(max <= Double.MAX_VALUE) ? max : exactSum.sqrt();
    }

}
