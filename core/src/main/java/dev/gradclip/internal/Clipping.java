package dev.gradclip.internal;

/**
 * The rule of global-norm clipping, shared by every entry point: when to clip and by what factor.
 * And the error bounds of the norms, each with its derivation.
 */
public final class Clipping {

    /** Added to the norm before dividing, as torch does, so a zero norm never divides by zero. */
    public static final double EPS = 1e-6;

    private static final double U = 0x1p-53;

    private Clipping() {}

    /**
     * The factor to scale by, torch's rule: {@code min(1, threshold / (norm + EPS))}, in double. The
     * gradients are written exactly when it is below 1 or NaN. A factor of exactly 1 writes nothing:
     * whenever {@code norm + EPS}, rounded, is at most the threshold, every bit stays as it was. As in
     * torch, a NaN norm gives NaN and an infinite norm 0. {@code threshold = +Infinity} never clips,
     * whatever the norm, NaN included: the factor is 1 (torch would scale by NaN there).
     * {@code threshold = -0.0} is 0: its quotient {@code -0.0} would flip the sign of every zeroed
     * element. The threshold has been checked ({@link SegmentChecks#checkMaxNorm}). Every entry point
     * and every participant of a sharded clip takes its factor from here.
     *
     * <p>The sum {@code norm + EPS} and the quotient round once each, so a factor below 1 is within
     * {@code (1 ± u)^2} of the exact {@code threshold / (norm + EPS)}, u = 2^-53; float64 multiplies by
     * it, the 32- and 16-bit types by its float rounding ({@link #floatCoefficient}). torch 1.13 divides
     * in float32 instead, so its factor can differ from this one's float rounding by an ulp.
     */
    public static double coefficientFor(double threshold, double norm) {
        if (threshold == Double.POSITIVE_INFINITY) {
            return 1.0;
        }
        double q = (threshold + 0.0) / (norm + EPS); // -0.0 + 0.0 is +0.0
        return q < 1 || Double.isNaN(q) ? q : 1.0;
    }

    /**
     * Whether the 32- and 16-bit types may scale by {@code (float) c} in float arithmetic: when
     * {@code c} is 0, NaN or a normal float, {@code (float) c} is within 2^-24 relative of {@code c}
     * and each product within one float ulp of {@code (float) (g * c)}. Below 2^-126 (a norm beyond
     * about 8.5e37 times {@code maxNorm}) {@code (float) c} is subnormal or 0 and loses that: those
     * calls multiply in double instead.
     */
    public static boolean floatCoefficient(double c) {
        return !(c > 0 && c < 0x1p-126);
    }

    /**
     * The relative error bound of the L2 norm, for any finite input of any dtype and length (below
     * 2^60 elements) whose norm is a normal double (a subnormal norm is rounded within half its ulp): {@code (gamma(134) + u) / 2 + u}, about 7.6e-15 (u = 2^-53, gamma(k) = k·u/(1 - k·u)).
     *
     * <p>Why. (1) Terms: a float32, float16 or bfloat16 value widens exactly to double and its square
     * is exact (at most 24 + 24 significant bits), so each lane step {@code fma(x, x, acc)} rounds
     * once. A float64 square is not exact, but the fma rounds {@code x*x + acc} once all the same.
     * Float64 blocks whose largest magnitude lies outside [2^-400, 2^400] are summed again with every
     * element times 2^-e (e the exponent of that magnitude): exact but for elements that fall below
     * 2^-1022 after scaling, whose squares are below 2^-2000 of the block's largest square and change
     * the sum by less than 2^-1000 relative. Inside [2^-400, 2^400] no square overflows, and squares
     * that underflow lose less than 2^-1074 each against a block sum of at least 2^-800. (2) Block
     * sums: a term passes through at most 128 lane adds (BLOCK/LANES), 5 fold adds and the final
     * {@code fold + tail} add, or 31 tail adds and that add; all terms are non-negative, so a block sum
     * has a relative error of at most gamma(134) (Higham, Accuracy and Stability of Numerical
     * Algorithms, 2nd ed., eq. 4.4). (3) Across blocks the sum is exact ({@link ExactSum}), rounded
     * once: u. (4) The square root halves the sum's relative error and rounds once: u.
     */
    public static double l2Bound() {
        return (gamma(134) + U) / 2 + U;
    }

    /** The L1 norm's bound: gamma(134) + u, about 1.5e-14. Terms |x| are exact; then as {@link #l2Bound()} (2) and (3). */
    public static double l1Bound() {
        return gamma(134) + U;
    }

    /**
     * The bound for other finite p >= 1: {@code gamma(521) + 430u}, about 1.1e-13, within the
     * promised 1e-12.
     *
     * <p>Why. Each term is {@code (|x| / M_t)^p}, M_t the tensor's largest magnitude: the division
     * rounds once, a factor {@code (1 + d)}, {@code |d| <= u}, which the power raises to {@code (1 + d)^p}.
     * The power ({@link Powers}) gives {@code y^p e^(z t) (1 + e)} with z = {@code ln(y^p)} at most 0,
     * {@code |t| < 3.01u}, {@code |e| < 2u}. Its error grows with |z|, but a term with a large |z| is small: every term
     * is at most 1, the largest is exactly 1 (log 1 = 0, exp 0 = 1), so the sum is at least 1, and
     * with at most 2^60 terms {@code sum(y^p |z|) <= 47.2 sum(y^p)} (terms from 2^-64 up have
     * {@code |z| <= 44.4}; below, {@code y^p |z|} is at most {@code 2^-64 * 44.4} each, 2.78 in all). So the
     * terms add at most {@code 3.02u * 47.2 + 2u < 145u} relative to the sum; terms that underflow to
     * subnormals or zero are off by less than 2^-1073 each, under 2^-1013 in all. A block sum of 8
     * interleaved accumulators adds gamma(521) (at most 518 adds into one accumulator: 511 plus up to
     * 7 leftover elements, or 512; then 3 to fold); blocks are summed exactly and rounded once (u).
     * Across tensors each tensor's sum is rescaled by {@code (M_t / M)^p}, M the global largest
     * magnitude: another {@code (1 + d)^p}, and the power's error weighted the same way (each
     * tensor's sum is at most its element count, and the one holding M has a sum of at least 1):
     * 145u; u for the product; the rescaled sums enter a Neumaier sum (2u). So the global sum is the
     * exact one times a factor within {@code (1 ± u)^(2p) (1 ± e)}, {@code e <= gamma(521) + 294u} (with
     * the second-order terms), and its p-th root is within {@code (1 ± u)^2 (1 ± e)} of the exact
     * root for p >= 1. The root is {@code exp(ln(S) / p)}, S at most 2^60: its exponent is off by at
     * most {@code 3.01u ln(S) / p <= 125.3u}, exp adds 2u and the product with M u. In all
     * {@code gamma(521) + 2u + 294u + 125.3u + 3u}, below {@code gamma(521) + 430u}.
     */
    public static double powerBound() {
        return gamma(521) + 430 * U;
    }

    private static double gamma(int k) {
        return k * U / (1 - k * U);
    }
}
