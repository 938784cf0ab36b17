/**
 * gradclip: global-norm gradient clipping on the CPU, with an exact norm that has the same bits for
 * any thread count, vector width and sharding.
 *
 * <p>Only {@link dev.gradclip} is exported; the kernels and the engine in {@code dev.gradclip.internal}
 * are not part of the API. The Vector API is optional: without {@code --add-modules jdk.incubator.vector}
 * the module starts, logs one warning and uses the scalar kernels, which give the same bits.
 */
module dev.gradclip {
    requires static jdk.incubator.vector;
    requires jdk.jfr;

    exports dev.gradclip;
}
