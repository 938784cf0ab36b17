package dev.gradclip.internal;

/**
 * {@code a*a + s} rounded once, bit for bit what {@code Math.fma(a, a, s)} returns, for the sums of
 * squares the scalar fallback accumulates.
 *
 * <p>Why not {@code Math.fma}: on a CPU without an FMA instruction (or a JVM run with
 * {@code -XX:-UseFMA}) HotSpot does not intrinsify it, and the Java fallback computes the result
 * with {@code BigDecimal}, about a thousand times slower; a norm of a million doubles then takes
 * seconds instead of milliseconds. This class gets the same bits from a few integer operations and
 * at most one floating-point addition.
 *
 * <p>Why it is exact: a finite nonzero {@code a} is {@code m * 2^q} with a 53-bit integer {@code m},
 * so {@code a*a} is the integer {@code m*m}, at most 106 bits, times {@code 2^2q}, which
 * {@code Math.multiplyHigh} and {@code m*m} give with no error whatever the exponent. In the common
 * case, {@code a*a} at least two binades below {@code s}, that product is rounded to odd (Boldo and
 * Melquiond, "Emulation of FMA and correctly rounded sums: proved algorithms using rounding to odd",
 * IEEE TC 2008), giving {@code y}: cut to 53 bits, the last set if anything was cut. As {@code s} is a
 * multiple of four ulps of {@code y}, {@code s + y} and {@code s + a*a} lie between the same two doubles
 * and on the same side of their midpoint, so the FPU's one rounding of {@code s + y} is the right one.
 * Otherwise both terms go into 128-bit integers with the leading one at bit 124 or 125, the finer one
 * shifted to the other's scale with the bits shifted out kept as a sticky bit in bit 0. Two non-negative
 * terms cannot cancel, so the bits the rounding looks at lie above bit 70, far above the sticky bit,
 * and one rounding to nearest even, at the position the result's exponent dictates (fewer bits for a
 * subnormal), gives the correctly rounded sum; a significand carried up to 2^53 moves into the exponent
 * field, so the largest subnormal rounds up to {@code MIN_NORMAL} and {@code MAX_VALUE} to infinity.
 *
 * <p>Only {@code s >= 0} is supported ({@code +0.0} and {@code -0.0}, subnormal, normal, infinity, or
 * NaN): the callers pass a running sum of squares, so a negative {@code s}, where the terms could
 * cancel, never occurs. For a negative nonzero {@code s} the result is unspecified.
 */
final class SquareAdd {

    private static final long SIGN = 0x8000_0000_0000_0000L;
    private static final long INFINITY = 0x7ff0_0000_0000_0000L;
    private static final long FRACTION = 0x000f_ffff_ffff_ffffL;
    private static final long HIDDEN = 1L << 52;
    private static final long LOW_22 = (1L << 22) - 1;

    private SquareAdd() {
    }

    /**
     * {@code Math.fma(a, a, s)} without an FMA instruction: the same bits for every {@code a} and every
     * {@code s} that is {@code +0.0}, {@code -0.0}, positive, {@code +Infinity} or NaN.
     *
     * @param a any double
     * @param s a non-negative double, infinity or NaN; a negative nonzero {@code s} gives an unspecified result
     * @return {@code a*a + s} rounded once to nearest, ties to even
     */
    static double squareAdd(double a, double s) {
        assert !(s < 0) : s;
        long ba = Double.doubleToRawLongBits(a) & ~SIGN;
        // For a normal a of exponent field e, a*a = (hi * 2^64 + m*m) * 2^(2e - 2170) exactly, with the
        // leading one at bit 124 + t.
        long m = ((ba & FRACTION) | HIDDEN) << 10;
        long hi = Math.multiplyHigh(m, m);
        int t = (int) (hi >>> 61);
        // Zeros are common in gradients and need not come in runs a branch predictor learns: rather than
        // branch on them, a zero a gets ey = 1 and y = +0, so that the fast path returns s + 0 = s.
        long zero = (ba - 1) >> 63;
        int ey = 2 * (int) (ba >>> 52) - 1023 + t + ((int) zero & 1024);
        int es = (int) (Double.doubleToRawLongBits(s) >>> 52);
        // The common case of a running sum: a*a a normal double at least two binades below a finite
        // positive s (a sign bit on s makes es too large; a subnormal, infinite or NaN a makes ey too
        // small or too large). Then y, a*a rounded to odd (53 bits, the last one forced to 1 when
        // bits were lost), is exact or the odd multiple of ulp(y) next to a*a, and s, a multiple of
        // 4 ulp(y), keeps s + y on the same side as s + a*a of every double and every midpoint at or
        // above s (all even multiples of ulp(y)): so one rounding of s + y, by the FPU, gives
        // RN(s + a*a). Only that addition depends on s: a loop over a running sum is not held up by
        // the integer work, which overlaps with the next elements'.
        if (ey > 0 && ey < es - 1 && es < 2047) {
            // m*m, the low word, is nonzero exactly when m has a one in its low 32 bits (the lowest one of a
            // square is at twice the position of the root's), that is a in the low 22 bits of its
            // significand: that test saves the second multiplication.
            long below = (hi << (56 - t)) | (ba & LOW_22);
            long odd = (hi >>> (8 + t)) | ((below | -below) >>> 63);
            return s + Double.longBitsToDouble((((long) (ey - 1) << 52) + odd) & ~zero);
        }
        return general(a, s);
    }

    /**
     * The biased exponent of the bits of a positive, finite, non-zero double; for a subnormal, the one it
     * would have if normalized (1 minus the places its leading one lies below the hidden bit's).
     */
    private static int exponent(long bits) {
        int e = (int) (bits >>> 52);
        return e != 0 ? e : 12 - Long.numberOfLeadingZeros(bits);
    }

    /**
     * The significand of the bits of a positive, finite, non-zero double (the hidden one made explicit
     * for a normal one), shifted so that its leading one is at bit {@code top}.
     */
    private static long significand(long bits, int top) {
        return (bits >>> 52) != 0 ? ((bits & FRACTION) | HIDDEN) << (top - 52)
                : bits << (Long.numberOfLeadingZeros(bits) - (63 - top));
    }

    /** Every case: zeros, subnormals, infinities, NaN, a*a above s, results that overflow or are subnormal. */
    private static double general(double a, double s) {
        long ba = Double.doubleToRawLongBits(a) & ~SIGN;
        long bs = Double.doubleToRawLongBits(s) & ~SIGN;
        if (ba == 0 || ba >= INFINITY || bs >= INFINITY) {
            // A zero a makes a*a an exact +0, an infinite or NaN a or s decides the result alone; in all
            // of these the plain expression rounds nothing (or only to infinity), as fma would.
            return a * a + s;
        }

        // |a| = ma * 2^(ea - 1085) with ma in [2^62, 2^63): the leading one at bit 62 whether a is
        // normal or subnormal, so that the square has its leading one at bit 124 or 125.
        int ea = exponent(ba);
        long ma = significand(ba, 62);
        // ma is below 2^63, so the signed high word is the unsigned one.
        long pHi = Math.multiplyHigh(ma, ma);
        long pLo = ma * ma;
        int pWeight = 2 * ea - 2170;
        if (bs == 0) {
            return round(pHi, pLo, pWeight);
        }

        // s = (ms * 2^64) * 2^(es - 1148) with ms in [2^61, 2^62): the leading one at bit 125 of the
        // 128-bit word, like the square's, so the sum of the two stays below 2^127.
        int es = exponent(bs);
        long ms = significand(bs, 61);
        int sWeight = es - 1148;

        // The term with the coarser lowest bit keeps its place; the other is shifted to its scale.
        long cHi;
        long cLo;
        long fHi;
        long fLo;
        int weight;
        int n;
        if (pWeight >= sWeight) {
            cHi = pHi;
            cLo = pLo;
            fHi = ms;
            fLo = 0;
            weight = pWeight;
            n = pWeight - sWeight;
        } else {
            cHi = ms;
            cLo = 0;
            fHi = pHi;
            fLo = pLo;
            weight = sWeight;
            n = sWeight - pWeight;
        }
        // (x << 1) << (63 - k) is x << (64 - k) for k in [1, 63] and 0 for k == 0, where x << 64 would be x.
        long lost;
        if (n < 64) {
            lost = (fLo << 1) << (63 - n);
            fLo = (fLo >>> n) | ((fHi << 1) << (63 - n));
            fHi >>>= n;
        } else if (n < 128) {
            lost = fLo | ((fHi << 1) << (127 - n));
            fLo = fHi >>> (n - 64);
            fHi = 0;
        } else {
            // Nonzero, far below anything the rounding looks at: a sticky bit is all that is left.
            lost = 1;
            fLo = 0;
            fHi = 0;
        }
        // Bit 0 of the coarser term is 0, so OR-ing the sticky bit there never carries.
        fLo |= (lost | -lost) >>> 63;
        long lo = cLo + fLo;
        long hi = cHi + fHi + (Long.compareUnsigned(lo, cLo) < 0 ? 1 : 0);
        return round(hi, lo, weight);
    }

    /**
     * The double nearest to {@code (hi * 2^64 + lo) * 2^weight}, ties to even, for a 128-bit value whose
     * leading one is at bit 124, 125 or 126 and whose bits below bit 70 matter only as a whole (zero or not).
     */
    private static double round(long hi, long lo, int weight) {
        int z = Long.numberOfLeadingZeros(hi);
        // The leading one is at bit 127 - z, worth 2^(127 - z + weight); biased, that exponent is:
        int exponent = 1150 - z + weight;
        if (exponent >= 2047) {
            return Double.POSITIVE_INFINITY;
        }
        // Keep 53 bits, or as many fewer as the subnormal range allows; the cut is r bits into hi.
        int subnormalShift = Math.max(0, 1 - exponent);
        int r = 11 - z + subnormalShift;
        if (r >= 64) {
            // Below half of the smallest subnormal (the leading one is at most at bit 126).
            return 0.0;
        }
        long mantissa = hi >>> r;
        long below = (hi & ((1L << (r - 1)) - 1)) | lo;
        long up = (hi >>> (r - 1)) & (mantissa | ((below | -below) >>> 63)) & 1;
        // The exponent field is added to the significand's hidden bit, so a significand carried up to
        // 2^53 bumps the exponent (to infinity past MAX_VALUE), and a subnormal one to 2^52 becomes normal.
        long field = Math.max(exponent, 1) - 1;
        return Double.longBitsToDouble((field << 52) + mantissa + up);
    }
}
