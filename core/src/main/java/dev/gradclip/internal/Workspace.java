package dev.gradclip.internal;

/**
 * What one thread's calls to the static {@link dev.gradclip.GradClip} methods reuse: a one-thread
 * engine, a norm state and a table for the 0.1 lists. Per thread, so those calls are thread-safe
 * and allocation-free after warm-up.
 */
public final class Workspace {

    private static final ThreadLocal<Workspace> LOCAL = ThreadLocal.withInitial(Workspace::new);

    public final Engine engine = new Engine(KernelProvider.kernels(), 1, Long.MAX_VALUE);
    public final NormState state = new NormState();
    public final TensorTable list = TensorTable.reusable();

    private Workspace() {}

    public static Workspace get() {
        return LOCAL.get();
    }
}
