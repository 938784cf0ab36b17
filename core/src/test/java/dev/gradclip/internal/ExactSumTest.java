package dev.gradclip.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The exact accumulator: exactness against BigDecimal, order-independence, rounding, and its word encoding. */
class ExactSumTest {

    private record Term(double value, int offset) {
        BigDecimal exact() {
            BigDecimal v = new BigDecimal(value);
            return offset >= 0 ? v.multiply(BigDecimal.TWO.pow(offset)) : v.divide(BigDecimal.TWO.pow(-offset));
        }
    }

    /** Terms over the whole range gradclip deposits: subnormals, huge values, and large offsets both ways. */
    private static List<Term> randomTerms(long seed, int n) {
        Random random = new Random(seed);
        List<Term> terms = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            double value = switch (random.nextInt(4)) {
                case 0 -> Double.longBitsToDouble(random.nextLong() & 0x7fef_ffff_ffff_ffffL); // any finite >= 0
                case 1 -> random.nextDouble() * Double.MIN_NORMAL;                            // subnormal
                case 2 -> random.nextDouble() * 1e10;
                default -> random.nextDouble() * 4;
            };
            int offset = switch (random.nextInt(3)) {
                case 0 -> 0;
                case 1 -> value >= 1 ? random.nextInt(0, 1000) : random.nextInt(-1000, 0);
                default -> value >= 1 && value < 8 ? random.nextInt(-2148, 2046) : 0;
            };
            terms.add(new Term(value, offset));
        }
        return terms;
    }

    private static BigDecimal exact(List<Term> terms) {
        BigDecimal sum = BigDecimal.ZERO;
        for (Term t : terms) {
            sum = sum.add(t.exact());
        }
        return sum;
    }

    /**
     * Engine finishes a tensor with one block deposit from the double itself: Math.sqrt and the value,
     * in place of this sum's sqrt() and toDouble(). They must be the same bits for every non-negative
     * finite double, subnormals and the extremes included.
     */
    @Test
    void oneTermReadsBackAsItselfAndItsRoot() {
        Random random = new Random(7);
        List<Double> values = new ArrayList<>(List.of(0.0, Double.MIN_VALUE, Double.MIN_NORMAL,
                Math.nextDown(Double.MIN_NORMAL), Double.MAX_VALUE, 1.0, 2.0, 0.5, 3.0));
        for (int i = 0; i < 200_000; i++) {
            values.add(switch (i % 3) {
                case 0 -> Double.longBitsToDouble(random.nextLong() & 0x7fef_ffff_ffff_ffffL); // any finite >= 0
                case 1 -> Double.longBitsToDouble(random.nextLong() & 0x000f_ffff_ffff_ffffL); // subnormal or 0
                default -> random.nextDouble() * 4096;                                        // a block's sum
            });
        }
        ExactSum sum = new ExactSum();
        for (double value : values) {
            sum.clear();
            sum.add(value, 0);
            assertEquals(Double.doubleToRawLongBits(value), Double.doubleToRawLongBits(sum.toDouble()), "value " + value);
            assertEquals(Double.doubleToRawLongBits(Math.sqrt(value)), Double.doubleToRawLongBits(sum.sqrt()),
                    "root of " + value);
        }
    }

    @Test
    void sumIsTheExactSumRoundedOnce() {
        for (long seed = 0; seed < 20; seed++) {
            List<Term> terms = randomTerms(seed, 300).stream().filter(t -> t.offset() == 0).toList();
            ExactSum sum = new ExactSum();
            terms.forEach(t -> sum.add(t.value(), t.offset()));
            BigDecimal exact = exact(terms);
            // BigDecimal.doubleValue is correctly rounded; the 60-digit pre-rounding could only matter at a tie, which random data does not hit.
            assertEquals(exact.doubleValue(), sum.toDouble(), "seed " + seed);
        }
    }

    @Test
    void orderOfDepositsAndMergesDoesNotChangeTheBits() {
        List<Term> terms = randomTerms(7, 2000);
        ExactSum forward = new ExactSum();
        terms.forEach(t -> forward.add(t.value(), t.offset()));
        for (int round = 0; round < 10; round++) {
            List<Term> shuffled = new ArrayList<>(terms);
            Collections.shuffle(shuffled, new Random(round));
            ExactSum a = new ExactSum();
            ExactSum b = new ExactSum();
            for (int i = 0; i < shuffled.size(); i++) {
                (i % 3 == 0 ? a : b).add(shuffled.get(i).value(), shuffled.get(i).offset());
            }
            b.add(a);
            assertEquals(Double.doubleToLongBits(forward.sqrt()), Double.doubleToLongBits(b.sqrt()));
            long[] w1 = new long[ExactSum.DIGITS];
            long[] w2 = new long[ExactSum.DIGITS];
            forward.writeDigits(w1, 0);
            b.writeDigits(w2, 0);
            assertEquals(List.of(toList(w1)), List.of(toList(w2)));
        }
    }

    private static List<Long> toList(long[] words) {
        List<Long> list = new ArrayList<>();
        for (long w : words) {
            list.add(w);
        }
        return list;
    }

    @Test
    void sqrtOfATotalBeyondTheDoubleRangeIsTheRootOfTheExactTotal() {
        // (1e300)^2 * 3: far above Double.MAX_VALUE, as float64 squares get.
        ExactSum sum = new ExactSum();
        double x = 1e300;
        int e = Math.getExponent(x);
        double scaled = Math.scalb(x, -e);
        for (int i = 0; i < 3; i++) {
            sum.add(scaled * scaled, 2 * e);
        }
        BigDecimal exact = new BigDecimal(scaled * scaled).multiply(BigDecimal.valueOf(3)).multiply(BigDecimal.TWO.pow(2 * e))
                .sqrt(new MathContext(40));
        double got = sum.sqrt();
        assertEquals(exact.doubleValue(), got, Math.ulp(got));
        assertEquals(Double.POSITIVE_INFINITY, sum.toDouble());
    }

    /**
     * A root below 2^-1022 is the exact root rounded once to the subnormal spacing 2^-1074, not
     * rounded to 53 bits and then again to the subnormal's fewer bits, which gives (m + 1) units for
     * [m, q] units with q = 5795 and m = q^2. Against BigDecimal: random totals of
     * squares of subnormals (integers in units of 2^-2148), totals with bits below that unit, and exact
     * ties at half a unit, both ways.
     */
    @Test
    void aSubnormalRootIsTheExactRootRoundedOnce() {
        long q = 5795;
        long m = q * q;
        assertEquals(m, assertRoundedRoot(List.of(new Term((double) (m * m), -2148), new Term((double) (q * q), -2148))),
                "[m, q] units");

        Random random = new Random(11);
        for (int trial = 0; trial < 3000; trial++) {
            List<Term> terms = new ArrayList<>();
            long range = switch (trial % 3) {
                case 0 -> 1L << 26;  // roots up to 2^27 units
                case 1 -> 1L << 50;  // roots just below MIN_NORMAL
                default -> 1 + random.nextInt(100);
            };
            for (int k = 1 + random.nextInt(3); k > 0; k--) {
                long units = 1 + (random.nextLong() & Long.MAX_VALUE) % range;
                // units^2 * 2^-2148, as two exact halves of the square
                long high = Math.multiplyHigh(units, units);
                long low = units * units;
                terms.add(new Term((double) (low & 0xffff_ffffL), -2148));
                terms.add(new Term((double) (low >>> 32), -2148 + 32));
                terms.add(new Term((double) high, -2148 + 64));
            }
            if (trial % 5 == 0) {
                terms.add(new Term((1 << 10) + random.nextInt(1 << 20), -2160)); // bits below a quarter unit
            }
            assertRoundedRoot(terms);
        }
        for (long units : new long[] {3, 4, (1L << 51) + 2, (1L << 51) + 3, (1L << 52) - 1}) {
            // (units + 1/2)^2 = units^2 + units + 1/4: a tie, which goes to the even neighbour
            List<Term> tie = new ArrayList<>();
            long high = Math.multiplyHigh(units, units);
            long low = units * units;
            tie.add(new Term((double) (low & 0xffff_ffffL), -2148));
            tie.add(new Term((double) (low >>> 32), -2148 + 32));
            tie.add(new Term((double) high, -2148 + 64));
            tie.add(new Term((double) units, -2148));
            tie.add(new Term(1, -2150));
            long got = assertRoundedRoot(tie);
            assertEquals(units % 2 == 0 ? units : units + 1, got, "tie at " + units + " + 1/2");
        }
    }

    /** Asserts that the sum's root is the exact root, in units of 2^-1074, rounded to nearest even; returns those units. */
    private static long assertRoundedRoot(List<Term> terms) {
        ExactSum sum = new ExactSum();
        for (Term t : terms) {
            sum.add(t.value(), t.offset());
        }
        BigDecimal n = exact(terms).multiply(BigDecimal.TWO.pow(2148)); // the total in units of 2^-2148
        BigDecimal root = n.sqrt(new MathContext(80));
        BigDecimal floor = root.setScale(0, java.math.RoundingMode.FLOOR);
        BigDecimal half = floor.add(new BigDecimal("0.5"));
        int side = n.compareTo(half.multiply(half)); // exact: the root against floor + 1/2
        long expected = side < 0 || (side == 0 && floor.longValueExact() % 2 == 0)
                ? floor.longValueExact() : floor.longValueExact() + 1;
        double got = sum.sqrt();
        assertEquals(Math.scalb((double) expected, -1074), got, "root of " + n.stripTrailingZeros().toPlainString() + " units of 2^-2148");
        return Double.doubleToRawLongBits(got) == 0 ? 0 : Math.round(Math.scalb(got, 1074));
    }

    @Test
    void roundingIsToNearestEvenAtATie() {
        ExactSum sum = new ExactSum();
        sum.add(1.0, 0);
        sum.add(0x1p-53, 0); // exactly half an ulp of 1: ties to even, 1.0
        assertEquals(1.0, sum.toDouble());
        sum.add(0x1p-200, 0); // just above the tie: rounds up
        assertEquals(Math.nextUp(1.0), sum.toDouble());
        ExactSum odd = new ExactSum();
        odd.add(Math.nextUp(1.0), 0);
        odd.add(0x1p-53, 0); // tie from an odd significand: up to even
        assertEquals(1.0 + 0x1p-51, odd.toDouble());
    }

    @Test
    void wordsSummedOverManyWorkersCarryToTheSameValue() {
        // 1000 workers' digit words, summed element-wise as an int64 all-reduce would, then read back.
        List<Term> terms = randomTerms(11, 5000);
        ExactSum whole = new ExactSum();
        long[] reduced = new long[ExactSum.DIGITS];
        ExactSum worker = new ExactSum();
        long[] words = new long[ExactSum.DIGITS];
        for (int w = 0; w < 1000; w++) {
            worker.clear();
            for (int i = w; i < terms.size(); i += 1000) {
                worker.add(terms.get(i).value(), terms.get(i).offset());
                whole.add(terms.get(i).value(), terms.get(i).offset());
            }
            worker.writeDigits(words, 0);
            for (int k = 0; k < words.length; k++) {
                reduced[k] += words[k];
            }
        }
        ExactSum read = new ExactSum();
        read.readDigits(reduced, 0);
        assertEquals(Double.doubleToLongBits(whole.sqrt()), Double.doubleToLongBits(read.sqrt()));
        assertEquals(Double.doubleToLongBits(whole.toDouble()), Double.doubleToLongBits(read.toDouble()));
    }

    @Test
    void readRejectsNegativeWords() {
        long[] words = new long[ExactSum.DIGITS];
        words[5] = -1;
        assertThrows(IllegalArgumentException.class, () -> new ExactSum().readDigits(words, 0));
    }

    @Test
    void manyDepositsIntoOneDigitCarryCorrectly() {
        ExactSum sum = new ExactSum();
        double big = 0x1.fffffffffffffp0;
        int n = 3_000_000;
        for (int i = 0; i < n; i++) {
            sum.add(big, 0);
        }
        BigDecimal exact = new BigDecimal(big).multiply(BigDecimal.valueOf(n));
        assertEquals(exact.doubleValue(), sum.toDouble());
    }
}
