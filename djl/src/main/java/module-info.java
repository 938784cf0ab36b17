/**
 * Global-norm gradient clipping for DJL: {@link dev.gradclip.djl.DjlSegments} hands an NDArray's
 * memory to gradclip without a copy, and {@link dev.gradclip.djl.GradClipListener} clips a model's
 * gradients on every training batch.
 */
// DJL ships no module descriptor; its api jar declares the stable automatic name ai.djl.api.
@SuppressWarnings({"requires-automatic", "requires-transitive-automatic"})
module dev.gradclip.djl {
    requires transitive dev.gradclip;
    requires transitive ai.djl.api;

    exports dev.gradclip.djl;
}
