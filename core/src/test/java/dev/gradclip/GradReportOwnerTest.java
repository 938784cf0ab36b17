package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** A GradReport labels the tensors of the one Gradients it was built for, and no other set of the same size. */
class GradReportOwnerTest {

    @Test
    void aReportBuiltForOtherGradientsOfTheSameSizeIsRejectedBeforeAnythingIsWritten() {
        Gradients grads = Tensors.gradients(null, Tensors.mixed(1, 5, false), 0);
        Gradients other = Tensors.gradients(null, Tensors.mixed(2, 5, false), 0);
        // The same names too: only the report's own Gradients may be clipped with it.
        Gradients sameNames = Tensors.gradients(null, Tensors.mixed(1, 5, false), 0);
        GradReport report = new GradReport(other);
        GradReport sameNamesReport = new GradReport(sameNames);
        long[] before = Tensors.allBits(grads);
        for (int threads : new int[] {1, 2}) {
            try (Clipper clipper = Clipper.builder().maxNorm(0).threads(threads).minParallelBytes(0).build()) {
                for (GradReport wrong : new GradReport[] {report, sameNamesReport}) {
                    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> clipper.clip(grads, wrong));
                    assertTrue(e.getMessage().contains("report"), e.getMessage());
                    assertTrue(wrong.toString().contains("not filled"), "the report was filled: " + wrong);
                }
            }
        }
        assertArrayEquals(before, Tensors.allBits(grads));
    }

    @Test
    void itsOwnGradientsAreAccepted() {
        Gradients grads = Tensors.gradients(null, Tensors.mixed(1, 5, false), 0);
        GradReport report = new GradReport(grads);
        try (Clipper clipper = Clipper.builder().maxNorm(0).build()) {
            clipper.clip(grads, report);
        }
        assertTrue(report.clipped());
    }
}
