package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;

/**
 * The norm pass: every block's sum of terms goes into its chunk's exact sum, the chunks merge in
 * chunk order into a {@link NormState}, and (when asked) each tensor's figures into
 * {@link TensorFigures}. Exact sums make the merge order-free, so the result is the same bits for
 * any chunking. For p-norms two passes: each tensor's largest magnitude, then the sums of powers
 * relative to it ({@link PowerSums}).
 *
 * <p><b>Float64 range.</b> A float64 block whose largest magnitude lies outside
 * [2^-400, 2^400] is summed again with its elements scaled by a power of two that brings that
 * magnitude into [1, 2), so its squares can neither overflow nor underflow; the exact sum takes
 * the power back. The other dtypes' squares always fit a double.
 */
final class NormPass implements BlockPass {

    private static final double SAFE_HIGH = 0x1p400;
    private static final double SAFE_LOW = 0x1p-400;

    private enum Kind { SUMS, MAXIMA, POWERS }

    private final Kernels kernels;
    private final ChunkSums[] chunks;
    final TensorFigures tensors = new TensorFigures();

    // The call, read by every worker (set before the scheduler hands off).
    private Kind kind;
    private NormType type;
    private double p;
    private boolean perTensor;

    private boolean countNonFinite;

    NormPass(Kernels kernels, int threads) {
        this.kernels = kernels;
        this.chunks = new ChunkSums[threads];
        for (int w = 0; w < threads; w++) {
            chunks[w] = new ChunkSums();
        }
    }

    /**
     * Fills {@code out} with the norm state of the table's tensors; with {@code perTensor} also
     * {@link #tensors}, with each tensor's non-finite count when {@code countNonFinite}.
     */
    void run(Scheduler scheduler, TensorTable table, NormType type, double p, boolean perTensor,
             boolean countNonFinite, NormState out) {
        out.reset(type, p);
        this.type = type;
        this.p = p;
        this.countNonFinite = countNonFinite;
        boolean power = type == NormType.POWER;
        this.perTensor = perTensor || power;
        if (this.perTensor) {
            tensors.begin(table.size(), type, p);
        }
        if (!power) {
            kind = Kind.SUMS;
            collect(scheduler.run(table, this), out);
            return;
        }
        kind = Kind.MAXIMA;
        collect(scheduler.run(table, this), out);
        kind = Kind.POWERS;
        tensors.stage(TensorFigures.Stage.POWERS);
        tensors.stitch(chunks, scheduler.run(table, this));
        out.powerSum = PowerSums.combine(tensors, table.size(), out.max, p);
    }

    @Override
    public void beginChunk(int worker) {
        chunks[worker].reset();
    }

    @Override
    public void beginTensor(int worker, int tensor) {
        chunks[worker].beginTensor();
    }

    @Override
    public void block(int worker, int tensor, DType dtype, MemorySegment segment, long from, int count) {
        ChunkSums chunk = chunks[worker];
        if (kind == Kind.POWERS) {
            double max = tensors.max[tensor];
            if (max > 0 && max <= Double.MAX_VALUE) {
                chunk.deposit(PowerSums.block(dtype, segment, from, count, max, p), 0, true);
            }
            return;
        }
        BlockFigures figures = chunk.figures;
        // The maximum only where something needs it; otherwise a non-finite element shows in the sum.
        boolean wantMax = perTensor || type == NormType.INF || dtype == DType.FLOAT64;
        kernels.normBlock(dtype, type.squares(), wantMax, segment, from, count, 1.0, figures);
        double max = figures.max;
        chunk.tensorMax = Math.max(chunk.tensorMax, max);
        if (!(max <= Double.MAX_VALUE)) {
            if (Double.isNaN(max)) {
                chunk.nanBlocks++;
            } else {
                chunk.infBlocks++;
            }
            if (countNonFinite) {
                chunk.tensorNonFinite += nonFinite(dtype, segment, from, count);
            }
        } else if (kind == Kind.SUMS && type != NormType.INF) {
            int exponent = rescale(kernels, dtype, type.squares(), segment, from, count, figures);
            chunk.deposit(figures.sum, type == NormType.L2 ? 2 * exponent : exponent, perTensor);
        }
    }

    /**
     * For a finite block whose figures are in {@code figures}: sums it again into {@code figures},
     * scaled by 2^-e, when {@link #float64Exponent} gives it an exponent e, and returns e (0: the
     * block's sum stands as it is). The one rule for the engine's blocks and adaptive clipping's units.
     */
    static int rescale(Kernels kernels, DType dtype, boolean squares, MemorySegment segment, long from, int count,
                       BlockFigures figures) {
        int exponent = float64Exponent(dtype, figures.max);
        if (exponent != 0) {
            kernels.normBlock(dtype, squares, true, segment, from, count, Math.scalb(1.0, -exponent), figures);
        }
        return exponent;
    }

    /**
     * The power of two a finite block is summed again at: for a float64 block whose largest magnitude
     * {@code max} lies outside [2^-400, 2^400], the exponent that brings it into [1, 2) (subnormals:
     * just above); 0 for every other block, which is summed as it is.
     */
    static int float64Exponent(DType type, double max) {
        return type == DType.FLOAT64 && (max > SAFE_HIGH || (max < SAFE_LOW && max > 0)) ? Math.getExponent(max) : 0;
    }

    @Override
    public void endTensor(int worker, int tensor, boolean startsHere, boolean endsHere) {
        chunks[worker].endTensor(tensor, startsHere, endsHere, perTensor ? tensors : null);
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

    /** Merges the chunks' results in chunk order, and finishes the tensors that chunks split. */
    private void collect(int n, NormState out) {
        for (int w = 0; w < n; w++) {
            ChunkSums chunk = chunks[w];
            out.sum.add(chunk.sum);
            out.max = Math.max(out.max, chunk.max);
            out.nanBlocks += chunk.nanBlocks;
            out.infBlocks += chunk.infBlocks;
        }
        if (perTensor) {
            tensors.stitch(chunks, n);
        }
    }
}
