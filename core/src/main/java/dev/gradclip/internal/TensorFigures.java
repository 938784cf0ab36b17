package dev.gradclip.internal;

import java.util.Arrays;

/**
 * Each tensor's figures from the last norm pass that asked for them: its norm, its largest
 * magnitude, its count of non-finite elements and (p-norms) its sum of powers, indexed by tensor.
 *
 * <p>A tensor whose blocks all fall in one chunk is finished by that chunk. A tensor that several
 * chunks share leaves a {@link Piece} in each: the tail piece of the chunk where it starts, and
 * head pieces in the chunks after; they are consecutive in chunk order, and {@link #stitch} adds
 * them up exactly before finishing the tensor, so its figures do not depend on the chunking.
 */
final class TensorFigures {

    /** How a tensor's exact sum becomes its figures. */
    enum Stage {
        /** Sums of squares or of magnitudes (L2, L1), or only the maximum (INF, and the first p-norm pass). */
        SUMS,
        /** The p-norm's second pass: sums of {@code (|x| / max)^p} relative to the tensor's maximum. */
        POWERS
    }

    double[] norm = new double[0];
    double[] max = new double[0];
    long[] nonFinite = new long[0];
    double[] powerSum = new double[0];

    private NormType type = NormType.L2;
    private double p = 2;
    private Stage stage = Stage.SUMS;
    private final Piece combined = new Piece();

    /** Room for {@code n} tensors, all figures zero, for a pass of this norm type. */
    void begin(int n, NormType type, double p) {
        if (norm.length < n) {
            norm = new double[n];
            max = new double[n];
            nonFinite = new long[n];
            powerSum = new double[n];
        }
        Arrays.fill(norm, 0, n, 0);
        Arrays.fill(max, 0, n, 0);
        Arrays.fill(nonFinite, 0, n, 0);
        Arrays.fill(powerSum, 0, n, 0);
        this.type = type;
        this.p = p;
        this.stage = Stage.SUMS;
    }

    void stage(Stage stage) {
        this.stage = stage;
    }

    /** A tensor's figures, once all its blocks are in: {@code sum} is its exact sum. */
    void finish(int tensor, ExactSum sum, double tensorMax, long tensorNonFinite) {
        store(tensor, takesRoot() ? sum.sqrt() : sum.toDouble(), tensorMax, tensorNonFinite);
    }

    /**
     * The same for a tensor whose blocks made at most one deposit, {@code single} at exponent offset 0
     * (zero for none): the exact sum of one double is that double, and its {@link ExactSum#sqrt()} is
     * {@code Math.sqrt} of it, bit for bit (both round the root once, and the root of a positive double
     * is a normal double, so halving the exponent apart from the significand changes nothing).
     */
    void finish(int tensor, double single, double tensorMax, long tensorNonFinite) {
        store(tensor, takesRoot() ? Math.sqrt(single) : single, tensorMax, tensorNonFinite);
    }

    private boolean takesRoot() {
        return stage == Stage.SUMS && type == NormType.L2;
    }

    /** Stores a tensor's figures; {@code total} is its exact sum rounded, or for L2 the root of it. */
    private void store(int tensor, double total, double tensorMax, long tensorNonFinite) {
        if (stage == Stage.POWERS) {
            powerSum[tensor] = total;
            double m = max[tensor];
            norm[tensor] = m > 0 && m <= Double.MAX_VALUE ? m * Powers.root(total, p) : m;
            return;
        }
        max[tensor] = tensorMax;
        nonFinite[tensor] = tensorNonFinite;
        norm[tensor] = !(tensorMax <= Double.MAX_VALUE) ? tensorMax // NaN, or +Infinity
                : switch (type) {
                    case L2, L1 -> total;
                    case INF, POWER -> tensorMax;
                };
    }

    /** Finishes the tensors that chunks {@code 0 .. n-1} split, from their pieces in chunk order. */
    void stitch(ChunkSums[] chunks, int n) {
        combined.tensor = -1;
        for (int w = 0; w < n; w++) {
            absorb(chunks[w].head);
            absorb(chunks[w].tail);
        }
        if (combined.tensor >= 0) {
            finish(combined.tensor, combined.sum, combined.max, combined.nonFinite);
        }
    }

    private void absorb(Piece piece) {
        if (piece.tensor < 0) {
            return;
        }
        if (piece.tensor == combined.tensor) {
            combined.sum.add(piece.sum);
            combined.max = Math.max(combined.max, piece.max);
            combined.nonFinite += piece.nonFinite;
            return;
        }
        if (combined.tensor >= 0) {
            finish(combined.tensor, combined.sum, combined.max, combined.nonFinite);
        }
        combined.set(piece.tensor, piece.sum, piece.max, piece.nonFinite);
    }

    /** A tensor's share of a chunk that does not hold the whole tensor; {@code tensor} is -1 for none. */
    static final class Piece {
        int tensor = -1;
        final ExactSum sum = new ExactSum();
        double max;
        long nonFinite;

        void set(int tensor, ExactSum sum, double max, long nonFinite) {
            this.tensor = tensor;
            this.sum.set(sum);
            this.max = max;
            this.nonFinite = nonFinite;
        }
    }
}
