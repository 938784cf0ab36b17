package dev.gradclip.experiment;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

import dev.gradclip.DType;
import dev.gradclip.Gradients;
import dev.gradclip.experiment.AdditionProblem.Batch;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.random.RandomGenerator;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

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
 * heap with the batch index innermost, so each vector holds one unit's value for several sequences
 * of the batch and every product is a weight broadcast against it: no reduction across lanes, and
 * each sequence's sums are taken in the same order (fused multiply-adds, in unit order) whatever
 * the vector width. Weight gradients are summed per lane over time and folded over lanes in order
 * at the end, in double. Only plain vector arithmetic is used, so a run gives the same bits whether
 * a loop is interpreted or compiled (see {@link #tanh}).
 */
final class Rnn {

    /** The tensor names, in the order of {@link #parameters()} and {@link #gradients()}. */
    static final List<String> TENSOR_NAMES = List.of("W_in", "W_rec", "b", "W_out", "b_out");

    private static final int IN = AdditionProblem.INPUTS;
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final FloatVector ONE = FloatVector.broadcast(F, 1f);

    final int hidden;
    final int lanes;
    final MemorySegment wIn;
    final MemorySegment wRec;
    final MemorySegment b;
    final MemorySegment wOut;
    final MemorySegment bOut;
    private final List<MemorySegment> parameters;
    private final List<MemorySegment> gradients;
    private final Gradients named;

    /** Hidden states h_0..h_T: {@code h[(t * hidden + i) * lanes + s]}. */
    private float[] h = new float[0];
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
        Gradients.Builder builder = Gradients.builder();
        for (int k = 0; k < gradients.size(); k++) {
            builder.add(TENSOR_NAMES.get(k), gradients.get(k), DType.FLOAT32);
        }
        named = builder.build();
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

    /** The same gradient segments as gradclip sees them: one named float32 tensor each. */
    Gradients namedGradients() {
        return named;
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
                for (int s = 0; s < lanes; s += L) {
                    VectorMask<Float> m = F.indexInRange(s, lanes);
                    FloatVector z = FloatVector.broadcast(F, b.getAtIndex(JAVA_FLOAT, i));
                    for (int k = 0; k < IN; k++) {
                        z = load(x, in + k * lanes + s, m).fma(FloatVector.broadcast(F, wIn.getAtIndex(JAVA_FLOAT, (long) i * IN + k)), z);
                    }
                    for (int j = 0; j < hidden; j++) {
                        z = load(h, prev + j * lanes + s, m).fma(FloatVector.broadcast(F, wRec.getAtIndex(JAVA_FLOAT, (long) i * hidden + j)), z);
                    }
                    tanh(z).intoArray(h, cur + i * lanes + s, m);
                }
            }
        }
        int last = length * stride;
        for (int s = 0; s < lanes; s++) {
            float out = bOut.getAtIndex(JAVA_FLOAT, 0);
            for (int j = 0; j < hidden; j++) {
                out = Math.fma(h[last + j * lanes + s], wOut.getAtIndex(JAVA_FLOAT, j), out);
            }
            y[s] = out;
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
            double dw = 0;
            float w = wOut.getAtIndex(JAVA_FLOAT, j);
            for (int s = 0; s < lanes; s++) {
                dw += (double) dy[s] * h[last + j * lanes + s];
                dh[j * lanes + s] = w * dy[s];
            }
            gradients.get(3).setAtIndex(JAVA_FLOAT, j, (float) dw);
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
            for (int i = 0; i < hidden; i++) {
                int zi = i * lanes;
                for (int s = 0; s < lanes; s += L) {
                    VectorMask<Float> m = F.indexInRange(s, lanes);
                    FloatVector ht = load(h, cur + zi + s, m);
                    FloatVector dzi = load(upstream, zi + s, m).mul(ONE.sub(ht.mul(ht)));
                    dzi.intoArray(dz, zi + s, m);
                    load(laneB, zi + s, m).add(dzi).intoArray(laneB, zi + s, m);
                    for (int k = 0; k < IN; k++) {
                        int acc = (i * IN + k) * lanes + s;
                        dzi.fma(load(x, in + k * lanes + s, m), load(laneWIn, acc, m)).intoArray(laneWIn, acc, m);
                    }
                    if (t > 1) {
                        for (int j = 0; j < hidden; j++) {
                            int acc = (i * hidden + j) * lanes + s;
                            dzi.fma(load(h, prev + j * lanes + s, m), load(laneWRec, acc, m)).intoArray(laneWRec, acc, m);
                        }
                    }
                }
            }
            if (t > 1) {
                for (int j = 0; j < hidden; j++) {
                    for (int s = 0; s < lanes; s += L) {
                        VectorMask<Float> m = F.indexInRange(s, lanes);
                        FloatVector sum = FloatVector.zero(F);
                        for (int i = 0; i < hidden; i++) {
                            sum = load(dz, i * lanes + s, m).fma(FloatVector.broadcast(F, wRec.getAtIndex(JAVA_FLOAT, (long) i * hidden + j)), sum);
                        }
                        sum.intoArray(downstream, j * lanes + s, m);
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

    /**
     * tanh by Lambert's continued fraction {@code x / (1 + x^2 / (3 + x^2 / (5 + ...)))}, cut at
     * depth 12 after clamping x to [-9, 9] (beyond which float32 tanh is +-1 to within 2 ulp): at
     * most 3.6 float32 ulp from the exact value in a check over [-20, 20], and about 4 ns per
     * element here, where {@code Math.tanh} takes 20. The Vector API's {@code TANH} is faster but
     * gives different bits in interpreted code (a per-lane {@code Math.tanh}) than in C2 code (a
     * vector library), which made a run's result depend on when the JIT compiled it.
     */
    static FloatVector tanh(FloatVector z) {
        FloatVector x = z.max(-9f).min(9f);
        FloatVector x2 = x.mul(x);
        FloatVector r = FloatVector.broadcast(F, 25f);
        for (int k = 12; k >= 1; k--) {
            r = x2.div(r).add(2 * k - 1);
        }
        // The truncated fraction overshoots 1 by an ulp near the clamp; 1 - h^2 must not go negative.
        return x.div(r).max(-1f).min(1f);
    }

    private static FloatVector load(float[] array, int offset, VectorMask<Float> m) {
        return FloatVector.fromArray(F, array, offset, m);
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
