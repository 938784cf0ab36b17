package dev.gradclip.dl4j;

import dev.gradclip.Clipper;
import dev.gradclip.GradReport;
import dev.gradclip.Gradients;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.api.Trainable;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Global-norm clipping of a whole DL4J network's gradient, as torch's {@code clip_grad_norm_} does it,
 * for a {@link MultiLayerNetwork} or a {@link ComputationGraph}:
 *
 * <pre>{@code
 * Clipper clipper = Clipper.builder().maxNorm(1.0).build();
 * GradClipListener clip = new GradClipListener(clipper);
 * net.addListeners(clip);
 * net.fit(trainData);
 * System.out.println(clip.lastReport());
 * }</pre>
 *
 * <p><b>When.</b> {@link #onGradientCalculation} runs after backpropagation and before the updater,
 * on the gradient array the updater reads; the clip scales it in place, without a copy.
 *
 * <p><b>Minibatch sums.</b> DL4J's gradients are sums over the minibatch, and the updater divides them
 * by its size (unless the configuration says {@code miniBatch(false)}). Clipping the sums to
 * {@code maxNorm} would clip the applied gradient to {@code maxNorm / batchSize}. So the sums are clipped
 * with {@link Clipper#clipScaled} at the network's batch size: the gradient the updater applies has
 * the norm {@code clip_grad_norm_} gives the mean-loss gradient, and the report's norms are the mean
 * gradient's. With {@code miniBatch(false)} the gradient is clipped as it is applied.
 *
 * <p><b>What is clipped.</b> Every gradient in the network's {@code gradient()}, which leaves out
 * frozen layers. BatchNormalization's running mean and variance are left out too: their "gradients"
 * are the statistics' updates, applied as they are ({@code Trainable.updaterDivideByMinibatch} says
 * which). Regularization (L1, L2, weight decay) and per-layer {@code GradientNormalization} act after
 * this, in the updater, as torch's weight decay acts after {@code clip_grad_norm_}.
 *
 * <p><b>Cost.</b> The first call builds the {@link Gradients} over the network's gradient views and
 * a {@link GradReport}; every later call allocates nothing. The views are built again when the
 * network or its gradient array changes (a new network, {@code init()} again).
 *
 * <p><b>Non-finite gradients.</b> The Clipper's policy applies. A listener cannot skip DL4J's
 * update, so a Clipper with {@link dev.gradclip.NonFinite#SKIP} is refused: the updater would apply
 * the gradient unclipped, NaN and all. {@link dev.gradclip.NonFinite#ERROR} throws
 * {@link ArithmeticException} out of {@code fit} before the updater runs, the parameters unchanged:
 * catch it to skip the batch.
 *
 * <p>One listener per network, called on the training thread; read {@link #lastReport()} there too.
 */
public final class GradClipListener extends BaseTrainingListener {

    private final Clipper clipper;
    private Model model;
    private INDArray gradientArray;
    private Gradients gradients;
    private GradReport report;
    private GradReport last;

    /**
     * A listener that clips with {@code clipper} (its maxNorm, normType, non-finite policy and
     * threads); the caller keeps ownership and closes it after training.
     *
     * @param clipper the configured clip, used on every step
     * @throws NullPointerException if {@code clipper} is null
     * @throws IllegalArgumentException if its non-finite policy is {@link dev.gradclip.NonFinite#SKIP}
     */
    public GradClipListener(Clipper clipper) {
        if (clipper == null) {
            throw new NullPointerException("clipper is null");
        }
        if (clipper.nonFinite() == dev.gradclip.NonFinite.SKIP) {
            throw new IllegalArgumentException("clipper has NonFinite.SKIP, but a listener cannot skip DL4J's update,"
                    + " which would apply the non-finite gradient: use NonFinite.ERROR (throws before the updater)"
                    + " or NonFinite.PROPAGATE");
        }
        this.clipper = clipper;
    }

    /**
     * Clips the network's gradient in place; see the class description.
     *
     * @param model the network DL4J is training
     * @throws ArithmeticException with {@link dev.gradclip.NonFinite#ERROR}, for a non-finite norm; nothing
     *     is written
     * @throws IllegalArgumentException if {@code model} is neither a MultiLayerNetwork nor a ComputationGraph
     * @throws IllegalStateException if a gradient is not a view of the network's gradient array, so
     *     that clipping it would not change the update
     */
    @Override
    public void onGradientCalculation(Model model) {
        if (this.model == null || model != this.model || model.getGradientsViewArray() != gradientArray) {
            build(model);
        }
        double scale = model.conf().isMiniBatch() ? model.batchSize() : 1;
        clipper.clipScaled(gradients, scale, report);
        last = report;
    }

    /**
     * The last clip's report: the mean gradient's global norm, the coefficient, whether it clipped,
     * each gradient's norm by its DL4J name ({@code "0_W"}, {@code "dense_b"}). Null before the first
     * clip. The same object, filled again on every step: copy what should outlive the step.
     *
     * @return the report of the last step, or null before the first
     */
    public GradReport lastReport() {
        return last;
    }

    private void build(Model model) {
        if (!(model instanceof MultiLayerNetwork) && !(model instanceof ComputationGraph)) {
            throw new IllegalArgumentException("GradClipListener clips a MultiLayerNetwork or a ComputationGraph, not a "
                    + (model == null ? "null model" : model.getClass().getName()));
        }
        INDArray all = model.getGradientsViewArray();
        MemorySegment whole = Nd4jSegments.of(all);
        Gradients.Builder builder = Gradients.builder();
        Map<String, INDArray> present = model.gradient().gradientForVariable();
        int found = 0;
        for (String key : model.paramTable().keySet()) { // in the parameters' order
            if (!present.containsKey(key)) {
                continue;
            }
            found++;
            INDArray gradient = present.get(key);
            if (gradient == null || !isGradient(model, key)) { // null is no gradient (a FrozenLayer's own lists nulls)
                continue;
            }
            MemorySegment segment = Nd4jSegments.of(gradient);
            long start = segment.address() - whole.address();
            if (start < 0 || start + segment.byteSize() > whole.byteSize()) {
                throw new IllegalStateException("the gradient \"" + key + "\" is not a view of the network's gradient"
                        + " array, which is what the updater reads: clipping it would not change the update");
            }
            builder.add(key, segment, Nd4jSegments.dtype(gradient));
        }
        if (found != present.size()) {
            throw new IllegalStateException("the network's gradient has entries that are no parameters of it: "
                    + present.keySet() + " against " + model.paramTable().keySet());
        }
        gradients = builder.build();
        report = new GradReport(gradients);
        gradientArray = all;
        this.model = model;
    }

    /** False for the entries DL4J's updater does not divide by the batch size: statistics' updates, no gradients. */
    private static boolean isGradient(Model model, String key) {
        int cut = key.lastIndexOf('_'); // the updater's own split: vertex names may hold '_', parameter names do not
        if (cut < 0) {
            throw new IllegalStateException("the gradient key \"" + key + "\" has no layer separator '_'");
        }
        String owner = key.substring(0, cut);
        Trainable trainable = model instanceof MultiLayerNetwork network
                ? network.getLayer(Integer.parseInt(owner))
                : ((ComputationGraph) model).getVertex(owner);
        return trainable.updaterDivideByMinibatch(key.substring(cut + 1));
    }
}
