package dev.gradclip.internal;

/** What {@link Kernels#normBlock} finds in one block; one per worker, reused for every block. */
public final class BlockFigures {
    /** The block's sum of terms, in the order {@link Kernels} defines. */
    public double sum;
    /** The largest {@code |x|} in the block; NaN if the block holds a NaN. */
    public double max;
}
