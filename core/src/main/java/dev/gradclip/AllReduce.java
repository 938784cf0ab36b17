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
 *
 * <p>A call that throws must throw on every participant alike (a mismatch that every participant
 * sees), or leave the hook unusable (a timeout): a {@link Clipper} relies on every participant
 * leaving each call the same way to keep its steps in lockstep.
 */
public interface AllReduce {

    /**
     * Replaces each word by the sum, as int64, of that word over every participant.
     *
     * @param words this participant's words, overwritten with the sums; the same length on every participant
     */
    void sum(long[] words);

    /**
     * Replaces each word by the maximum, as int64, of that word over every participant.
     *
     * @param words this participant's words, overwritten with the maxima; the same length on every participant
     */
    void max(long[] words);

    /**
     * This participant's index among the participants, from 0 (MPI's rank), or -1 if the hook does
     * not know it. Only used to name a failing participant in the exceptions of the others; the
     * default is -1.
     *
     * @return the rank, or -1
     */
    default int rank() {
        return -1;
    }
}
