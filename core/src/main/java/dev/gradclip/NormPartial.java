package dev.gradclip;

import dev.gradclip.internal.NormState;
import dev.gradclip.internal.NormType;

/**
 * One worker's share of a global norm: what {@link GradClip#partialNorm} found over the tensors that
 * worker holds, to be combined with the other workers' shares. Immutable.
 *
 * <p><b>Exact for normType 1, 2 and +Infinity.</b> The partial holds its terms exactly (block sums
 * in a fixed-point accumulator; for +Infinity the maximum), so {@link #merge} is exact: any merge
 * tree over any split of a tensor set at tensor boundaries gives the norm bits of the unsplit call.
 * {@link #toLongs()} is the same partial as int64 words that an ordinary element-wise SUM all-reduce
 * (MAX, when {@link #reducesByMax()}) combines exactly, for up to 2^31 workers: MPI, NCCL, Gloo,
 * torch.distributed, Spark's {@code treeAggregate}. Every partial of one normType has the same word
 * count, whatever its tensors. Immutable and thread-safe. A split inside a tensor is within the error bound but not bit-identical:
 * blocks start at a tensor's first element, so a cut inside a tensor changes the block sums.
 *
 * <p><b>Other p.</b> Each partial keeps its sum relative to its own largest magnitude; merging
 * rescales one side by {@code (M1/M)^p}, which adds at most about 150u per merge, u = 2^-53 (a
 * division raised to p, then rooted: u; the power, weighted as in the single call's bound: 145u;
 * the product: u), so the merged norm is within the single-call bound plus that, but its last bits can depend on the merge tree. These partials have no word form:
 * {@link #toLongs()} throws {@link UnsupportedOperationException}.
 *
 * <p><b>Sharding by hand.</b> Whoever all-reduces these words and then calls
 * {@link GradClip#clipGradsWithNorm} owns what a {@link Clipper} with an {@link AllReduce} hook does
 * for its participants: every check that can fail on one worker (a read-only, closed or confined
 * tensor) must run before the all-reduce and reach the others through it, or the workers fall out
 * of step and end up with different coefficients.
 */
public final class NormPartial {

    private final NormState state;
    private final double norm;

    /** Takes ownership of {@code state}; normalized here, so that reading it later writes nothing (thread-safe). */
    NormPartial(NormState state) {
        state.sum.normalize();
        this.state = state;
        this.norm = state.norm();
    }

    /**
     * A new partial holding both; neither operand changes. Both must have the same normType.
     *
     * @param other another worker's partial
     * @return the partial of both workers' tensors
     * @throws IllegalArgumentException if the normTypes differ
     */
    public NormPartial merge(NormPartial other) {
        if (other == null) {
            throw new NullPointerException("other is null");
        }
        NormState merged = new NormState();
        merged.set(state);
        merged.merge(other.state);
        return new NormPartial(merged);
    }

    /**
     * The global norm of everything merged so far: NaN if any element was NaN, else +Infinity if any was infinite.
     *
     * @return the norm
     */
    public double norm() {
        return norm;
    }

    /**
     * The norm this partial is a share of.
     *
     * @return the normType given to {@link GradClip#partialNorm} or {@link #fromLongs}
     */
    public double normType() {
        return state.p();
    }

    /**
     * The partial as words for an all-reduce: SUM on int64, or MAX if {@link #reducesByMax()}.
     *
     * @return a new array of {@link #wordCount} words
     * @throws UnsupportedOperationException for a normType other than 1, 2 and +Infinity
     */
    public long[] toLongs() {
        long[] words = new long[NormState.wordCount(state.type())];
        state.toWords(words);
        return words;
    }

    /**
     * Whether {@link #toLongs()} words combine with an int64 MAX (normType +Infinity) rather than SUM.
     *
     * @return true for MAX, false for SUM
     */
    public boolean reducesByMax() {
        return NormState.reducesByMax(state.type());
    }

    /**
     * The word count of every partial of this normType (141 for 1 and 2, 2 for +Infinity).
     *
     * @param normType 1, 2 or {@code Double.POSITIVE_INFINITY}
     * @return the length of {@link #toLongs()}
     * @throws UnsupportedOperationException for another valid normType, which has no word form
     */
    public static int wordCount(double normType) {
        return NormState.wordCount(NormType.of(normType));
    }

    /**
     * The partial that all-reduced words stand for. Rejects words of another length, and words that
     * are not a SUM (or MAX) of {@link #toLongs()} words of this normType, with an
     * {@link IllegalArgumentException} that says which.
     *
     * @param normType the normType the words were made for: 1, 2 or {@code Double.POSITIVE_INFINITY}
     * @param words the all-reduced words
     * @return the partial they encode
     */
    public static NormPartial fromLongs(double normType, long[] words) {
        NormState state = new NormState();
        state.fromWords(NormType.of(normType), normType, words);
        return new NormPartial(state);
    }

    @Override
    public String toString() {
        return "NormPartial[normType " + state.p() + ", norm " + norm() + "]";
    }
}
