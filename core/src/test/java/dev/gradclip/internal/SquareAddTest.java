package dev.gradclip.internal;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import org.junit.jupiter.api.Test;

/**
 * {@link SquareAdd#squareAdd} against {@code Math.fma(a, a, s)}, bit for bit: edge cases of every
 * range, exact ties, and some twenty million random pairs whose exponents cover the whole range, most
 * of them with {@code s} near {@code a*a}, where the rounding of the sum depends on both. On a CPU with
 * an FMA instruction, as the machines that run the tests have, {@code Math.fma} is a fast reference;
 * without one it is still right but about a thousand times slower, and this class would take minutes.
 */
class SquareAddTest {

    private static final long SIGN = 0x8000_0000_0000_0000L;
    private static final long FRACTION = 0x000f_ffff_ffff_ffffL;

    private static void check(double a, double s) {
        double expected = Math.fma(a, a, s);
        double actual = SquareAdd.squareAdd(a, s);
        if (Double.doubleToLongBits(expected) != Double.doubleToLongBits(actual)) { // NaNs compare equal, zeros by sign
            throw new AssertionError(String.format("squareAdd(%s, %s) = %s (%x), fma gives %s (%x)",
                    Double.toHexString(a), Double.toHexString(s), Double.toHexString(actual),
                    Double.doubleToRawLongBits(actual), Double.toHexString(expected), Double.doubleToRawLongBits(expected)));
        }
    }

    /** a for the edge cases: each with a few neighbours, both signs. */
    private static List<Double> edgeAs() {
        double[] centres = {
            0, Double.MIN_VALUE, 2 * Double.MIN_VALUE, 3 * Double.MIN_VALUE, 0x1p-1060, 0x1.8p-1070,
            Double.MIN_NORMAL - Double.MIN_VALUE, Double.MIN_NORMAL, 0x1.fffffffffffffp-1020,
            0x1p-511,                                 // square MIN_NORMAL
            Math.sqrt(Double.MIN_NORMAL - Double.MIN_VALUE),
            0x1p-537,                                 // square MIN_VALUE
            Math.sqrt(0.5) * 0x1p-537,                // square near half of MIN_VALUE: rounds to 0 or MIN_VALUE
            Math.sqrt(1.5) * 0x1p-537,                // square near 1.5 MIN_VALUE
            Math.sqrt(2.5) * 0x1p-537,
            0x1p-538, 0x1p-600, 0x1p-1000,
            0x1.6a09e667f3bcdp-512, 0x1.fffffffffffffp-512,
            1, 1.5, 3, 0.1, 1e-3, 1e-150, 1e150, 0x1.fffffffffffffp0, 0x1.0000000000001p0, 0x1.6a09e667f3bcdp0,
            0x1p485,                                  // square half an ulp of MAX_VALUE
            0x1.8p485,
            0x1p511,
            Math.sqrt(Double.MAX_VALUE),              // square just below the overflow threshold
            0x1p512,                                  // square 2^1024: overflows
            Double.MAX_VALUE, Double.POSITIVE_INFINITY, Double.NaN,
        };
        List<Double> as = new ArrayList<>();
        for (double c : centres) {
            double up = c;
            double down = c;
            as.add(c);
            for (int i = 0; i < 3; i++) {
                up = Math.nextUp(up);
                down = Math.nextDown(down);
                as.add(up);
                if (down >= 0) {
                    as.add(down);
                }
            }
        }
        int n = as.size();
        for (int i = 0; i < n; i++) {
            as.add(-as.get(i));
        }
        return as;
    }

    /** s for the edge cases: zeros, subnormals, the normal range's ends, around powers of two, infinity, NaN. */
    private static final double[] EDGE_S = {
        0.0, -0.0, Double.MIN_VALUE, 2 * Double.MIN_VALUE, 3 * Double.MIN_VALUE, 0x1p-1060,
        Double.MIN_NORMAL - Double.MIN_VALUE, Double.MIN_NORMAL, Math.nextUp(Double.MIN_NORMAL), 3 * Double.MIN_NORMAL,
        0x1.fffffffffffffp-1000, 1e-300, 0x1p-200, 0.5, Math.nextDown(1.0), 1, Math.nextUp(1.0), 3, 1e20, 1e300,
        0x1p970, 0x1p1022, Math.nextDown(0x1p1023), 0x1p1023, Math.nextDown(Double.MAX_VALUE), Double.MAX_VALUE,
        Double.POSITIVE_INFINITY, Double.NaN,
    };

    @Test
    void edgeCases() {
        for (double a : edgeAs()) {
            for (double s : EDGE_S) {
                check(a, s);
            }
            // s near a*a and near its ulp, where the two terms interact.
            double p = a * a;
            double[] near = {p, 2 * p, 4 * p, p / 2, p / 4, Math.ulp(p), Math.ulp(p) / 2, Math.ulp(p) / 4, 3 * Math.ulp(p) / 2};
            for (double s : near) {
                if (s >= 0) {
                    check(a, s);
                    check(a, Math.nextUp(s));
                    if (s > 0) {
                        check(a, Math.nextDown(s));
                    }
                }
            }
        }
    }

    @Test
    void overflowAndUnderflowThresholds() {
        // MAX_VALUE plus half its ulp ties, rounds to even: to infinity; just below, to MAX_VALUE.
        check(0x1p485, Double.MAX_VALUE);
        check(Math.nextDown(0x1p485), Double.MAX_VALUE);
        check(Math.nextUp(0x1p485), Math.nextDown(Double.MAX_VALUE));
        check(0x1p485, Math.nextDown(Double.MAX_VALUE));
        // a*a alone at the overflow threshold 2^1024 - 2^970, approached from both sides.
        double a = Math.sqrt(Double.MAX_VALUE);
        for (int i = 0; i < 8; i++, a = Math.nextUp(a)) {
            check(a, 0);
            check(a, 0x1p969);
            check(a, 0x1p970);
            check(a, Double.MIN_VALUE);
        }
        // Results that are subnormal, just at MIN_NORMAL, and just above, from a subnormal a*a and s.
        a = 0x1p-537;
        for (int i = 0; i < 2000; i++, a = Math.nextUp(a)) {
            check(a, 0);
            check(a, Double.MIN_VALUE);
            check(a, Double.MIN_NORMAL - Double.MIN_VALUE);
            check(-a, Double.MIN_NORMAL - 2 * Double.MIN_VALUE);
        }
        a = 0x1p-511;
        for (int i = 0; i < 200; i++, a = Math.nextDown(a)) {
            check(a, 0);
            check(a, Double.MIN_VALUE);
            check(a, 7 * Double.MIN_VALUE);
        }
    }

    /** a*a + s exactly halfway between two doubles, from an odd significand m below 2^26: a*a = m^2 2^2q. */
    @Test
    void ties() {
        SplittableRandom random = new SplittableRandom(11);
        for (int i = 0; i < 200_000; i++) {
            long m = random.nextLong(1 << 26) | 1;
            int q = random.nextInt(-537, 486);
            double a = Math.scalb((double) m, q - 26) * (random.nextBoolean() ? 1 : -1);
            int e = 2 * (q - 26); // a*a = m^2 * 2^e
            // s with ulp 2^(e+1): a*a adds an odd number of half ulps.
            if (e + 1 + 52 <= 1023 && e + 1 >= -1074) {
                double s = Math.scalb((double) ((1L << 52) | (random.nextLong() & FRACTION)), e + 1);
                check(a, s);
                check(a, Math.nextUp(s));
                check(a, Math.nextDown(s));
            }
            // An odd m from 2^26 up to 2^26 * sqrt(2) has m^2 of 53 bits: a*a is then a double with ulp 2^f,
            // and s an odd number of half ulps.
            long wide = (1L << 26) + 1 + 2 * random.nextLong(1 << 23);
            double b = Math.scalb((double) wide, q - 27);
            int f = 2 * (q - 27);
            if (f - 1 >= -1074 && f + 106 <= 1023) {
                double s = Math.scalb((double) (2 * random.nextLong(1 << 10) + 1), f - 1);
                check(b, s);
                check(b, Math.nextUp(s));
                check(b, Math.nextDown(s));
            }
        }
    }

    /**
     * Ties and near-ties that only the bits far below the rounding position decide: an odd m from 2^26 *
     * sqrt(2) up to 2^27 has m^2 = 2^53 + d of 54 bits, so a*a is a midpoint between two doubles, and
     * a*a + s for a tiny s is just above one; and a*a is half an ulp of s plus the deep d.
     */
    @Test
    void tiesDecidedFarBelowTheRoundingBit() {
        SplittableRandom random = new SplittableRandom(12);
        for (int i = 0; i < 100_000; i++) {
            long m = 94_906_267L + 2 * random.nextLong(1 << 24);
            int q = random.nextInt(-564, 485);
            double a = Math.scalb((double) m, q);
            int e = 2 * q; // a*a = m^2 2^e, its half-ulp bit at 2^e
            check(a, 0);
            int below = random.nextInt(1, 1200);
            if (e - below >= -1074) {
                check(a, Math.scalb((double) ((1L << 52) | (random.nextLong() & FRACTION)), e - below - 52));
                check(a, Math.scalb(1.0, e - below));
            }
            // s with ulp 2^(e + 54), so that a*a is half an ulp of s plus d 2^e.
            if (e + 54 >= -1074 && e + 54 + 52 <= 1023) {
                check(a, Math.scalb((double) ((1L << 52) | (random.nextLong() & FRACTION)), e + 54));
            }
        }
        // The same in the subnormal range of s: ulp(s) = 2^-1074 and a*a is just above 2^-1075.
        for (int i = 0; i < 100_000; i++) {
            double a = Math.scalb((double) (94_906_267L + 2 * random.nextLong(1 << 24)), -564);
            check(a, Double.longBitsToDouble(random.nextLong(1L << 53)));
            check(a, Double.longBitsToDouble(random.nextLong(1L << 40)));
        }
        // Random a, s with its rounding bit at the leading bit of a*a.
        for (int i = 0; i < 300_000; i++) {
            double a = withExponent(random, random.nextInt(2047), true);
            int top = Math.getExponent(a * a);
            if (top > -1100 && top < 1024) {
                long significand = (1L << 52) | (random.nextLong() & FRACTION);
                check(a, Math.scalb((double) significand, top + 1 - 52 + random.nextInt(-1, 2)));
            }
        }
    }

    /** A double with the given exponent field, a random significand, and a random sign if signed. */
    private static double withExponent(SplittableRandom random, int field, boolean signed) {
        long bits = ((long) field << 52) | (random.nextLong() & FRACTION);
        if (random.nextInt(4) == 0) {
            // Significands that end in zeros make exact squares and sums, and so ties, more likely.
            bits &= -1L << random.nextInt(53);
        }
        if (signed && random.nextBoolean()) {
            bits |= SIGN;
        }
        return Double.longBitsToDouble(bits);
    }

    private static int clamp(int field) {
        return Math.max(0, Math.min(2046, field));
    }

    private static void randomPairs(long seed, int count, PairMaker maker) {
        SplittableRandom random = new SplittableRandom(seed);
        for (int i = 0; i < count; i++) {
            maker.check(random);
        }
    }

    @FunctionalInterface
    private interface PairMaker {
        void check(SplittableRandom random);
    }

    @Test
    void randomExponentsOverTheWholeRange() {
        randomPairs(1, 4_000_000, random -> {
            double a = withExponent(random, random.nextInt(2047), true);
            double s = withExponent(random, random.nextInt(2047), false);
            check(a, s);
        });
    }

    @Test
    void randomSNearTwiceTheExponentOfA() {
        randomPairs(2, 8_000_000, random -> {
            int ea = random.nextInt(2047);
            double a = withExponent(random, ea, true);
            // The binade of a*a is about 2 ea - 1023; within 60 binades of it the terms interact.
            double s = withExponent(random, clamp(2 * ea - 1023 + random.nextInt(-60, 61)), false);
            check(a, s);
        });
    }

    @Test
    void randomSWithinAFewBinadesOfTheSquare() {
        randomPairs(3, 2_000_000, random -> {
            double a = withExponent(random, random.nextInt(2047), true);
            double p = a * a;
            long bits = Double.doubleToRawLongBits(p) + random.nextLong(-(1L << 54), 1L << 54);
            double s = Double.longBitsToDouble(Math.max(0, Math.min(bits, 0x7ff0_0000_0000_0000L)));
            check(a, s);
            check(a, Math.scalb(Math.ulp(p), random.nextInt(-3, 3)));
        });
    }

    @Test
    void randomSubnormalAndOverflowingRanges() {
        randomPairs(4, 2_000_000, random -> {
            // a*a near or below MIN_NORMAL, s subnormal or small normal.
            check(withExponent(random, random.nextInt(0, 560), true), withExponent(random, random.nextInt(0, 60), false));
            // a*a near the overflow threshold, s anywhere up to MAX_VALUE.
            check(withExponent(random, random.nextInt(1530, 1536), true), withExponent(random, random.nextInt(1900, 2047), false));
        });
    }

    @Test
    void specialValuesWithRandomPartners() {
        double[] specials = {0.0, -0.0, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, Double.NaN,
            Double.longBitsToDouble(0x7ff0_0000_0000_0001L), Double.longBitsToDouble(0xfff8_0000_0000_0000L)};
        randomPairs(5, 100_000, random -> {
            double special = specials[random.nextInt(specials.length)];
            double other = withExponent(random, random.nextInt(2047), true);
            check(special, Math.abs(other));
            check(other, Math.abs(special));
        });
    }

    @Property(tries = 10_000)
    void anyBits(@ForAll long aBits, @ForAll long sBits) {
        check(Double.longBitsToDouble(aBits), Double.longBitsToDouble(sBits & ~SIGN));
    }

    @Provide
    Arbitrary<double[]> interacting() {
        Arbitrary<Double> a = Arbitraries.longs().map(Double::longBitsToDouble).filter(Double::isFinite);
        return Combinators.combine(a, Arbitraries.integers().between(-60, 60), Arbitraries.integers().between(-3, 3))
                .as((x, shift, step) -> {
                    long bits = Double.doubleToRawLongBits(Math.scalb(x * x, shift)) + step;
                    return new double[] {x, Double.longBitsToDouble(Math.max(0, bits))};
                });
    }

    @Property(tries = 10_000)
    void sAPowerOfTwoAwayFromTheSquare(@ForAll("interacting") double[] pair) {
        check(pair[0], pair[1]);
    }
}
