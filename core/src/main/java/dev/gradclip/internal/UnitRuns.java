package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * The passes of adaptive clipping, over runs of consecutive units of one pair of tensors: the
 * gradient tensor and its parameter tensor, whose units lie at the same element offsets.
 *
 * <p><b>The unit pass</b> takes each run in turn: the L2 norm of every gradient unit of the run, then
 * of every parameter unit, each the same bits as {@link Engine#norm} gives that slice as a tensor of
 * its own (its blocks' sums, summed exactly and rooted once); then each unit's factor by the rule of
 * {@link UnitClipping}; then, when writing is allowed, each gradient unit whose factor is not 1 times
 * its factor, as a global clip scales. A unit of at most {@link Kernels#BLOCK} elements is one
 * {@link Kernels#normBlock} call; a longer unit is summed block by block into an exact sum. A run
 * holds at most 64K elements per set (512 KB of float32 gradients and parameters together), or one
 * unit when a unit is longer, so the gradients of a run of short units are scaled from the cache the
 * norms have just filled, and AGC reads them from memory once, not twice; a unit longer than the
 * cache is read twice. (Each gradient
 * unit followed by its parameter unit, scaled at once from L1, made bfloat16's pass 2.3x slower
 * than the global clip even when no unit clips: docs/adaptive.md, section "AGC".)
 *
 * <p><b>The scale pass</b> multiplies each gradient unit by its factor from the last unit pass, unless
 * it is 1. It serves the calls that may not write during the unit pass: those with a read-only
 * gradient tensor, where every unit's factor must be known (and a read-only unit that has to change
 * must throw) before the first write.
 *
 * <p>Entry i is the plan's entry i (tensor by tensor: its gradient units, then its parameter units).
 * The runs are split over the engine's threads by bytes, whole runs each ({@link Engine#runChunks});
 * every unit is summed, and scaled, by one call on one thread, so the bits do not depend on the split.
 * Not thread-safe: one call at a time. Allocation-free after the first call for each thread count.
 */
final class UnitRuns implements WorkerPool.Task {

    /**
     * Elements per run and set at most, but for a run of one longer unit: short enough that two
     * threads get even shares of a model's tensors and that a run's gradients are still in cache when
     * it scales them, long enough that a call and its bookkeeping come once per 64K elements, not once
     * per unit.
     */
    static final int RUN_ELEMENTS = 16 * Kernels.BLOCK;

    private final MemorySegment[] grads;
    private final DType[] gradTypes;
    private final MemorySegment[] params;
    private final DType[] paramTypes;
    /** The run's first element, in both segments. */
    private final long[] from;
    /** Its units' length: at most BLOCK for a run of one-block units, else a run of one long unit. */
    private final long[] length;
    private final int[] units;
    /** Entry of its first gradient unit. */
    private final int[] entry;
    /** From a gradient unit's entry to its parameter unit's: the tensor's unit count. */
    private final int[] paramShift;
    /** Bytes of both sets before run r; {@code byteStart[runs]} all bytes. */
    private final long[] byteStart;
    /** The same, counting only the gradients: the scale pass's share of the work. */
    private final long[] gradByteStart;
    private final int runs;

    /** Each entry's norm. */
    private final double[] norms;
    /** Each gradient entry's factor from the last unit pass (1: keeps its bits); parameter entries unused. */
    private final double[] factors;

    /** Run boundaries per worker count, for the unit pass and the scale pass: index n for n workers, made on first use. */
    private int[][] unitBounds = new int[1][];
    private int[][] scaleBounds = new int[1][];
    /** Per-worker scratch, grown on first use of a thread count. */
    private BlockFigures[] figures = {};
    private ExactSum[] exact = {};
    private int[] clippedBy = {};

    // The current call.
    private Kernels kernels;
    private int[] current;
    private boolean scalePass;
    private boolean write;
    private double clipFactor;
    private double eps;

    /** Room for {@code runs} runs (from {@link #runsFor}), filled by {@link #add}, over {@code entries} entries. */
    UnitRuns(int runs, int entries) {
        grads = new MemorySegment[runs];
        gradTypes = new DType[runs];
        params = new MemorySegment[runs];
        paramTypes = new DType[runs];
        from = new long[runs];
        length = new long[runs];
        units = new int[runs];
        entry = new int[runs];
        paramShift = new int[runs];
        byteStart = new long[runs + 1];
        gradByteStart = new long[runs + 1];
        norms = new double[entries];
        factors = new double[entries];
        this.runs = runs;
    }

    /** How many runs {@code count} units of {@code unitLength} elements take. */
    static int runsFor(int count, long unitLength) {
        int perRun = unitsPerRun(unitLength);
        return (count + perRun - 1) / perRun;
    }

    private static int unitsPerRun(long unitLength) {
        return unitLength > Kernels.BLOCK ? 1 : (int) Math.max(1, RUN_ELEMENTS / unitLength);
    }

    /**
     * Lays out the runs of one pair of tensors, {@code count} units of {@code unitLength} elements
     * each, whose gradient entries start at {@code first} (their parameter entries follow them), from
     * run {@code run} on; returns the next run.
     */
    int add(int run, MemorySegment grad, DType gradType, MemorySegment param, DType paramType, int count,
            long unitLength, int first) {
        int perRun = unitsPerRun(unitLength);
        for (int k = 0; k < count; k += perRun) {
            int n = Math.min(perRun, count - k);
            grads[run] = grad;
            gradTypes[run] = gradType;
            params[run] = param;
            paramTypes[run] = paramType;
            from[run] = k * unitLength;
            length[run] = unitLength;
            units[run] = n;
            entry[run] = first + k;
            paramShift[run] = count;
            long gradBytes = n * unitLength * gradType.byteSize();
            byteStart[run + 1] = byteStart[run] + gradBytes + n * unitLength * paramType.byteSize();
            gradByteStart[run + 1] = gradByteStart[run] + gradBytes;
            run++;
        }
        return run;
    }

    /** Entry i's norm after {@link #unitPass}: NaN or +Infinity when the unit holds such values. */
    double norm(int i) {
        return norms[i];
    }

    /** Gradient entry i's factor after {@link #unitPass}: 1 when the unit keeps its bits. */
    double factor(int i) {
        return factors[i];
    }

    /**
     * Every unit's norms and factor on {@code workers} of the engine's threads (from
     * {@link Engine#chunksFor}), and, if {@code write}, every unit whose factor is not 1 scaled.
     * Returns the number of units that clip (their gradient norm finite and at least their bound).
     */
    int unitPass(Engine engine, int workers, double clipFactor, double eps, boolean write) {
        unitBounds = boundsFor(unitBounds, byteStart, workers);
        this.clipFactor = clipFactor;
        this.eps = eps;
        this.write = write;
        pass(engine, unitBounds[workers], false);
        int clipped = 0;
        for (int w = 0; w < workers; w++) {
            clipped += clippedBy[w];
        }
        return clipped;
    }

    /** Multiplies each gradient unit by its factor from the last {@link #unitPass} unless it is 1, on {@code workers} threads. */
    void scalePass(Engine engine, int workers) {
        scaleBounds = boundsFor(scaleBounds, gradByteStart, workers);
        pass(engine, scaleBounds[workers], true);
    }

    private void pass(Engine engine, int[] bounds, boolean scale) {
        int workers = bounds.length - 1;
        if (figures.length < workers) {
            figures = new BlockFigures[workers];
            exact = new ExactSum[workers];
            clippedBy = new int[workers];
            for (int w = 0; w < workers; w++) {
                figures[w] = new BlockFigures.Padded();
                exact[w] = new ExactSum();
            }
        }
        kernels = engine.kernels();
        current = bounds;
        scalePass = scale;
        try {
            engine.runChunks(this, workers);
        } finally {
            kernels = null;
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
        if (scalePass) {
            for (int r = current[w]; r < current[w + 1]; r++) {
                for (int i = entry[r], u = 0; u < units[r]; i++, u++) {
                    scaleUnit(r, from[r] + u * length[r], factors[i]);
                }
            }
            return;
        }
        int clipped = 0;
        for (int r = current[w]; r < current[w + 1]; r++) {
            // The run's gradient units, then its parameter units: each set read as one stream.
            for (int i = entry[r], u = 0; u < units[r]; i++, u++) {
                norms[i] = unitNorm(grads[r], gradTypes[r], from[r] + u * length[r], length[r], figures[w], exact[w]);
            }
            for (int i = entry[r] + paramShift[r], u = 0; u < units[r]; i++, u++) {
                norms[i] = unitNorm(params[r], paramTypes[r], from[r] + u * length[r], length[r], figures[w], exact[w]);
            }
            for (int i = entry[r], u = 0; u < units[r]; i++, u++) {
                double gradNorm = norms[i];
                double bound = UnitClipping.bound(norms[i + paramShift[r]], clipFactor, eps);
                double c = 1;
                if (UnitClipping.clips(gradNorm, bound)) {
                    clipped++;
                    c = UnitClipping.factor(gradNorm, bound);
                }
                factors[i] = c;
                if (write) {
                    scaleUnit(r, from[r] + u * length[r], c);
                }
            }
        }
        clippedBy[w] = clipped;
    }

    /** Gradient unit of run r at element {@code start} times {@code c}, unless c is 1, block by block. */
    private void scaleUnit(int r, long start, double c) {
        if (c != 1.0) {
            for (long k = 0; k < length[r]; k += Kernels.BLOCK) {
                kernels.scaleBlock(gradTypes[r], grads[r], start + k, (int) Math.min(Kernels.BLOCK, length[r] - k), c);
            }
        }
    }

    /** The norm of the {@code count} elements of {@code segment} from {@code start}, as {@link Engine#norm} gives it. */
    private double unitNorm(MemorySegment segment, DType type, long start, long count, BlockFigures out,
                            ExactSum exactSum) {
        if (count > Kernels.BLOCK) {
            return longNorm(type, segment, start, count, out, exactSum);
        }
        kernels.normBlock(type, true, type == DType.FLOAT64, segment, start, (int) count, 1, out);
        return blockNorm(type, segment, start, (int) count, out, exactSum);
    }

    /**
     * A one-block unit's norm from its sum and maximum in {@code out}, as the engine finishes a
     * one-block tensor: the status if not finite, else the root of the one deposit; a float64 block
     * whose maximum is outside [2^-400, 2^400] is summed again scaled by a power of two, and rooted
     * from an exact sum.
     */
    private double blockNorm(DType type, MemorySegment segment, long start, int count, BlockFigures out,
                             ExactSum exactSum) {
        if (!(out.max <= Double.MAX_VALUE)) {
            return out.max;
        }
        int exponent = NormPass.rescale(kernels, type, true, segment, start, count, out);
        if (exponent == 0) {
            return Math.sqrt(out.sum);
        }
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
                int exponent = NormPass.rescale(kernels, type, true, segment, start + k, n, out);
                exactSum.add(out.sum, 2 * exponent);
            }
        }
        return !(max <= Double.MAX_VALUE) ? max : exactSum.sqrt();
    }
}
