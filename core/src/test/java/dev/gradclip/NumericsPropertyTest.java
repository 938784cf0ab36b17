package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.internal.Clipping;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import org.junit.jupiter.api.Test;

/**
 * Each dtype and norm type against the exact norm (BigDecimal), with magnitudes over the dtype's
 * whole range: subnormals, float64 from 1e-300 to 1e300 and mixes of both, float16 from 6e-8 to 65504.
 */
class NumericsPropertyTest {

    private static double bound(double p) {
        return p == 2 ? Clipping.l2Bound() : p == 1 ? Clipping.l1Bound() : p == Double.POSITIVE_INFINITY ? 0
                : Clipping.powerBound();
    }

    /** A value of the dtype: sign, a random significand, any exponent of the type's range. */
    private static Arbitrary<Double> element(DType type) {
        Arbitrary<Double> value = switch (type) {
            case FLOAT64 -> Arbitraries.frequencyOf(
                    Tuple.of(4, Arbitraries.longs().between(0, 0x7fef_ffff_ffff_ffffL).map(Double::longBitsToDouble)),
                    Tuple.of(1, Arbitraries.of(1e300, 1e-300, Double.MAX_VALUE / 64, Double.MIN_VALUE, Double.MIN_NORMAL)));
            case FLOAT32 -> Arbitraries.integers().between(0, 0x7f7f_ffff).map(b -> (double) Float.intBitsToFloat(b));
            case BFLOAT16 -> Arbitraries.integers().between(0, 0x7f7f).map(b -> (double) Float.intBitsToFloat(b << 16));
            case FLOAT16 -> Arbitraries.frequencyOf(
                    Tuple.of(4, Arbitraries.integers().between(0, 0x7bff).map(b -> (double) Float.float16ToFloat(b.shortValue()))),
                    Tuple.of(1, Arbitraries.of(65504.0, 0x1p-24, 6e-8, 0x1p-14)));
        };
        return Arbitraries.of(1.0, -1.0).flatMap(sign -> value.map(v -> Tensors.round(type, sign * v)));
    }

    @Provide
    Arbitrary<List<Tensors.Tensor>> sets() {
        Arbitrary<Integer> length = Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.integers().between(0, 70)),
                Tuple.of(2, Arbitraries.integers().between(70, 2000)),
                Tuple.of(1, Arbitraries.integers().between(4096 - 40, 4096 + 300)));
        Arbitrary<Tensors.Tensor> tensor = Arbitraries.of(DType.values()).flatMap(type -> length.flatMap(n ->
                element(type).array(double[].class).ofSize(n).map(values -> new Tensors.Tensor("t", type, values))));
        return tensor.list().ofMinSize(1).ofMaxSize(5).map(NumericsPropertyTest::renamed);
    }

    private static List<Tensors.Tensor> renamed(List<Tensors.Tensor> tensors) {
        List<Tensors.Tensor> out = new ArrayList<>();
        for (int i = 0; i < tensors.size(); i++) {
            Tensors.Tensor t = tensors.get(i);
            out.add(new Tensors.Tensor("t" + i, t.type(), t.values()));
        }
        return out;
    }

    private static void assertWithinBound(List<Tensors.Tensor> tensors, double p) {
        Gradients grads = Tensors.gradients(null, tensors, 0);
        double got = GradClip.totalNorm(grads, p);
        BigDecimal exact = Tensors.exactNorm(tensors, p == Double.POSITIVE_INFINITY ? p : p);
        double exactDouble = exact.doubleValue();
        if (got == Double.POSITIVE_INFINITY) {
            // Only an exact norm at the top of the double range may round (within the bound) to infinity.
            BigDecimal threshold = new BigDecimal(Double.MAX_VALUE).multiply(BigDecimal.valueOf(1 - bound(p)));
            assertTrue(exact.compareTo(threshold) >= 0, "infinite norm for a finite exact norm " + exact);
            return;
        }
        assertTrue(Double.isFinite(got), "norm " + got + " for a finite input");
        if (exact.signum() > 0 && exactDouble >= Double.MIN_NORMAL) {
            assertTrue(got > 0, "zero norm for a non-zero input");
            double error = Tensors.relativeError(got, exact);
            assertTrue(error <= bound(p), "p " + p + ": error " + error + " > bound " + bound(p));
        } else {
            // A norm below the normal range is rounded to a subnormal: within half its ulp.
            assertTrue(new BigDecimal(got).subtract(exact).abs().doubleValue() <= Double.MIN_VALUE, "subnormal norm");
        }
    }

    @Property(tries = 250)
    void l2NormIsWithinItsBoundForEveryDtype(@ForAll("sets") List<Tensors.Tensor> tensors) {
        assertWithinBound(tensors, 2);
    }

    @Property(tries = 250)
    void l1NormIsWithinItsBoundForEveryDtype(@ForAll("sets") List<Tensors.Tensor> tensors) {
        assertWithinBound(tensors, 1);
    }

    @Property(tries = 250)
    void infNormIsExactForEveryDtype(@ForAll("sets") List<Tensors.Tensor> tensors) {
        assertWithinBound(tensors, Double.POSITIVE_INFINITY);
    }

    @Property(tries = 120)
    void p3NormIsWithinItsBoundWithoutOverflowOrUnderflow(@ForAll("sets") List<Tensors.Tensor> tensors) {
        assertWithinBound(tensors, 3);
    }

    @Test
    void float64ExtremesNeitherOverflowNorUnderflow() {
        double[][] cases = {
            {1e300, 1e300},                  // squares overflow a double
            {1e-300, 1e-300, 1e-300},        // squares underflow to zero
            {1e300, 1e-300},                 // both in one block
            {Double.MIN_VALUE, Double.MIN_VALUE},
            {Double.MAX_VALUE / 4, 1.0, Double.MIN_VALUE},
        };
        for (double[] values : cases) {
            List<Tensors.Tensor> tensors = List.of(new Tensors.Tensor("x", DType.FLOAT64, values));
            for (double p : new double[] {1, 2, 3, Double.POSITIVE_INFINITY}) {
                assertWithinBound(tensors, p);
            }
        }
        List<Tensors.Tensor> twoE300 = List.of(new Tensors.Tensor("x", DType.FLOAT64, new double[] {1e300, 1e300}));
        assertEquals(Math.sqrt(2) * 1e300, GradClip.totalNorm(Tensors.gradients(null, twoE300, 0), 2), 1e286);
    }

    @Test
    void float16ExtremesAreExactInDouble() {
        double[] values = {65504, 65504, 0x1p-24, -0x1p-24};
        List<Tensors.Tensor> tensors = List.of(new Tensors.Tensor("h", DType.FLOAT16, values));
        for (double p : new double[] {1, 2, Double.POSITIVE_INFINITY}) {
            assertWithinBound(tensors, p);
        }
        // torch 1.13 cannot even clip float16 on the CPU; here the L2 norm of two 65504s is 92636.2...
        assertEquals(65504 * Math.sqrt(2), GradClip.totalNorm(Tensors.gradients(null, tensors, 0), 2), 1e-9);
    }
}
