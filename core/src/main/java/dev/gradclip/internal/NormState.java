package dev.gradclip.internal;

/**
 * A norm in the making: what a pass over some tensors found, mergeable with what other passes (threads,
 * workers, ranks) found over other tensors. For L1 and L2 the terms are held exactly
 * ({@link ExactSum}), so merging is exact and order-free; for INF the maximum is exact anyway; for
 * other p the sum is kept relative to the largest magnitude, and merging rescales, which rounds.
 *
 * <p>Non-finite elements are counted by block: {@code nanBlocks} blocks held a NaN, and
 * {@code infBlocks} blocks held an infinity and no NaN. The norm is NaN if any block held a NaN,
 * else +Infinity if any held an infinity.
 */
public final class NormState {

    /**
     * The words' first entry, per norm type: "gc" in ASCII, shifted, plus the type. Small, so that a
     * SUM over 2^31 participants stays within int64.
     */
    private static final long TAG = 0x6763_0000L;
    /**
     * Tag, participants, nanBlocks, infBlocks, and a checksum: the int64 (wrapping) sum of the digit words.
     * A SUM of partials keeps it equal to the sum of the summed digits; a MAX reduction, or any other
     * mistake of the hook, fails it unless one partial wins every digit.
     */
    private static final int HEADER = 5;
    /** Canonical NaN: as a long it is above +Infinity's bits, so an int64 MAX keeps it. */
    private static final long NAN_BITS = 0x7ff8_0000_0000_0000L;
    private static final long INFINITY_BITS = Double.doubleToRawLongBits(Double.POSITIVE_INFINITY);

    private NormType type = NormType.L2;
    private double p = 2;
    public final ExactSum sum = new ExactSum();
    /** The largest |g|; NaN if any element was NaN. */
    public double max;
    public long nanBlocks;
    public long infBlocks;
    /** POWER only: the sum of (|g| / max)^p. */
    public double powerSum;

    public void reset(NormType type, double p) {
        this.type = type;
        this.p = p;
        sum.clear();
        max = 0;
        nanBlocks = 0;
        infBlocks = 0;
        powerSum = 0;
    }

    public NormType type() {
        return type;
    }

    public double p() {
        return p;
    }

    /** The norm of everything accumulated so far. */
    public double norm() {
        if (nanBlocks > 0 || Double.isNaN(max)) {
            return Double.NaN;
        }
        if (infBlocks > 0 || max == Double.POSITIVE_INFINITY) {
            return Double.POSITIVE_INFINITY;
        }
        return switch (type) {
            case L2 -> sum.sqrt();
            case L1 -> sum.toDouble();
            case INF -> max;
            case POWER -> max == 0 ? 0 : max * Powers.root(powerSum, p);
        };
    }

    /** Adds another state of the same norm type. Exact for L1, L2 and INF. */
    public void merge(NormState other) {
        if (other.type != type || Double.doubleToLongBits(other.p) != Double.doubleToLongBits(p)) {
            throw new IllegalArgumentException("cannot merge a normType " + other.p + " partial into a normType " + p + " one");
        }
        sum.add(other.sum);
        nanBlocks += other.nanBlocks;
        infBlocks += other.infBlocks;
        if (type == NormType.POWER) {
            double merged = Math.max(max, other.max);
            if (merged > 0 && Double.isFinite(merged)) {
                powerSum = rescale(powerSum, max, merged) + rescale(other.powerSum, other.max, merged);
            }
        }
        max = maxPropagatingNaN(max, other.max);
    }

    /** {@code sum * (from / to)^p}: a POWER sum relative to {@code from}, made relative to {@code to >= from}. */
    private double rescale(double sum, double from, double to) {
        return from == to ? sum : sum == 0 ? 0 : sum * Powers.pow(from / to, p);
    }

    private static double maxPropagatingNaN(double a, double b) {
        return Math.max(a, b); // Math.max returns NaN if either is NaN
    }

    /** The word count of {@link #toWords} for a norm type: the same for every partial of that type. */
    public static int wordCount(NormType type) {
        return switch (type) {
            case L1, L2 -> HEADER + ExactSum.DIGITS;
            case INF -> 2;
            case POWER -> throw unsupported();
        };
    }

    /** Whether the words combine with an int64 MAX (else SUM). */
    public static boolean reducesByMax(NormType type) {
        return type == NormType.INF;
    }

    private static UnsupportedOperationException unsupported() {
        return new UnsupportedOperationException("normType p other than 1, 2 and +Infinity has no exact word form:"
                + " its terms span too many binades; merge NormPartial objects instead");
    }

    private static long tag(NormType type) {
        return TAG | type.ordinal();
    }

    /** Writes this state as words that an element-wise int64 SUM (or MAX, for INF) of many workers combines exactly. */
    public void toWords(long[] words) {
        if (words.length != wordCount(type)) {
            throw new IllegalArgumentException("words has " + words.length + " entries, not " + wordCount(type));
        }
        words[0] = tag(type);
        if (type == NormType.INF) {
            words[1] = Double.isNaN(max) ? NAN_BITS : Double.doubleToRawLongBits(max);
            return;
        }
        words[1] = 1; // participants
        words[2] = nanBlocks;
        words[3] = infBlocks;
        sum.writeDigits(words, HEADER);
        words[4] = checksum(words);
    }

    private static long checksum(long[] words) {
        long sum = 0;
        for (int i = HEADER; i < words.length; i++) {
            sum += words[i];
        }
        return sum;
    }

    /**
     * Replaces this state by words that {@link #toWords} wrote and an all-reduce combined. Checks that
     * they are such words: the length, the tag (times the participant count, for SUM), and the ranges.
     */
    public void fromWords(NormType type, double p, long[] words) {
        if (type == NormType.POWER) {
            throw unsupported();
        }
        if (words == null) {
            throw new NullPointerException("words is null");
        }
        int expected = wordCount(type);
        if (words.length != expected) {
            throw new IllegalArgumentException("words has " + words.length + " entries, but a normType " + p
                    + " partial has " + expected + " (did every participant pass the same normType?)");
        }
        reset(type, p);
        if (type == NormType.INF) {
            if (words[0] != tag(type)) {
                throw new IllegalArgumentException("words[0] is " + words[0] + ", not the normType " + p
                        + " tag: these are not gradclip partial words, or not MAX-reduced ones");
            }
            long bits = words[1];
            if (bits < 0 || (bits > INFINITY_BITS && bits != NAN_BITS)) {
                throw new IllegalArgumentException("words[1] = " + bits + " is not the bits of a norm >= 0 or NaN");
            }
            max = Double.longBitsToDouble(bits);
            return;
        }
        long participants = words[1];
        if (participants < 1 || words[0] != tag(type) * participants) {
            throw new IllegalArgumentException("words[0..1] are not a SUM of gradclip normType " + p + " partial words"
                    + " (tag " + words[0] + ", participants " + participants + "): a participant passed other words,"
                    + " or the all-reduce did not sum them");
        }
        if (words[2] < 0 || words[3] < 0) {
            throw new IllegalArgumentException("words[2..3] (non-finite block counts) are negative");
        }
        if (words[4] != checksum(words)) {
            throw new IllegalArgumentException("words[4], the checksum, does not match the digit words: the words"
                    + " were not combined by an element-wise int64 SUM (a MAX, or a partial reduction?)");
        }
        nanBlocks = words[2];
        infBlocks = words[3];
        sum.readDigits(words, HEADER);
        max = nanBlocks > 0 ? Double.NaN : infBlocks > 0 ? Double.POSITIVE_INFINITY : 0;
    }

    /** Copies another state. */
    public void set(NormState other) {
        type = other.type;
        p = other.p;
        sum.set(other.sum);
        max = other.max;
        nanBlocks = other.nanBlocks;
        infBlocks = other.infBlocks;
        powerSum = other.powerSum;
    }
}
