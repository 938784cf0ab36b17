package dev.gradclip.experiment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.experiment.AdditionProblem.Batch;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Checks the hand-written BPTT against central finite differences of an independent
 * double-precision forward pass (plain loops, conventional layout), on every parameter.
 * Differencing in double leaves an error near 1e-9, so the comparison measures the float32
 * backward pass, whose own rounding stays below 1e-4 of the tensor's largest gradient here.
 */
class RnnGradientCheckTest {

    @ParameterizedTest(name = "hidden {0}, length {1}, lanes {2}, spectral radius {3}")
    @CsvSource({"5, 7, 3, 0.9", "6, 12, 4, 1.6", "3, 2, 1, 1.0"})
    void backwardMatchesFiniteDifferences(int hidden, int length, int lanes, double radius) {
        try (Arena arena = Arena.ofConfined()) {
            Rnn rnn = new Rnn(arena, hidden, lanes);
            SplittableRandom rng = new SplittableRandom(hidden * 1000L + length);
            rnn.initialize(rng, radius);
            rnn.b.setAtIndex(JAVA_FLOAT, 0, 0.3f);
            rnn.bOut.setAtIndex(JAVA_FLOAT, 0, -0.2f);
            Batch batch = AdditionProblem.sample(length, lanes, rng);

            double loss = rnn.lossAndGradients(batch);
            assertEquals(referenceLoss(rnn, batch), loss, 1e-5 * Math.max(1, loss), "forward loss");

            for (int p = 0; p < Rnn.TENSOR_NAMES.size(); p++) {
                MemorySegment param = rnn.parameters().get(p);
                MemorySegment grad = rnn.gradients().get(p);
                int count = (int) (param.byteSize() / Float.BYTES);
                double[] numeric = new double[count];
                double largest = 0;
                for (int k = 0; k < count; k++) {
                    numeric[k] = centralDifference(rnn, batch, param, k);
                    largest = Math.max(largest, Math.abs(numeric[k]));
                }
                for (int k = 0; k < count; k++) {
                    double analytic = grad.getAtIndex(JAVA_FLOAT, k);
                    assertEquals(numeric[k], analytic, 1e-4 * largest + 1e-7,
                            Rnn.TENSOR_NAMES.get(p) + "[" + k + "]");
                }
                assertTrue(largest > 0, Rnn.TENSOR_NAMES.get(p) + " has an all-zero gradient");
            }
        }
    }

    /** d loss / d param[k] of the double reference, perturbing the parameter in double. */
    private static double centralDifference(Rnn rnn, Batch batch, MemorySegment param, int k) {
        double eps = 1e-6;
        double[][] params = asDoubles(rnn);
        int p = rnn.parameters().indexOf(param);
        double saved = params[p][k];
        params[p][k] = saved + eps;
        double up = referenceLoss(rnn.hidden, params, batch);
        params[p][k] = saved - eps;
        double down = referenceLoss(rnn.hidden, params, batch);
        return (up - down) / (2 * eps);
    }

    private static double referenceLoss(Rnn rnn, Batch batch) {
        return referenceLoss(rnn.hidden, asDoubles(rnn), batch);
    }

    private static double[][] asDoubles(Rnn rnn) {
        return rnn.parameters().stream()
                .map(s -> {
                    float[] f = s.toArray(JAVA_FLOAT);
                    double[] d = new double[f.length];
                    for (int k = 0; k < f.length; k++) {
                        d[k] = f[k];
                    }
                    return d;
                })
                .toArray(double[][]::new);
    }

    /** The model's definition, one sequence at a time, in double. */
    private static double referenceLoss(int hidden, double[][] params, Batch batch) {
        double[] wIn = params[0], wRec = params[1], b = params[2], wOut = params[3], bOut = params[4];
        double sum = 0;
        for (int s = 0; s < batch.lanes(); s++) {
            double[] state = new double[hidden];
            for (int t = 0; t < batch.length(); t++) {
                double[] next = new double[hidden];
                for (int i = 0; i < hidden; i++) {
                    double z = b[i];
                    for (int f = 0; f < AdditionProblem.INPUTS; f++) {
                        z += wIn[i * AdditionProblem.INPUTS + f] * batch.inputs()[batch.index(t, f, s)];
                    }
                    for (int j = 0; j < hidden; j++) {
                        z += wRec[i * hidden + j] * state[j];
                    }
                    next[i] = Math.tanh(z);
                }
                state = next;
            }
            double y = bOut[0];
            for (int j = 0; j < hidden; j++) {
                y += wOut[j] * state[j];
            }
            double e = y - batch.targets()[s];
            sum += e * e;
        }
        return sum / batch.lanes();
    }
}
