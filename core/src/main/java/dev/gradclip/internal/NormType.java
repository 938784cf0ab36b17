package dev.gradclip.internal;

/**
 * A checked {@code normType}: 2, 1, +Infinity (max |g|), or any other finite p >= 1, as torch's
 * {@code norm_type}. The first three have exact, mergeable sums; other p are summed relative to a
 * tensor's largest magnitude, so they cannot overflow or underflow.
 */
public enum NormType {
    L1, L2, INF, POWER;

    public static NormType of(double p) {
        if (p == 2) {
            return L2;
        }
        if (p == 1) {
            return L1;
        }
        if (p == Double.POSITIVE_INFINITY) {
            return INF;
        }
        if (p > 1 && p < Double.POSITIVE_INFINITY) {
            return POWER;
        }
        throw new IllegalArgumentException("normType must be 2, 1, any finite p >= 1, or Double.POSITIVE_INFINITY"
                + " (the largest |g|), was " + p);
    }

    /** Whether block terms are squares (L2) rather than magnitudes (L1); INF and POWER use only the block maxima. */
    public boolean squares() {
        return this != L1;
    }
}
