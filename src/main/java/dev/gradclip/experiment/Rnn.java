package dev.gradclip.experiment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import dev.gradclip.experiment.AdditionProblem.Batch;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.random.RandomGenerator;

/**
 * A vanilla tanh RNN with one linear output, trained on the last step's prediction with a mean
 * squared error, with its backward pass (backpropagation through time) written out.
 *
 * <pre>
 *   h_0 = 0,   h_t = tanh(W_in x_t + W_rec h_{t-1} + b),   y = W_out h_T + b_out
 *   loss = mean over the batch of (y - target)^2
 * </pre>
 *
 * <p>Parameters and gradients are float32 in off-heap segments, one per tensor, row-major
 * ({@code W_rec[i * hidden + j]} is the weight from unit j to unit i). The activations live on the
 * heap with the batch index innermost: every inner loop runs over the sequences of a batch with a
 * weight held fixed, so C2 vectorizes it, and each lane adds its terms in a fixed order, so results
 * do not depend on the vector width. Weight gradients are summed per lane over time and folded
 * over lanes in order at the end, in double.
 */
final class Rnn {

    /** The tensor names, in the order of {@link #parameters()} and {@link #gradients()}. */
    static final List<String> TENSOR_NAMES = List.of("W_in", "W_rec", "b", "W_out", "b_out");

    private static final int IN = AdditionProblem.INPUTS;

    final int hidden;
    final int lanes;
    final MemorySegment wIn;
    final MemorySegment wRec;
    final MemorySegment b;
    final MemorySegment wOut;
    final MemorySegment bOut;
    private final List<MemorySegment> parameters;
    private final List<MemorySegment> gradients;

    /** Hidden states h_0..h_T: {@code h[(t * hidden + i) * lanes + s]}. */
    private float[] h = new float[0];
    private final float[] z;
    private final float[] y;
    private final float[] dy;
    private final float[] dh;
    private final float[] dhPrev;
    private final float[] dz;
    private final float[] laneWIn;
    private final float[] laneWRec;
    private final float[] laneB;

    Rnn(Arena arena, int hidden, int lanes) {
        this.hidden = hidden;
        this.lanes = lanes;
        wIn = floats(arena, hidden * IN);
        wRec = floats(arena, hidden * hidden);
        b = floats(arena, hidden);
        wOut = floats(arena, hidden);
        bOut = floats(arena, 1);
        parameters = List.of(wIn, wRec, b, wOut, bOut);
        gradients = parameters.stream().map(p -> floats(arena, (int) (p.byteSize() / Float.BYTES))).toList();
        z = new float[lanes];
        y = new float[lanes];
        dy = new float[lanes];
        dh = new float[hidden * lanes];
        dhPrev = new float[hidden * lanes];
        dz = new float[hidden * lanes];
        laneWIn = new float[hidden * IN * lanes];
        laneWRec = new float[hidden * hidden * lanes];
        laneB = new float[hidden * lanes];
    }

    private static MemorySegment floats(Arena arena, int count) {
        return arena.allocate(JAVA_FLOAT, count);
    }

    /** W_in, W_rec, b, W_out, b_out. */
    List<MemorySegment> parameters() {
        return parameters;
    }

    /** The gradients of the last {@link #lossAndGradients} call, in the order of {@link #parameters()}. */
    List<MemorySegment> gradients() {
        return gradients;
    }

    /**
     * Gaussian weights: W_rec with standard deviation {@code spectralRadius / sqrt(hidden)}, which
     * by the circular law gives it a spectral radius near {@code spectralRadius}; W_in with
     * standard deviation 1; W_out with {@code 1 / sqrt(hidden)}; biases zero.
     */
    void initialize(RandomGenerator rng, double spectralRadius) {
        fillGaussian(wIn, rng, 1.0);
        fillGaussian(wRec, rng, spectralRadius / Math.sqrt(hidden));
        b.fill((byte) 0);
        fillGaussian(wOut, rng, 1.0 / Math.sqrt(hidden));
        bOut.fill((byte) 0);
    }

    private static void fillGaussian(MemorySegment segment, RandomGenerator rng, double sigma) {
        for (long k = 0; k < segment.byteSize() / Float.BYTES; k++) {
            segment.setAtIndex(JAVA_FLOAT, k, (float) (sigma * rng.nextGaussian()));
        }
    }

    /** The batch's mean squared error; keeps the hidden states for a backward pass. */
    double loss(Batch batch) {
        checkLanes(batch);
        int length = batch.length();
        int stride = hidden * lanes;
        if (h.length < (length + 1) * stride) {
            h = new float[(length + 1) * stride];
        }
        Arrays.fill(h, 0, stride, 0f);
        float[] x = batch.inputs();
        for (int t = 1; t <= length; t++) {
            int prev = (t - 1) * stride;
            int cur = t * stride;
            int in = (t - 1) * IN * lanes;
            for (int i = 0; i < hidden; i++) {
                // z is its own array so that C2 sees no aliasing with h and vectorizes the axpys
                Arrays.fill(z, b.getAtIndex(JAVA_FLOAT, i));
                for (int k = 0; k < IN; k++) {
                    axpy(wIn.getAtIndex(JAVA_FLOAT, (long) i * IN + k), x, in + k * lanes, z, 0, lanes);
                }
                for (int j = 0; j < hidden; j++) {
                    axpy(wRec.getAtIndex(JAVA_FLOAT, (long) i * hidden + j), h, prev + j * lanes, z, 0, lanes);
                }
                int hi = cur + i * lanes;
                for (int s = 0; s < lanes; s++) {
                    h[hi + s] = (float) Math.tanh(z[s]);
                }
            }
        }
        int last = length * stride;
        Arrays.fill(y, bOut.getAtIndex(JAVA_FLOAT, 0));
        for (int j = 0; j < hidden; j++) {
            axpy(wOut.getAtIndex(JAVA_FLOAT, j), h, last + j * lanes, y, 0, lanes);
        }
        double sum = 0;
        for (int s = 0; s < lanes; s++) {
            double e = (double) y[s] - batch.targets()[s];
            sum += e * e;
        }
        return sum / lanes;
    }

    /** The batch's mean squared error; writes its gradient into {@link #gradients()}. */
    double lossAndGradients(Batch batch) {
        double loss = loss(batch);
        int length = batch.length();
        int stride = hidden * lanes;
        float[] x = batch.inputs();
        float[] targets = batch.targets();

        double dbOut = 0;
        for (int s = 0; s < lanes; s++) {
            dy[s] = 2f * (y[s] - targets[s]) / lanes;
            dbOut += dy[s];
        }
        int last = length * stride;
        for (int j = 0; j < hidden; j++) {
            gradients.get(3).setAtIndex(JAVA_FLOAT, j, (float) dot(dy, 0, h, last + j * lanes, lanes));
            float w = wOut.getAtIndex(JAVA_FLOAT, j);
            for (int s = 0; s < lanes; s++) {
                dh[j * lanes + s] = w * dy[s];
            }
        }
        gradients.get(4).setAtIndex(JAVA_FLOAT, 0, (float) dbOut);

        Arrays.fill(laneWIn, 0f);
        Arrays.fill(laneWRec, 0f);
        Arrays.fill(laneB, 0f);
        float[] upstream = dh;
        float[] downstream = dhPrev;
        for (int t = length; t >= 1; t--) {
            int cur = t * stride;
            int prev = (t - 1) * stride;
            int in = (t - 1) * IN * lanes;
            for (int q = 0; q < stride; q++) {
                float ht = h[cur + q];
                dz[q] = upstream[q] * (1f - ht * ht);
            }
            for (int i = 0; i < hidden; i++) {
                int zi = i * lanes;
                for (int s = 0; s < lanes; s++) {
                    laneB[zi + s] += dz[zi + s];
                }
                for (int k = 0; k < IN; k++) {
                    multiplyAdd(dz, zi, x, in + k * lanes, laneWIn, (i * IN + k) * lanes, lanes);
                }
                if (t > 1) {
                    for (int j = 0; j < hidden; j++) {
                        multiplyAdd(dz, zi, h, prev + j * lanes, laneWRec, (i * hidden + j) * lanes, lanes);
                    }
                }
            }
            if (t > 1) {
                Arrays.fill(downstream, 0f);
                for (int i = 0; i < hidden; i++) {
                    for (int j = 0; j < hidden; j++) {
                        axpy(wRec.getAtIndex(JAVA_FLOAT, (long) i * hidden + j), dz, i * lanes, downstream, j * lanes, lanes);
                    }
                }
                float[] swap = upstream;
                upstream = downstream;
                downstream = swap;
            }
        }
        foldLanes(laneWIn, gradients.get(0));
        foldLanes(laneWRec, gradients.get(1));
        foldLanes(laneB, gradients.get(2));
        return loss;
    }

    /** {@code parameter -= learningRate * gradient} for every tensor. */
    void sgdStep(double learningRate) {
        float lr = (float) learningRate;
        for (int p = 0; p < parameters.size(); p++) {
            MemorySegment param = parameters.get(p);
            MemorySegment grad = gradients.get(p);
            for (long k = 0; k < param.byteSize() / Float.BYTES; k++) {
                param.setAtIndex(JAVA_FLOAT, k, param.getAtIndex(JAVA_FLOAT, k) - lr * grad.getAtIndex(JAVA_FLOAT, k));
            }
        }
    }

    /** Whether every parameter is finite; a non-finite one never becomes finite again under SGD. */
    boolean parametersFinite() {
        for (MemorySegment param : parameters) {
            for (long k = 0; k < param.byteSize() / Float.BYTES; k++) {
                if (!Float.isFinite(param.getAtIndex(JAVA_FLOAT, k))) {
                    return false;
                }
            }
        }
        return true;
    }

    private void checkLanes(Batch batch) {
        if (batch.lanes() != lanes) {
            throw new IllegalArgumentException("batch has " + batch.lanes() + " lanes, the model " + lanes);
        }
    }

    private static void axpy(float a, float[] x, int xOff, float[] acc, int accOff, int n) {
        for (int s = 0; s < n; s++) {
            acc[accOff + s] += a * x[xOff + s];
        }
    }

    private static void multiplyAdd(float[] a, int aOff, float[] x, int xOff, float[] acc, int accOff, int n) {
        for (int s = 0; s < n; s++) {
            acc[accOff + s] += a[aOff + s] * x[xOff + s];
        }
    }

    private static double dot(float[] a, int aOff, float[] x, int xOff, int n) {
        double sum = 0;
        for (int s = 0; s < n; s++) {
            sum += (double) a[aOff + s] * x[xOff + s];
        }
        return sum;
    }

    private void foldLanes(float[] perLane, MemorySegment grad) {
        for (int e = 0; e < perLane.length / lanes; e++) {
            double sum = 0;
            for (int s = 0; s < lanes; s++) {
                sum += perLane[e * lanes + s];
            }
            grad.setAtIndex(JAVA_FLOAT, e, (float) sum);
        }
    }
}
