package dev.gradclip.djl;

import ai.djl.ndarray.NDArray;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.ParameterList;
import ai.djl.training.Trainer;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.util.Pair;
import dev.gradclip.Clipper;
import dev.gradclip.DType;
import dev.gradclip.GradReport;
import dev.gradclip.Gradients;
import dev.gradclip.NonFinite;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * Clips the global norm of a DJL model's gradients on every training batch, before
 * {@code trainer.step()} applies them: the DJL counterpart of calling torch's
 * {@code clip_grad_norm_(model.parameters(), maxNorm)} between {@code loss.backward()} and
 * {@code optimizer.step()}.
 *
 * <pre>{@code
 * try (Clipper clipper = Clipper.builder().maxNorm(1.0).build()) {
 *     GradClipListener clip = new GradClipListener(clipper);
 *     TrainingConfig config = new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
 *             .addTrainingListeners(clip);
 *     try (Trainer trainer = model.newTrainer(config)) {
 *         trainer.initialize(inputShape);
 *         EasyTrain.fit(trainer, epochs, trainingSet, null);
 *         System.out.println(clip.lastReport());
 *     }
 * }
 * }</pre>
 *
 * <p><b>What is clipped.</b> The gradients of every parameter of the model's block that requires
 * a gradient; frozen parameters ({@code Parameter.freeze}) and parameters that are not trained,
 * such as BatchNorm's running statistics, are left out. They are clipped in place, as DJL's
 * backward left them: for DJL's built-in losses, which average over the batch, that is the
 * gradient of the mean loss, the one torch's {@code clip_grad_norm_} sees after
 * {@code loss.backward()} on a mean-reduced loss. An optimizer's {@code rescaleGrad},
 * {@code clipGrad} and weight decay apply afterwards, inside {@code trainer.step()}.
 *
 * <p><b>When.</b> DJL's {@code EasyTrain.trainBatch} (and so {@code EasyTrain.fit}) calls
 * {@code onTrainingBatch} after the backward pass and before the caller's {@code trainer.step()}.
 * A hand-written loop must do the same: {@code trainer.notifyListeners(l ->
 * l.onTrainingBatch(trainer, batchData))} between the backward pass and the step.
 *
 * <p><b>Built once.</b> The first batch hands each gradient's memory to gradclip
 * ({@link DjlSegments#of}) and builds the {@link Gradients} and the {@link GradReport}; later
 * batches clip them in place and allocate nothing. That relies on the PyTorch engine keeping each
 * gradient tensor where it is across steps (its optimizers zero gradients in place and its
 * backward accumulates into them in place). The listener builds again when the trainer, the
 * block, a parameter's array or a parameter's frozen state changes, and lets go of the gradients
 * when training ends ({@code trainer.close()}).
 *
 * <p><b>Limits.</b> One device, the CPU ({@code trainer.getDevices()} must be one CPU device).
 * Every trained parameter must have a gradient at the first batch, or the listener throws
 * {@link IllegalStateException} naming it: freeze parameters that take no part in the loss.
 * A Clipper with {@link NonFinite#SKIP} is refused: the listener cannot skip DJL's
 * {@code trainer.step()}, which would apply the unscaled non-finite gradients (use
 * {@link NonFinite#ERROR} to stop before the step). Not thread-safe; DJL calls listeners on the
 * training thread. The Clipper stays the caller's to close.
 */
public final class GradClipListener extends TrainingListenerAdapter {

    private final Clipper clipper;

    // What the gradients were built for; any change means building again (checked without allocating).
    private Trainer trainer;
    private Block block;
    private Parameter[] parameters;
    private NDArray[] arrays;
    private boolean[] trained;

    /** Each trained parameter's gradient handle, kept open so the memory under the segments stays alive. */
    private final List<NDArray> gradients = new ArrayList<>();
    private Gradients grads;
    private GradReport report;
    private GradReport lastReport;

    /**
     * A listener that clips with this Clipper's maxNorm, normType and threads.
     *
     * @param clipper the configured clip; not closed by the listener
     * @throws NullPointerException if {@code clipper} is null
     * @throws IllegalArgumentException if its non-finite policy is {@link NonFinite#SKIP}
     */
    public GradClipListener(Clipper clipper) {
        if (clipper == null) {
            throw new NullPointerException("clipper is null");
        }
        if (clipper.nonFinite() == NonFinite.SKIP) {
            throw new IllegalArgumentException("clipper has NonFinite.SKIP, but a listener cannot skip DJL's"
                    + " trainer.step(), which would apply the non-finite gradients: use NonFinite.ERROR"
                    + " (throws before the step) or NonFinite.PROPAGATE");
        }
        this.clipper = clipper;
    }

    /**
     * The report of the last clip: the global norm from before it, the coefficient, and each
     * gradient's own norm, named after its parameter. The same object is filled again on every
     * batch (a new one after the listener builds again); copy what you keep.
     *
     * @return the last clip's report, or null before the first clip
     */
    public GradReport lastReport() {
        return lastReport;
    }

    /**
     * Clips the model's gradients by their global norm; DJL calls it after the backward pass.
     *
     * @param trainer the trainer whose model's gradients are clipped
     * @param batchData not read (a hand-written loop may pass null)
     * @throws IllegalStateException if the trainer has more than one device, or a trained parameter
     *     has no gradient at the first batch
     * @throws IllegalArgumentException if a gradient cannot be aliased or has an unsupported data
     *     type ({@link DjlSegments})
     * @throws ArithmeticException if the norm is not finite and the Clipper's policy is
     *     {@link NonFinite#ERROR}; nothing was written, and {@link #lastReport()} says why
     */
    @Override
    public void onTrainingBatch(Trainer trainer, BatchData batchData) {
        if (trainer == null) {
            throw new NullPointerException("trainer is null");
        }
        if (changed(trainer)) {
            build(trainer);
        }
        try {
            clipper.clip(grads, report);
        } catch (ArithmeticException nonFinite) { // NonFinite.ERROR fills the report before it throws
            lastReport = report;
            throw nonFinite;
        }
        lastReport = report;
    }

    /**
     * Lets go of the gradients; DJL calls it from {@code trainer.close()}.
     *
     * @param trainer the trainer that is closing
     */
    @Override
    public void onTrainingEnd(Trainer trainer) {
        release();
    }

    /** Whether anything the gradients were built from has changed; allocates nothing. */
    private boolean changed(Trainer trainer) {
        if (grads == null || trainer != this.trainer || trainer.getModel().getBlock() != block) {
            return true;
        }
        for (int i = 0; i < parameters.length; i++) {
            Parameter parameter = parameters[i];
            if (parameter.requiresGradient() != trained[i]
                    || !parameter.isInitialized() || parameter.getArray() != arrays[i]) {
                return true;
            }
        }
        return false;
    }

    private void build(Trainer trainer) {
        release();
        if (trainer.getDevices().length != 1) {
            throw new IllegalStateException("the trainer has " + trainer.getDevices().length + " devices;"
                    + " GradClipListener clips the gradients of one CPU device");
        }
        Block block = trainer.getModel().getBlock();
        ParameterList list = block.getParameters();
        int n = list.size();
        Parameter[] parameters = new Parameter[n];
        NDArray[] arrays = new NDArray[n];
        boolean[] trained = new boolean[n];
        Gradients.Builder builder = Gradients.builder();
        try {
            for (int i = 0; i < n; i++) {
                Pair<String, Parameter> entry = list.get(i);
                Parameter parameter = entry.getValue();
                parameters[i] = parameter;
                trained[i] = parameter.requiresGradient();
                arrays[i] = parameter.getArray();
                if (trained[i]) {
                    addGradient(builder, entry.getKey(), arrays[i]);
                }
            }
            Gradients grads = builder.build();
            this.report = new GradReport(grads);
            this.grads = grads;
        } catch (RuntimeException e) {
            release();
            throw e;
        }
        this.trainer = trainer;
        this.block = block;
        this.parameters = parameters;
        this.arrays = arrays;
        this.trained = trained;
    }

    /** Adds the gradient of the parameter's array, aliased; its handle is kept in {@link #gradients}. */
    private void addGradient(Gradients.Builder builder, String name, NDArray array) {
        String label = "the gradient of parameter \"" + name + '"';
        if (!array.hasGradient()) {
            throw new IllegalStateException("parameter \"" + name + "\" requires a gradient, but its array has"
                    + " none attached");
        }
        NDArray gradient = array.getGradient();
        gradients.add(gradient);
        DType type = DjlSegments.dtype(gradient, label);
        MemorySegment segment = DjlSegments.of(gradient, label);
        // Before its first backward a parameter has no gradient, and getGradient() makes a new zeros
        // array on every call: a second call at another address gives that away.
        try (NDArray again = array.getGradient()) {
            if (segment.byteSize() > 0
                    && MemorySegment.ofBuffer(again.toByteBuffer(true)).address() != segment.address()) {
                throw new IllegalStateException("parameter \"" + name + "\" requires a gradient but has none"
                        + " after the backward pass (it took no part in the loss): freeze it");
            }
        }
        builder.add(name, segment, type);
    }

    /** Closes the gradient handles (not the gradients: the parameters keep those) and forgets the state. */
    private void release() {
        for (NDArray gradient : gradients) {
            if (!gradient.isReleased()) {
                gradient.close();
            }
        }
        gradients.clear();
        grads = null;
        report = null;
        trainer = null;
        block = null;
        parameters = null;
        arrays = null;
        trained = null;
    }

    @Override
    public String toString() {
        return "GradClipListener[" + clipper + (grads == null ? ", not built" : ", " + grads) + "]";
    }
}
