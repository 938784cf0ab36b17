package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * What docs/sharding.md, section "A tensor split inside itself", promises about a tensor cut inside itself
 * across participants: the norm stays
 * within the error bound, the inf-norm is exact for any cut, and cuts at a multiple of the 4096-element
 * block keep the unsplit bits (the blocks are the same), while other cuts may change the last bits,
 * because the blocks start at each piece's first element.
 */
class TensorCutTest {

    private static final int N = 5 * 4096 + 1234;

    private static double pieces(MemorySegment tensor, long cut, double normType) {
        Gradients a = Gradients.of(DType.FLOAT32, List.of(tensor.asSlice(0, 4 * cut)));
        Gradients b = Gradients.of(DType.FLOAT32, List.of(tensor.asSlice(4 * cut)));
        return GradClip.partialNorm(a, normType).merge(GradClip.partialNorm(b, normType)).norm();
    }

    @Test
    void cutsInsideATensorStayWithinTheBoundAndBlockAlignedCutsKeepTheBits() {
        SplittableRandom random = new SplittableRandom(7);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment tensor = arena.allocate(ValueLayout.JAVA_FLOAT, N);
            for (long i = 0; i < N; i++) {
                tensor.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) (random.nextGaussian() * Math.pow(10, random.nextDouble(-3, 3))));
            }
            Gradients whole = Gradients.of(DType.FLOAT32, List.of(tensor));
            int differing = 0;
            for (double normType : new double[] {1, 2, Double.POSITIVE_INFINITY}) {
                double unsplit = GradClip.totalNorm(whole, normType);
                for (long cut = 4096; cut < N; cut += 4096) {
                    assertEquals(Double.doubleToRawLongBits(unsplit), Double.doubleToRawLongBits(pieces(tensor, cut, normType)),
                            "block-aligned cut at " + cut + ", norm type " + normType);
                }
                for (int k = 0; k < 40; k++) {
                    long cut = 1 + random.nextLong(N - 1);
                    double cutNorm = pieces(tensor, cut, normType);
                    if (Double.isInfinite(normType)) {
                        assertEquals(Double.doubleToRawLongBits(unsplit), Double.doubleToRawLongBits(cutNorm), "inf-norm, cut at " + cut);
                    } else {
                        // Both are within 1e-13 of the exact norm.
                        assertTrue(Math.abs(cutNorm - unsplit) <= 2e-13 * unsplit, "cut at " + cut + ": " + cutNorm + " vs " + unsplit);
                        if (cutNorm != unsplit) {
                            differing++;
                        }
                    }
                }
            }
            // Not a guarantee, but what the docs say happens: some unaligned cuts change the last bits.
            assertTrue(differing > 0, "no unaligned cut changed the bits; update the README's explanation");
        }
    }
}
