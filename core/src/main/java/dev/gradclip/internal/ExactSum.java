package dev.gradclip.internal;

import java.util.Arrays;

/**
 * The exact sum of non-negative finite doubles, each times a power of two: one definition of "the
 * sum" for the norm, the per-tensor figures, the threads and the all-reduce words.
 *
 * <p>A fixed-point number (a "superaccumulator", as in Kulisch's long accumulator and Neal's "Fast
 * exact summation using small and large superaccumulators", 2015) of {@link #DIGITS} base-2^32
 * digits, each held in a 64-bit word, the lowest weighing 2^{@link #MIN_EXPONENT}. A deposit adds a
 * 53-bit significand to at most three words without carrying; the 31 spare bits of each word absorb
 * 2^28 deposits before {@link #normalize()} must propagate carries. So adding is exact, and the
 * result does not depend on the order of the deposits or merges: rounding happens once, when the
 * total is read.
 *
 * <p>The range covers every term gradclip deposits: block sums of float64 squares scaled by up to
 * 2^±2148 (the square of the largest double is below 2^2048, of the smallest subnormal 2^-2148, and
 * a block sum keeps 53 bits below its leading one), times 2^48 blocks, times 2^20 merged workers.
 */
public final class ExactSum {

    /** The weight of the lowest bit is 2^MIN_EXPONENT: below 2^-2200, the lowest bit a deposit can hold. */
    public static final int MIN_EXPONENT = -2208;
    /** Bits from 2^-2208 up to 2^2144, above the 2^2128 a sum can reach. */
    public static final int DIGITS = 136;

    private static final long DIGIT_MASK = 0xFFFF_FFFFL;
    /** Each deposit adds below 2^33 to a word, so 2^28 deposits keep every word below 2^62. */
    private static final int DEPOSITS_BETWEEN_CARRIES = 1 << 28;

    private final long[] digits = new long[DIGITS];
    /** The digits that may be non-zero are lowest..highest; clear and read touch only those. */
    private int lowest = DIGITS;
    private int highest = -1;
    private int depositsSinceCarry;
    /** Whether every word holds one digit below 2^32; reading a normalized sum then writes nothing. */
    private boolean normalized = true;

    /** After {@link #round()}: the total is {@code roundedSignificand * 2^roundedExponent}. */
    private long roundedSignificand;
    private int roundedExponent;

    public void clear() {
        if (highest >= lowest) {
            Arrays.fill(digits, lowest, highest + 1, 0);
        }
        lowest = DIGITS;
        highest = -1;
        depositsSinceCarry = 0;
        normalized = true;
    }

    public boolean isZero() {
        for (int i = lowest; i <= highest; i++) {
            if (digits[i] != 0) {
                return false;
            }
        }
        return true;
    }

    /** Adds {@code value * 2^exponentOffset}; {@code value} is finite and non-negative. */
    public void add(double value, int exponentOffset) {
        if (value == 0) {
            return;
        }
        long bits = Double.doubleToRawLongBits(value);
        int biased = (int) (bits >>> 52);
        long significand = bits & 0x000F_FFFF_FFFF_FFFFL;
        int exponent; // of the significand's lowest bit
        if (biased == 0) {
            exponent = -1074;
        } else {
            significand |= 1L << 52;
            exponent = biased - 1075;
        }
        int position = exponent + exponentOffset - MIN_EXPONENT;
        int digit = position >>> 5;
        if (position < 0 || digit + 2 >= DIGITS) {
            throw new IllegalStateException("term 2^" + (exponent + exponentOffset) + " outside the exact sum's range");
        }
        int shift = position & 31;
        long low = (significand & DIGIT_MASK) << shift;  // below 2^63
        long high = (significand >>> 32) << shift;         // below 2^52
        digits[digit] += low & DIGIT_MASK;
        digits[digit + 1] += (low >>> 32) + (high & DIGIT_MASK);
        digits[digit + 2] += high >>> 32;
        lowest = Math.min(lowest, digit);
        highest = Math.max(highest, digit + 2);
        normalized = false;
        if (++depositsSinceCarry == DEPOSITS_BETWEEN_CARRIES) {
            normalize();
        }
    }

    /** Adds another exact sum; {@code other} does not change. */
    public void add(ExactSum other) {
        if (other.highest < other.lowest) {
            return;
        }
        if (depositsSinceCarry + other.depositsSinceCarry + 1 >= DEPOSITS_BETWEEN_CARRIES) {
            normalize(); // other's words may be as full as ours: keep the sum of both below 2^63
            other.normalizedCopyInto(this);
            return;
        }
        for (int i = other.lowest; i <= other.highest; i++) {
            digits[i] += other.digits[i];
        }
        lowest = Math.min(lowest, other.lowest);
        highest = Math.max(highest, other.highest);
        depositsSinceCarry += other.depositsSinceCarry + 1;
        normalized = false;
    }

    private void normalizedCopyInto(ExactSum target) {
        long carry = 0;
        for (int i = lowest; i < DIGITS && (i <= highest || carry != 0); i++) {
            long t = digits[i] + carry;
            target.digits[i] += t & DIGIT_MASK;
            carry = t >>> 32;
            target.lowest = Math.min(target.lowest, i);
            target.highest = Math.max(target.highest, i);
        }
        target.normalized = false;
        target.normalize();
    }

    /** Propagates carries, so that every word holds one digit below 2^32. The value does not change. */
    public void normalize() {
        if (normalized) {
            return; // nothing to carry, and nothing written: a normalized sum is safe to read from many threads
        }
        depositsSinceCarry = 0;
        normalized = true;
        if (highest < lowest) {
            return;
        }
        long carry = 0;
        int i = lowest;
        for (; i < DIGITS && (i <= highest || carry != 0); i++) {
            long t = digits[i] + carry;
            digits[i] = t & DIGIT_MASK;
            carry = t >>> 32;
        }
        if (carry != 0) {
            throw new ArithmeticException("exact sum overflowed 2^" + (MIN_EXPONENT + 32 * DIGITS));
        }
        highest = Math.max(highest, i - 1);
    }

    /**
     * Rounds the total once, to nearest even, to a 53-bit significand and an unbounded exponent, read
     * with {@link #toDouble()} and {@link #sqrt()}. Returns false when the total is zero.
     */
    private boolean round() {
        normalize();
        int top = highest;
        while (top >= lowest && digits[top] == 0) {
            top--;
        }
        if (top < lowest) {
            return false;
        }
        int bitsInTop = 64 - Long.numberOfLeadingZeros(digits[top]); // 1..32
        long next = top - 1 >= 0 ? digits[top - 1] : 0;
        long third = top - 2 >= 0 ? digits[top - 2] : 0;
        // The 64 bits from the leading one down, and whether anything below them is non-zero.
        long window = (digits[top] << (64 - bitsInTop)) | (next << (32 - bitsInTop)) | (third >>> bitsInTop);
        boolean sticky = (third & ((1L << bitsInTop) - 1)) != 0;
        for (int i = top - 3; i >= lowest && !sticky; i--) {
            sticky = digits[i] != 0;
        }
        long significand = window >>> 11;
        long rest = window & 0x7FF;
        if (rest > 0x400 || (rest == 0x400 && (sticky || (significand & 1) != 0))) {
            significand++;
        }
        int exponent = MIN_EXPONENT + 32 * top + bitsInTop - 1 - 52;
        if (significand == 1L << 53) {
            significand >>>= 1;
            exponent++;
        }
        roundedSignificand = significand;
        roundedExponent = exponent;
        return true;
    }

    /** The total, rounded once to nearest even (+Infinity above the double range). */
    public double toDouble() {
        return round() ? Math.scalb((double) roundedSignificand, roundedExponent) : 0.0;
    }

    /**
     * The square root of the total: the total rounded once to 53 bits, whose square root is then
     * correctly rounded. The exponent is halved as an integer, so a total beyond the double range
     * (float64 squares) still gives its root.
     */
    public double sqrt() {
        if (!round()) {
            return 0.0;
        }
        if (roundedExponent <= SUBNORMAL_ROOTS) {
            return subnormalSqrt();
        }
        double significand = roundedSignificand;
        int exponent = roundedExponent;
        if ((exponent & 1) != 0) {
            significand *= 2; // exact
            exponent--;
        }
        return Math.scalb(Math.sqrt(significand), exponent / 2);
    }

    /**
     * Rounded totals with this exponent or below are under 2^-2044, so their root is under 2^-1022:
     * a subnormal, or {@code MIN_NORMAL} once rounded.
     */
    private static final int SUBNORMAL_ROOTS = -2044 - 53;

    /**
     * The root of a total below 2^-2044, rounded once to a multiple of 2^-1074 (the subnormal spacing),
     * to nearest even. Rounding the total to 53 bits, its root to 53 bits and that to the subnormal's
     * fewer bits would round three times and could miss by one unit. Instead, with the total as an
     * exact number N of units 2^-2148 (so that the root is in units 2^-1074): K = floor(sqrt(4N)),
     * from the integer part M of 4N (below 2^106) and whether 4N has a fraction. sqrt(N) lies in
     * [K/2, (K+1)/2): an even K rounds down to K/2; an odd K rounds up to (K+1)/2, unless
     * sqrt(N) is exactly K/2, a tie, which goes to the even neighbour.
     */
    private double subnormalSqrt() {
        // 4N = total * 2^2150: digit i weighs 2^(32i - 58); digits 0 and the low 26 bits of digit 1 are the fraction.
        long high = 0;
        long low = 0;
        boolean fraction = false;
        for (int i = lowest; i <= highest; i++) {
            long digit = digits[i];
            int shift = 32 * i + MIN_EXPONENT + 2150;
            if (shift < 0) {
                fraction |= -shift >= 64 ? digit != 0 : (digit & ((1L << -shift) - 1)) != 0;
                digit = -shift >= 64 ? 0 : digit >>> -shift;
                shift = 0;
            }
            long addLow = shift >= 64 ? 0 : digit << shift;
            long addHigh = shift == 0 ? 0 : shift >= 64 ? digit << (shift - 64) : digit >>> (64 - shift);
            low += addLow;
            high += addHigh + (Long.compareUnsigned(low, addLow) < 0 ? 1 : 0);
        }
        long k = (long) Math.sqrt(Math.scalb((double) high, 64) + unsignedToDouble(low));
        while (squareExceeds(k, high, low)) {
            k--;
        }
        while (!squareExceeds(k + 1, high, low)) {
            k++;
        }
        long units = (k + 1) >>> 1; // an odd K rounds up, an even K down
        boolean tie = (k & 1) == 1 && !fraction && k * k == low && Math.multiplyHigh(k, k) == high;
        if (tie && (units & 1) == 1) {
            units--;
        }
        return Math.scalb((double) units, -1074);
    }

    private static double unsignedToDouble(long value) {
        return value >= 0 ? value : Math.scalb((double) (value >>> 1), 1);
    }

    /** Whether k^2 > (high, low) as unsigned 128-bit integers; k is below 2^54. */
    private static boolean squareExceeds(long k, long high, long low) {
        long squareHigh = Math.multiplyHigh(k, k);
        return squareHigh != high ? squareHigh > high : Long.compareUnsigned(k * k, low) > 0;
    }

    /** Writes the normalized digits into {@code words} from {@code offset}: {@link #DIGITS} words, each below 2^32. */
    public void writeDigits(long[] words, int offset) {
        normalize();
        Arrays.fill(words, offset, offset + DIGITS, 0);
        if (highest >= lowest) {
            System.arraycopy(digits, lowest, words, offset + lowest, highest - lowest + 1);
        }
    }

    /**
     * Replaces this sum by digits read from {@code words}: digits summed word by word over up to
     * 2^31 workers are below 2^63 and are carried here. Throws on a negative word, which no sum of
     * digits can produce.
     */
    public void readDigits(long[] words, int offset) {
        clear();
        for (int i = 0; i < DIGITS; i++) {
            long word = words[offset + i];
            if (word < 0) {
                throw new IllegalArgumentException("words[" + (offset + i) + "] is negative (" + word
                        + "): not a sum of exact-sum digits");
            }
            digits[i] = word;
        }
        lowest = 0;
        highest = DIGITS - 1;
        normalized = false;
        try {
            normalize();
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("the words' digits sum beyond the exact sum's range: not a sum of"
                    + " exact-sum digits", e);
        }
        while (highest >= 0 && digits[highest] == 0) {
            highest--;
        }
        while (lowest <= highest && digits[lowest] == 0) {
            lowest++;
        }
        if (highest < lowest) {
            lowest = DIGITS;
            highest = -1;
        }
    }

    /** Copies {@code other}'s value into this sum. */
    public void set(ExactSum other) {
        clear();
        add(other);
    }
}
