package dev.gradclip.internal;

import java.lang.foreign.MemorySegment;

/**
 * The two kernels of global-norm clipping, over one block of float32 elements of one segment.
 * Not API: {@link dev.gradclip.GradClip} is.
 *
 * <p>Both implementations, {@link ScalarKernels} and {@link VectorKernels}, compute a block's sum
 * of squares in the same order, defined by {@link #logicalLanes()}: element {@code k} of the block
 * goes to lane {@code k mod lanes} while a whole row of lanes remains; each lane adds its squares in
 * order from zero; the lanes are folded by halving (lane {@code j} += lane {@code j + h} for
 * {@code h = lanes/2, lanes/4, ..., 1}); the remaining {@code < lanes} elements are added in order
 * into a separate tail sum, and the block's result is {@code fold + tail}. Two implementations with
 * the same lane count therefore return bit-identical results.
 *
 * <p>Indices are element (float) indices into the segment; {@code count <= } {@link #BLOCK}.
 * Callers validate the segment first: the kernels do no argument checks of their own.
 */
public interface Kernels {

    /**
     * Elements per block. A lane adds at most {@code BLOCK / lanes} squares before the block is
     * folded and handed to the compensated running sum, which bounds the uncompensated error
     * (see {@link GlobalNorm#relativeErrorBound(int)}).
     */
    int BLOCK = 4096;

    /** Sum of squares of {@code count} float32 elements starting at element {@code from}. */
    double blockSumOfSquares(MemorySegment floats, long from, int count);

    /** Replaces each of {@code count} elements {@code g} starting at {@code from} by the float32 product {@code g * c}. */
    void scaleBlock(MemorySegment floats, long from, int count, float c);

    /** How many lanes the summation order uses: a power of two. */
    int logicalLanes();

    /** One line for logs and reports, e.g. {@code "vector (512-bit, 32 lanes)"}. */
    String description();
}
