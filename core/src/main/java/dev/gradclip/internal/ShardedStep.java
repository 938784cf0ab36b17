package dev.gradclip.internal;

import dev.gradclip.AllReduce;

/**
 * One sharded clip step's collectives, so that a participant that cannot do its part still keeps
 * every participant in lockstep: it takes part in the same collectives, flags its failure in the
 * words, and every participant throws at the same step, before anything is written.
 *
 * <p><b>Words.</b> Every step all-reduces {@code k + 2} words with the norm type's operation (SUM
 * for normType 1 and 2, {@code k = 141}; MAX for +Infinity, {@code k = 2}):
 * <ul>
 *   <li>{@code [0, k)}: the participant's {@link NormState} words, or those of an empty state
 *       (norm 0) when its local step failed, so that the reduction stays well-formed;
 *   <li>{@code k}: 1 if the participant's local step failed (a check or the norm pass threw), else 0;
 *       reduced, the number of failed participants (SUM) or whether any failed (MAX);
 *   <li>{@code k + 1}: 1 if the participant holds a read-only tensor with elements (and did not
 *       fail), else 0: that fails the step only if the step writes, which every participant decides
 *       alike from the global norm.
 * </ul>
 * When the reduced words say that the step failed, every participant makes one more all-reduce, a
 * MAX of two words that name the culprits: a culprit contributes
 * {@code ((2^31 - 1 - rank) << 8) | reason} and {@code ((rank + 1) << 8) | reason}, everyone else
 * -1, so the reduction holds the lowest and the highest culprit's rank and {@link Reason} code (a
 * rank of -1, unknown to the hook, loses to every known one). A step without failure costs one
 * all-reduce, as before; the word count depends only on the norm type.
 *
 * <p>Not thread-safe; one per Clipper, whose calls are serialized. Allocation-free but when a
 * step fails.
 */
public final class ShardedStep {

    /**
     * Why a participant failed a step, in the low 8 bits of its blame words. Codes are never reused,
     * so that participants of different builds agree on them.
     */
    enum Reason {
        READ_ONLY(1, "holds a read-only tensor that this step had to scale (IllegalArgumentException)"),
        ILLEGAL_ARGUMENT(2, "was called with a bad argument (IllegalArgumentException)"),
        NULL_ARGUMENT(3, "was called with a null argument (NullPointerException)"),
        ILLEGAL_STATE(4, "could not use its tensors or its Clipper (IllegalStateException: a closed arena, a closed Clipper)"),
        WRONG_THREAD(5, "was called with a tensor confined to another thread (WrongThreadException)"),
        OTHER(255, "failed before the all-reduce (another RuntimeException)");

        final int code;
        final String text;

        Reason(int code, String text) {
            this.code = code;
            this.text = text;
        }

        /** The reason for a local failure, by its exception's kind. */
        static Reason of(RuntimeException e) {
            return e instanceof WrongThreadException ? WRONG_THREAD
                    : e instanceof NullPointerException ? NULL_ARGUMENT
                    : e instanceof IllegalArgumentException ? ILLEGAL_ARGUMENT
                    : e instanceof IllegalStateException ? ILLEGAL_STATE
                    : OTHER;
        }

        static String describe(long code) {
            for (Reason reason : values()) {
                if (reason.code == code) {
                    return reason.text;
                }
            }
            return "failed for a reason this build does not know (code " + code + ")";
        }
    }

    private static final long NOBODY = -1;
    private static final int REASON_BITS = 8;

    private final AllReduce hook;
    private final NormType type;
    private final double p;
    private final int k;
    private final long[] partial;
    private final long[] words;
    private final long[] blame = new long[2];
    private final NormState empty = new NormState();
    private long readOnlyParticipants;

    public ShardedStep(AllReduce hook, NormType type, double p) {
        this.hook = hook;
        this.type = type;
        this.p = p;
        this.k = NormState.wordCount(type);
        this.partial = new long[k];
        this.words = new long[k + 2];
        empty.reset(type, p);
    }

    /** Whether a read-only tensor holds elements: such a participant cannot take part in a step that writes. */
    public static boolean readOnly(TensorTable table) {
        for (int i = 0; i < table.size(); i++) {
            if (table.segment(i).isReadOnly() && table.segment(i).byteSize() > 0) {
                return true;
            }
        }
        return false;
    }

    /**
     * The step's collective: all-reduces {@code local} (ignored if {@code failure} is not null) and
     * the flags, and puts the global state into {@code global}. If any participant failed, every
     * participant throws here: this one its own {@code failure}, the others an
     * {@link IllegalStateException} naming a failed participant.
     *
     * @throws IllegalStateException also if the hook returned words that no reduction of these words gives
     */
    public void reduce(NormState local, RuntimeException failure, boolean readOnly, NormState global) {
        (failure == null ? local : empty).toWords(partial);
        System.arraycopy(partial, 0, words, 0, k);
        words[k] = failure == null ? 0 : 1;
        words[k + 1] = failure == null && readOnly ? 1 : 0;
        try {
            if (NormState.reducesByMax(type)) {
                hook.max(words);
            } else {
                hook.sum(words);
            }
        } catch (RuntimeException e) {
            throw withSuppressed(failure, e);
        }
        long failed;
        try {
            System.arraycopy(words, 0, partial, 0, k);
            global.fromWords(type, p, partial);
            failed = words[k];
            long readOnlyCount = words[k + 1];
            boolean flagsValid = NormState.reducesByMax(type)
                    ? (failed == 0 || failed == 1) && (readOnlyCount == 0 || readOnlyCount == 1)
                    : failed >= 0 && readOnlyCount >= 0 && failed + readOnlyCount <= partial[1]; // one flag each at most
            if (!flagsValid || (failure != null && failed == 0)) {
                throw new IllegalArgumentException("the failure flags (" + failed + ", " + readOnlyCount
                        + ") are not a reduction of this step's flags");
            }
            readOnlyParticipants = readOnlyCount;
        } catch (IllegalArgumentException e) {
            throw withSuppressed(failure, new IllegalStateException("the all-reduce hook returned words that are not a"
                    + " reduction of gradclip partials (nothing was scaled): " + e.getMessage(), e));
        }
        if (failed > 0) {
            IllegalStateException others;
            try {
                others = blame(failure != null, failure == null ? Reason.OTHER : Reason.of(failure), failed);
            } catch (RuntimeException e) {
                throw withSuppressed(failure, e);
            }
            throw failure != null ? failure : others;
        }
    }

    /**
     * Called by every participant when the step is about to write: if any participant holds a
     * read-only tensor with elements, every participant throws, the read-only ones the
     * {@link IllegalArgumentException} of {@link TensorTable#checkWritable}, the others an
     * {@link IllegalStateException} naming one of them.
     */
    public void checkWritable(TensorTable table, boolean readOnly) {
        if (readOnlyParticipants == 0) {
            return;
        }
        IllegalStateException others = null;
        RuntimeException hookFailure = null;
        try {
            others = blame(readOnly, Reason.READ_ONLY, readOnlyParticipants);
        } catch (RuntimeException e) {
            hookFailure = e;
        }
        if (readOnly) {
            try {
                table.checkWritable("scaled");
            } catch (IllegalArgumentException mine) {
                throw hookFailure == null ? mine : withSuppressed(mine, hookFailure);
            }
        }
        throw hookFailure != null ? hookFailure : others;
    }

    /** A participant's own failure, with what went wrong in the collective since added as suppressed; or, without one, that. */
    private static RuntimeException withSuppressed(RuntimeException failure, RuntimeException since) {
        if (failure == null) {
            return since;
        }
        failure.addSuppressed(since);
        return failure;
    }

    /**
     * The second all-reduce of a failed step: every participant learns the lowest and highest culprit.
     * Returns the exception for the participants that are not culprits.
     */
    private IllegalStateException blame(boolean culprit, Reason reason, long culprits) {
        long rank = hook.rank();
        long order = rank >= 0 ? rank : Integer.MAX_VALUE; // unknown: loses to every known rank
        blame[0] = culprit ? ((Integer.MAX_VALUE - order) << REASON_BITS) | reason.code : NOBODY;
        blame[1] = culprit ? ((rank >= 0 ? rank + 1 : 0) << REASON_BITS) | reason.code : NOBODY;
        hook.max(blame);
        if (blame[0] < 0 || blame[1] < 0) {
            throw new IllegalStateException("the all-reduce hook lost the failure report of a failed step (nothing was"
                    + " scaled on this participant)");
        }
        long lowest = Integer.MAX_VALUE - (blame[0] >>> REASON_BITS);
        long highest = (blame[1] >>> REASON_BITS) - 1;
        String count = NormState.reducesByMax(type) ? "" : culprits + " participant" + (culprits == 1 ? "" : "s") + ": ";
        String who = lowest == highest || lowest == Integer.MAX_VALUE
                ? name(lowest) + " " + Reason.describe(blame[0] & 0xff)
                : count + "the lowest, " + name(lowest) + ", " + Reason.describe(blame[0] & 0xff) + "; the highest, "
                        + name(highest) + ", " + Reason.describe(blame[1] & 0xff);
        return new IllegalStateException("this sharded clip step failed on another participant: " + who
                + ". Every participant throws at this step and nothing was written on any participant; the next step"
                + " runs as usual");
    }

    private static String name(long rank) {
        return rank >= 0 && rank < Integer.MAX_VALUE ? "rank " + rank
                : "a participant whose hook gives no rank (see AllReduce.rank())";
    }
}
