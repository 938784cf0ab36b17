package dev.gradclip.internal;

/**
 * One chunk's share of a norm pass: the exact sum of its blocks, its largest magnitude, its
 * non-finite blocks, and the sums of the tensors it holds (each finished into
 * {@link TensorFigures} when the chunk holds the whole tensor, else kept as a head or tail
 * {@link TensorFigures.Piece}). One per worker, reused for every call.
 */
final class ChunkSums {

    /** The kernel's output for the block at hand. */
    final BlockFigures figures = new BlockFigures();
    final ExactSum sum = new ExactSum();
    double max;
    long nanBlocks;
    long infBlocks;

    /**
     * The current tensor's block sums: the first one held as a double ({@code firstValue} times
     * 2^{@code firstExponent}), from the second on all of them in {@code tensorSum}, so a tensor of
     * one block never touches an exact sum of its own.
     */
    private final ExactSum tensorSum = new ExactSum();
    private int tensorDeposits;
    private double firstValue;
    private int firstExponent;
    double tensorMax;
    long tensorNonFinite;

    final TensorFigures.Piece head = new TensorFigures.Piece();
    final TensorFigures.Piece tail = new TensorFigures.Piece();

    void reset() {
        sum.clear();
        max = 0;
        nanBlocks = 0;
        infBlocks = 0;
        head.tensor = -1;
        tail.tensor = -1;
    }

    void beginTensor() {
        tensorDeposits = 0;
        tensorMax = 0;
        tensorNonFinite = 0;
    }

    /** Adds a block's sum times 2^{@code exponent}: to the chunk's total, or with {@code toTensor} to the tensor's. */
    void deposit(double value, int exponent, boolean toTensor) {
        if (!toTensor) {
            sum.add(value, exponent);
            return;
        }
        if (tensorDeposits++ == 0) {
            firstValue = value;
            firstExponent = exponent;
            return;
        }
        if (tensorDeposits == 2) {
            tensorSum.clear();
            tensorSum.add(firstValue, firstExponent);
        }
        tensorSum.add(value, exponent);
    }

    /**
     * Ends the tensor's share of this chunk: its maximum joins the chunk's, and with {@code figures}
     * (per-tensor figures asked for) its sum joins the chunk's total and the tensor is finished or
     * kept as a piece.
     */
    void endTensor(int tensor, boolean startsHere, boolean endsHere, TensorFigures figures) {
        max = Math.max(max, tensorMax);
        if (figures == null) {
            return;
        }
        if (tensorDeposits < 2 && startsHere && endsHere && (tensorDeposits == 0 || firstExponent == 0)) {
            // One deposit (a one-block tensor) or none (zeros, non-finite blocks, the maximum-only
            // passes): no exact sum to clear, merge and round.
            double single = tensorDeposits == 0 ? 0 : firstValue;
            sum.add(single, 0);
            figures.finish(tensor, single, tensorMax, tensorNonFinite);
            return;
        }
        if (tensorDeposits < 2) { // a piece of a split tensor, or a scaled float64 block: as an exact sum
            tensorSum.clear();
            if (tensorDeposits == 1) {
                tensorSum.add(firstValue, firstExponent);
            }
        }
        sum.add(tensorSum);
        if (startsHere && endsHere) {
            figures.finish(tensor, tensorSum, tensorMax, tensorNonFinite);
        } else if (!startsHere) {
            head.set(tensor, tensorSum, tensorMax, tensorNonFinite);
        } else {
            tail.set(tensor, tensorSum, tensorMax, tensorNonFinite);
        }
    }
}
