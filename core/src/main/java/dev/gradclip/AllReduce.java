package dev.gradclip;

/**
 * An all-reduce over the processes (or threads) that together hold one model's gradients: every
 * participant passes its words and, when the call returns, holds the element-wise reduction of
 * everyone's words, in place.
 *
 * <p>Contract, as for any collective: every participant makes the same sequence of calls, each with
 * an array of the same length. gradclip's {@link NormPartial#toLongs()} words have a length that
 * depends only on the norm type, so ranks that hold different tensors still pass the same length.
 * An implementation backs onto MPI ({@code dev.gradclip.mpi.Mpi}), NCCL, Gloo, a Spark
 * {@code treeAggregate}, or threads of one JVM.
 */
public interface AllReduce {

    /** Replaces each word by the sum, as int64, of that word over every participant. */
    void sum(long[] words);

    /** Replaces each word by the maximum, as int64, of that word over every participant. */
    void max(long[] words);
}
