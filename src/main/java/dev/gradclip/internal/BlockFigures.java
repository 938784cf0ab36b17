package dev.gradclip.internal;

/** What {@link Kernels#normBlock} finds in one block; one per worker, reused for every block. */
public final class BlockFigures {
    /** The block's sum of terms, in the order {@link Kernels} defines. */
    public double sum;
    /** The largest {@code |x|} in the block; NaN if the block holds a NaN. */
    public double max;
    /** Scratch for the vector kernels: a float16 block copied out of a heap segment, and widened to float (see {@code NormLoop}). */
    final short[] halves = new short[Kernels.BLOCK];
    final float[] widened = new float[Kernels.BLOCK];
}
