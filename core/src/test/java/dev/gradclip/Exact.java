package dev.gradclip;

import java.math.BigDecimal;
import java.math.MathContext;

/** The exact reference: float32 values are exact in BigDecimal, and so are their squares and sums. */
final class Exact {

    private static final MathContext DIGITS_40 = new MathContext(40);

    private Exact() {}

    static BigDecimal sumOfSquares(float[]... tensors) {
        BigDecimal sum = BigDecimal.ZERO;
        for (float[] tensor : tensors) {
            for (float x : tensor) {
                // x * x is exact in double (24-bit significands), so the conversion is exact too.
                sum = sum.add(new BigDecimal((double) x * x));
            }
        }
        return sum;
    }

    static BigDecimal norm(float[]... tensors) {
        return sumOfSquares(tensors).sqrt(DIGITS_40);
    }

    /** |got - exact| / exact, or |got| when the exact value is zero. */
    static double relativeError(double got, BigDecimal exact) {
        BigDecimal difference = new BigDecimal(got).subtract(exact).abs();
        return exact.signum() == 0 ? difference.doubleValue() : difference.divide(exact, DIGITS_40).doubleValue();
    }
}
