package dev.gradclip.internal;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Locale;

/**
 * Picks the kernels once per JVM: the Vector API ones when they can run fast, else the scalar
 * reference with one warning that says how to enable the fast path. The library never fails
 * because a flag is missing.
 *
 * <p>The system property {@code gradclip.kernels=scalar} forces the scalar kernels (for tests and
 * for benchmarks of the fallback).
 */
public final class KernelProvider {

    static final String VECTOR_MODULE = "jdk.incubator.vector";
    static final String FORCE_PROPERTY = "gradclip.kernels";

    private static final System.Logger LOG = System.getLogger(KernelProvider.class.getName());

    private KernelProvider() {}

    /** The kernels this JVM uses. */
    public static Kernels kernels() {
        return Holder.INSTANCE;
    }

    /** Initialized on first use; a nested holder avoids class-initialization deadlocks. */
    private static final class Holder {
        static final Kernels INSTANCE = lookup();
    }

    private static Kernels lookup() {
        if ("scalar".equals(System.getProperty(FORCE_PROPERTY))) {
            return new ScalarKernels();
        }
        String unavailable = whyVectorUnavailable();
        if (unavailable != null) {
            LOG.log(System.Logger.Level.WARNING, unavailable + "; gradclip uses its scalar kernels.");
            return new ScalarKernels();
        }
        try {
            Kernels vector = loadVectorKernels();
            LOG.log(System.Logger.Level.INFO, "gradclip kernels: " + vector.description());
            return vector;
        } catch (UnsupportedOperationException e) {
            LOG.log(System.Logger.Level.WARNING, e.getMessage() + "; gradclip uses its scalar kernels.");
            return new ScalarKernels();
        }
    }

    /** Null when the Vector API kernels can run at speed, else the reason, as one line. */
    static String whyVectorUnavailable() {
        if (ModuleLayer.boot().findModule(VECTOR_MODULE).isEmpty()) {
            return "The Vector API is not enabled: pass '--add-modules=" + VECTOR_MODULE
                    + "' to the JVM for the SIMD kernels";
        }
        String vmInfo = System.getProperty("java.vm.info", "").toLowerCase(Locale.ROOT);
        // Without C2 the Vector API runs as interpreted objects, many times slower than scalar code.
        if (vmInfo.contains("interpreted mode") || vmInfo.contains("emulated-client")) {
            return "The JVM runs without the C2 compiler (" + vmInfo + "), so the Vector API would be slow";
        }
        return null;
    }

    /** Loaded by name so that no Vector API class is touched before the checks above. */
    private static Kernels loadVectorKernels() {
        try {
            MethodHandles.Lookup lookup = MethodHandles.lookup();
            Class<?> type = lookup.findClass(KernelProvider.class.getPackageName() + ".VectorKernels");
            return (Kernels) lookup.findConstructor(type, MethodType.methodType(void.class)).invoke();
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new AssertionError("cannot construct the vector kernels", t);
        }
    }
}
