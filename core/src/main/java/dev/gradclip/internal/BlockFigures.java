package dev.gradclip.internal;

/**
 * What {@link Kernels#normBlock} finds in one block; one per worker, reused for every block. Not
 * final only for {@link Padded}.
 */
public class BlockFigures {
    /** The block's sum of terms, in the order {@link Kernels} defines. */
    public double sum;
    /** The largest {@code |x|} in the block; NaN if the block holds a NaN. */
    public double max;

    /**
     * Figures that a worker writes for every unit, 64 bytes of padding after them: a subclass's
     * fields come after its superclass's, so the two fields of two such objects are more than 64
     * bytes apart however a collection lays them out, never in one cache line. AGC's unit pass writes
     * them twice for every 768-element unit on each worker. (The two speeds of that pass at two
     * threads occur with and without the padding: docs/adaptive.md, section "AGC".)
     */
    static final class Padded extends BlockFigures {
        @SuppressWarnings("unused")
        private long p0, p1, p2, p3, p4, p5, p6, p7;
    }
}
