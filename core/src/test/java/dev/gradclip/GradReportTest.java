package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The report's accessors for logs. */
class GradReportTest {

    @Test
    void largestTakesACountOfZeroOrMore() {
        Gradients grads = Gradients.of(new float[] {1}, new float[] {3}, new float[] {Float.NaN}, new float[] {2});
        GradReport report = new GradReport(grads);
        try (Clipper clipper = Clipper.builder().maxNorm(1).nonFinite(NonFinite.SKIP).build()) {
            clipper.clip(grads, report);
        }
        assertArrayEquals(new int[] {2, 1, 3}, report.largest(3), "NaN first, then by norm");
        assertArrayEquals(new int[] {2, 1, 3, 0}, report.largest(10));
        assertArrayEquals(new int[0], report.largest(0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> report.largest(-1));
        assertTrue(e.getMessage().contains("k must be >= 0"), e.getMessage());
        assertTrue(report.toString().contains("largest grads[2] NaN"), report.toString());
    }
}
