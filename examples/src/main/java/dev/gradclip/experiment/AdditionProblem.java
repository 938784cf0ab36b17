package dev.gradclip.experiment;

import java.util.Arrays;
import java.util.random.RandomGenerator;

/**
 * The addition problem (Hochreiter and Schmidhuber 1997; Pascanu, Mikolov and Bengio 2013): each
 * step of a sequence carries a value drawn uniformly from [0, 1) and a marker bit; exactly two steps
 * are marked, and the target is the sum of their two values.
 *
 * <p>The first marker falls in the first 10 % of the sequence and the second in its second half,
 * so the network has to carry the first value over at least 40 % of the sequence. Predicting the
 * mean (1) gives a mean squared error of 1/6, the variance of a sum of two uniforms.
 */
final class AdditionProblem {

    /** Input features per step: the value and the marker. */
    static final int INPUTS = 2;

    private AdditionProblem() {}

    /** A new batch of {@code lanes} sequences of {@code length} steps drawn from {@code rng}. */
    static Batch sample(int length, int lanes, RandomGenerator rng) {
        Batch batch = new Batch(length, lanes);
        fill(batch, rng);
        return batch;
    }

    /** Overwrites {@code batch} with fresh sequences drawn from {@code rng}. */
    static void fill(Batch batch, RandomGenerator rng) {
        int length = batch.length();
        int lanes = batch.lanes();
        float[] inputs = batch.inputs();
        Arrays.fill(inputs, 0f);
        for (int s = 0; s < lanes; s++) {
            for (int t = 0; t < length; t++) {
                inputs[batch.index(t, 0, s)] = rng.nextFloat();
            }
            int first = rng.nextInt(Math.max(1, length / 10));
            int second = length / 2 + rng.nextInt(length - length / 2);
            inputs[batch.index(first, 1, s)] = 1f;
            inputs[batch.index(second, 1, s)] = 1f;
            batch.targets()[s] = inputs[batch.index(first, 0, s)] + inputs[batch.index(second, 0, s)];
        }
    }

    /**
     * Sequences of one length, stored step-major with the sequence index innermost
     * ({@code inputs[(t * INPUTS + k) * lanes + s]}), so the RNN's loops over a batch run over
     * contiguous floats and vectorize.
     */
    record Batch(int length, int lanes, float[] inputs, float[] targets) {

        Batch(int length, int lanes) {
            this(length, lanes, new float[length * INPUTS * lanes], new float[lanes]);
        }

        Batch {
            if (length < 2 || lanes < 1) {
                throw new IllegalArgumentException("length " + length + " < 2 or lanes " + lanes + " < 1");
            }
        }

        int index(int t, int feature, int lane) {
            return (t * INPUTS + feature) * lanes + lane;
        }
    }
}
