package dev.gradclip.internal;

/**
 * The powers of the norms of other p, as {@code exp(p log x)} with StrictMath's exp and log: pure
 * Java with a fixed algorithm, so the bits are the same on every JVM and CPU, and allocation-free.
 * ({@code StrictMath.pow} is neither fast nor free here: JDK 25's port allocates three small arrays
 * per call, 96 bytes, that escape analysis cannot remove because they are indexed by a variable.)
 *
 * <p>Error. The JDK's fdlibm port states an error below one ulp for log and for exp (the comments
 * of {@code FdLibm.Log} and {@code FdLibm.Exp}), so below 2u relative (u = 2^-53). For
 * {@code pow(x, p)}: the computed exponent is {@code z (1 + t)}, z = {@code p ln x}, |t| at most
 * {@code (1 + 2u)(1 + u) - 1 < 3.01u} (log, then the product), so the result is
 * {@code x^p e^(z t) (1 + e)}, |e| below 2u for a normal result. {@link #root} alike, with the
 * quotient {@code ln x / p}. {@link Clipping#powerBound()} carries these through the norm.
 */
final class Powers {

    private Powers() {}

    /** {@code x^p} for finite {@code x >= 0} and {@code p >= 1}: 0 for 0, exactly 1 for 1. */
    static double pow(double x, double p) {
        return StrictMath.exp(p * StrictMath.log(x));
    }

    /** {@code x^(1/p)} for finite {@code x > 0} and {@code p >= 1}. */
    static double root(double x, double p) {
        return StrictMath.exp(StrictMath.log(x) / p);
    }
}
