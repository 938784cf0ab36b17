package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.internal.Clipping;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@link Clipper#clipScaled}: buffers that hold a multiple of the gradient (minibatch sums, loss scaling). */
class ClipScaledTest {

    /**
     * One tensor per dtype, lengths that cross blocks, magnitudes within 2^-6..2^6 so that the values
     * times 8 and the clipped products stay normal in every dtype: there scaling by a power of two is exact.
     */
    private static List<Tensors.Tensor> moderate(long seed, double factor) {
        SplittableRandom random = new SplittableRandom(seed);
        List<Tensors.Tensor> out = new ArrayList<>();
        for (DType type : DType.values()) {
            double[] values = new double[5000 + type.ordinal() * 37];
            for (int i = 0; i < values.length; i++) {
                double v = Tensors.round(type, Math.scalb(random.nextDouble(1, 2), random.nextInt(-6, 7)));
                values[i] = (random.nextBoolean() ? v : -v) * factor;
            }
            out.add(new Tensors.Tensor("t." + type.name().toLowerCase(), type, values));
        }
        return out;
    }

    private static Gradients gradients(List<Tensors.Tensor> tensors) {
        return Tensors.gradients(null, tensors, 0);
    }

    /** With scale 2^3 every figure and every written bit is that of clip on the gradients divided by 8. */
    @ParameterizedTest
    @ValueSource(doubles = {1, 2, Double.POSITIVE_INFINITY, 3})
    void aPowerOfTwoScaleGivesClipOnTheQuotientBitForBit(double p) {
        Gradients quotient = gradients(moderate(21, 1));
        Gradients sums = gradients(moderate(21, 8));
        GradReport expected = new GradReport(quotient);
        GradReport got = new GradReport(sums);
        double maxNorm = GradClip.totalNorm(quotient, p) / 3;
        try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).normType(p).build()) {
            assertEquals(clipper.clip(quotient, expected), clipper.clipScaled(sums, 8, got));
        }
        assertTrue(got.clipped());
        assertEquals(expected.totalNorm(), got.totalNorm());
        assertEquals(expected.coefficient(), got.coefficient());
        for (int t = 0; t < sums.size(); t++) {
            assertEquals(expected.norm(t), got.norm(t), sums.name(t));
            assertEquals(expected.maxAbs(t), got.maxAbs(t), sums.name(t));
            for (long i = 0; i < sums.numel(t); i++) {
                assertEquals(8 * Tensors.get(quotient.segment(t), quotient.dtype(t), i),
                        Tensors.get(sums.segment(t), sums.dtype(t), i), sums.name(t) + " element " + i);
            }
        }
    }

    /** A scale of 3 (inexact in binary): the norm is the buffers' norm divided by 3, the coefficient torch's for it. */
    @Test
    void anyScaleReportsTheQuotientsNormAndClipsTheQuotientToMaxNorm() {
        List<Tensors.Tensor> tensors = List.of(moderate(5, 1).get(DType.FLOAT32.ordinal()),
                moderate(6, 1).get(DType.FLOAT64.ordinal()));
        Gradients sums = gradients(tensors);
        double bufferNorm = GradClip.totalNorm(gradients(tensors));
        double maxNorm = 0.25;
        GradReport report = new GradReport(sums);
        try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).build()) {
            assertEquals(bufferNorm / 3, clipper.clipScaled(sums, 3, report));
        }
        assertEquals(bufferNorm / 3, report.totalNorm());
        assertEquals(maxNorm / (bufferNorm / 3 + Clipping.EPS), report.coefficient());
        for (int t = 0; t < sums.size(); t++) {
            assertEquals(GradClip.totalNorm(gradients(List.of(tensors.get(t)))) / 3, report.norm(t));
        }
        // The quotient of the clipped buffers has norm maxNorm: float32 rounding and the 1e-6 aside.
        assertEquals(maxNorm, GradClip.totalNorm(sums) / 3, maxNorm * 1e-6);
    }

    @Test
    void underTheThresholdNothingIsWritten() {
        Gradients sums = gradients(moderate(8, 1));
        long[] before = Tensors.allBits(sums);
        double norm = GradClip.totalNorm(sums);
        GradReport report = new GradReport(sums);
        // Torch's rule scales a norm equal to maxNorm (by maxNorm / (norm + 1e-6)); twice the norm is well under.
        try (Clipper clipper = Clipper.builder().maxNorm(2 * norm / 5).build()) {
            assertEquals(norm / 5, clipper.clipScaled(sums, 5, report));
        }
        assertFalse(report.clipped());
        assertEquals(1.0, report.coefficient());
        assertArrayEquals(before, Tensors.allBits(sums));
    }

    @Test
    void aBadScaleOrReportIsRejectedBeforeAnythingIsWritten() {
        Gradients sums = gradients(moderate(9, 1));
        long[] before = Tensors.allBits(sums);
        GradReport report = new GradReport(sums);
        try (Clipper clipper = Clipper.builder().maxNorm(0).build()) {
            for (double bad : new double[] {0, -0.0, -2, Double.NaN, Double.POSITIVE_INFINITY}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> clipper.clipScaled(sums, bad, report));
                assertTrue(e.getMessage().contains("scale"), e.getMessage());
            }
            assertThrows(NullPointerException.class, () -> clipper.clipScaled(sums, 2, null));
            GradReport wrong = new GradReport(gradients(moderate(9, 1).subList(0, 1)));
            assertThrows(IllegalArgumentException.class, () -> clipper.clipScaled(sums, 2, wrong));
        }
        assertArrayEquals(before, Tensors.allBits(sums));
    }
}
