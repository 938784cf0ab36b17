package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

/**
 * The merge property: a random gradient set split at tensor boundaries across 1 to 64 simulated
 * workers, merged in random trees and through toLongs words summed (or maxed) word by word, gives
 * the unsplit call's bits. And the split API against clipGradNorm.
 */
class PartialsTest {

    private static final double[] EXACT_TYPES = {1, 2, Double.POSITIVE_INFINITY};

    /** Consecutive runs of tensors, one per worker (some workers may hold none). */
    private static List<List<Tensors.Tensor>> split(List<Tensors.Tensor> tensors, int workers, Random random) {
        List<List<Tensors.Tensor>> shards = new ArrayList<>();
        for (int w = 0; w < workers; w++) {
            shards.add(new ArrayList<>());
        }
        for (Tensors.Tensor t : tensors) {
            shards.get(random.nextInt(workers)).add(t); // any assignment: a shard need not be contiguous
        }
        return shards;
    }

    private static NormPartial mergeInRandomTree(List<NormPartial> partials, Random random) {
        List<NormPartial> pool = new ArrayList<>(partials);
        while (pool.size() > 1) {
            NormPartial a = pool.remove(random.nextInt(pool.size()));
            NormPartial b = pool.remove(random.nextInt(pool.size()));
            pool.add(random.nextBoolean() ? a.merge(b) : b.merge(a));
        }
        return pool.get(0);
    }

    @Property(tries = 40)
    void anyMergeTreeAndTheWordAllReduceGiveTheUnsplitBits(@ForAll @IntRange(min = 1, max = 64) int workers,
                                                         @ForAll long seed) {
        Random random = new Random(seed);
        List<Tensors.Tensor> tensors = Tensors.mixed(seed, 1 + random.nextInt(30), true);
        Gradients whole = Tensors.gradients(null, tensors, 0);
        List<List<Tensors.Tensor>> shards = split(tensors, workers, random);
        for (double p : EXACT_TYPES) {
            long expected = Double.doubleToLongBits(GradClip.totalNorm(whole, p));
            List<NormPartial> partials = new ArrayList<>();
            for (List<Tensors.Tensor> shard : shards) {
                partials.add(GradClip.partialNorm(Tensors.gradients(null, shard, 0), p));
            }
            for (int tree = 0; tree < 3; tree++) {
                assertEquals(expected, Double.doubleToLongBits(mergeInRandomTree(partials, random).norm()), "p " + p);
            }
            long[] reduced = null;
            for (NormPartial partial : partials) {
                long[] words = partial.toLongs();
                assertEquals(NormPartial.wordCount(p), words.length, "every partial of a normType has one length");
                if (reduced == null) {
                    reduced = words;
                } else {
                    for (int k = 0; k < words.length; k++) {
                        reduced[k] = partial.reducesByMax() ? Math.max(reduced[k], words[k]) : reduced[k] + words[k];
                    }
                }
            }
            assertEquals(expected, Double.doubleToLongBits(NormPartial.fromLongs(p, reduced).norm()), "words, p " + p);
        }
    }

    @Test
    void mergingLeavesBothOperandsUnchanged() {
        NormPartial a = GradClip.partialNorm(Gradients.of(new float[] {3}), 2);
        NormPartial b = GradClip.partialNorm(Gradients.of(new float[] {4}), 2);
        assertEquals(5.0, a.merge(b).norm());
        assertEquals(3.0, a.norm());
        assertEquals(4.0, b.norm());
    }

    @Test
    void nonFiniteValuesSurviveEveryMergeAndTheWords() {
        NormPartial nan = GradClip.partialNorm(Gradients.of(new float[] {1, Float.NaN}), 2);
        NormPartial inf = GradClip.partialNorm(Gradients.of(new float[] {Float.POSITIVE_INFINITY}), 2);
        NormPartial fine = GradClip.partialNorm(Gradients.of(new float[] {1e30f}), 2);
        assertTrue(Double.isNaN(fine.merge(nan).merge(inf).norm()));
        assertEquals(Double.POSITIVE_INFINITY, fine.merge(inf).norm());
        long[] sum = fine.toLongs();
        long[] other = inf.toLongs();
        for (int k = 0; k < sum.length; k++) {
            sum[k] += other[k];
        }
        assertEquals(Double.POSITIVE_INFINITY, NormPartial.fromLongs(2, sum).norm());
        for (double p : new double[] {1, Double.POSITIVE_INFINITY, 3}) {
            NormPartial a = GradClip.partialNorm(Gradients.of(new float[] {Float.NaN}), p);
            NormPartial b = GradClip.partialNorm(Gradients.of(new float[] {Float.NEGATIVE_INFINITY}), p);
            assertTrue(Double.isNaN(a.merge(b).norm()), "p " + p);
            assertEquals(Double.POSITIVE_INFINITY, b.norm(), "p " + p);
        }
        long[] maxWords = GradClip.partialNorm(Gradients.of(new float[] {Float.NaN}), Double.POSITIVE_INFINITY).toLongs();
        long[] bigWords = GradClip.partialNorm(Gradients.of(new float[] {Float.MAX_VALUE}), Double.POSITIVE_INFINITY).toLongs();
        long[] maxed = {Math.max(maxWords[0], bigWords[0]), Math.max(maxWords[1], bigWords[1])};
        assertTrue(Double.isNaN(NormPartial.fromLongs(Double.POSITIVE_INFINITY, maxed).norm()));
    }

    @Test
    void otherNormTypesMergeWithinTheirBoundButHaveNoWords() {
        List<Tensors.Tensor> tensors = Tensors.mixed(5, 10, false);
        Gradients whole = Tensors.gradients(null, tensors, 0);
        double expected = GradClip.totalNorm(whole, 3);
        NormPartial merged = null;
        for (Tensors.Tensor t : tensors) {
            NormPartial part = GradClip.partialNorm(Tensors.gradients(null, List.of(t), 0), 3);
            merged = merged == null ? part : merged.merge(part);
        }
        assertEquals(expected, merged.norm(), expected * 1e-13);
        NormPartial last = merged;
        assertThrows(UnsupportedOperationException.class, last::toLongs);
    }

    @Test
    void fromLongsRejectsWordsOfAnotherLengthOrThatAreNotASum() {
        long[] words = GradClip.partialNorm(Gradients.of(new float[] {1, 2}), 2).toLongs();
        IllegalArgumentException length = assertThrows(IllegalArgumentException.class,
                () -> NormPartial.fromLongs(2, java.util.Arrays.copyOf(words, words.length - 1)));
        assertTrue(length.getMessage().contains("entries"), length.getMessage());
        long[] corrupt = words.clone();
        corrupt[0]++;
        assertThrows(IllegalArgumentException.class, () -> NormPartial.fromLongs(2, corrupt));
        assertThrows(IllegalArgumentException.class, () -> NormPartial.fromLongs(1, words)); // another normType's tag
        long[] negative = words.clone();
        negative[10] = -5;
        assertThrows(IllegalArgumentException.class, () -> NormPartial.fromLongs(2, negative));
        assertThrows(IllegalArgumentException.class, () -> NormPartial.fromLongs(Double.POSITIVE_INFINITY, words));
        long[] overflowing = words.clone();
        overflowing[overflowing.length - 1] = 1L << 40; // a top digit beyond the exact sum's range
        assertThrows(IllegalArgumentException.class, () -> NormPartial.fromLongs(2, overflowing));
    }

    @Test
    void wordsReducedByMaxInsteadOfSumAreRejected() {
        // L1 of one float64 each: a's digits are (1, 5), b's (5, 1) in units of 2^0 and 2^32. Their MAX,
        // (5, 5), is no partial's digits; where one partial wins every digit, a MAX cannot be told from it.
        long[] a = GradClip.partialNorm(float64(5 * 0x1p32 + 1), 1).toLongs();
        long[] b = GradClip.partialNorm(float64(0x1p32 + 5), 1).toLongs();
        long[] maxed = new long[a.length];
        for (int k = 0; k < a.length; k++) {
            maxed[k] = Math.max(a[k], b[k]);
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NormPartial.fromLongs(1, maxed));
        assertTrue(e.getMessage().contains("checksum"), e.getMessage());
    }

    private static Gradients float64(double value) {
        return Tensors.gradients(null, List.of(new Tensors.Tensor("x", DType.FLOAT64, new double[] {value})), 0);
    }

    @Test
    void clipGradsWithNormScalesExactlyAsClipGradNorm() {
        for (double p : new double[] {1, 2, Double.POSITIVE_INFINITY, 3}) {
            List<Tensors.Tensor> tensors = Tensors.mixed(17, 12, true);
            Gradients a = Tensors.gradients(null, tensors, 0);
            Gradients b = Tensors.gradients(null, tensors, 0);
            double norm = GradClip.totalNorm(a, p);
            double maxNorm = norm / 7;
            assertEquals(norm, GradClip.clipGradNorm(a, maxNorm, p));
            GradClip.clipGradsWithNorm(b, maxNorm, norm);
            assertArrayEquals(Tensors.allBits(a), Tensors.allBits(b), "p " + p);
        }
    }

    @Test
    void clipGradsWithNormWritesNothingWhenTheFactorIsOneAndRejectsANegativeNorm() {
        Gradients grads = Gradients.of(DType.FLOAT32, List.of(java.lang.foreign.MemorySegment.ofArray(new float[] {3, 4}).asReadOnly()));
        GradClip.clipGradsWithNorm(grads, 5, 4.999); // min(1, 5 / 4.999001) is 1; read-only: any write would throw
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> GradClip.clipGradsWithNorm(grads, 1, -2));
        assertTrue(e.getMessage().contains("totalNorm"), e.getMessage());
    }
}
