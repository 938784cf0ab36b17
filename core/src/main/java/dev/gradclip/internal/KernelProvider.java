package dev.gradclip.internal;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.Locale;

/**
 * Picks the kernels once per JVM: the Vector API ones when they can run fast, else the scalar
 * reference with one line that says why (and how to enable the fast path where a flag can). The
 * library never fails because a flag is missing.
 *
 * <p>The vector kernels are slower than the scalar ones (measured on Zen 1: docs/performance.md, section
 * "Kernel choice on other CPUs") where:
 * the Vector API module is missing or C2 is off; the preferred vectors are narrower than their 256
 * bits (x86 without AVX2, {@code -XX:UseAVX=0/1}, {@code -XX:MaxVectorSize=16}: 256-bit species are
 * then emulated, 6x slower than scalar in gradclip 0.1); or there is no hardware FMA ({@code -XX:-UseFMA},
 * or a hypervisor that hides it), where each {@code DoubleVector.fma} lane becomes a BigDecimal
 * computation, 400 to 2000x slower than scalar. Each of these is a known shape checked at start-up,
 * the last by a short timing (below). 128-bit hardware, ARM NEON included, runs the scalar kernels
 * because these kernels need 256-bit vectors, not because 128-bit vectors are slow.
 *
 * <p>The system property {@code gradclip.kernels=scalar} forces the scalar kernels (for tests and
 * for benchmarks of the fallback). Every choice is logged in one line: INFO for the vector kernels
 * and for the forced scalar ones, WARNING with the reason otherwise.
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
            Kernels scalar = new ScalarKernels();
            LOG.log(System.Logger.Level.INFO, "gradclip kernels: " + scalar.description() + ", forced by -D"
                    + FORCE_PROPERTY + "=scalar");
            return scalar;
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
        if (!hardwareFma()) {
            return "Math.fma is not a hardware instruction here (no FMA, or -XX:-UseFMA), so the vector"
                    + " kernels' fma would be emulated, about 1000x slower";
        }
        return null;
    }

    /**
     * Whether {@link Math#fma} runs as one instruction. Without hardware FMA it is a BigDecimal
     * computation, microseconds per call against nanoseconds for a multiply and an add, so the two
     * loops below differ by 20x or more; with it they cost about the same. Timed by
     * {@link StartupTiming} (about 0.1 ms in all when FMA is there); a 4x threshold sits far from both
     * outcomes.
     */
    public static boolean hardwareFma() {
        return Fma.HARDWARE;
    }

    private static final class Fma {
        static final boolean HARDWARE = measure();

        private static boolean measure() {
            double[] x = new double[512];
            for (int i = 0; i < x.length; i++) {
                x[i] = 1 + i * 0x1p-30;
            }
            long[] nanos = StartupTiming.bestOfFive(() -> {
                double sum = 0;
                for (double v : x) {
                    sum = Math.fma(v, v, sum);
                }
                return sum;
            }, () -> {
                double sum = 0;
                for (double v : x) {
                    sum = v * v + sum;
                }
                return sum;
            });
            return nanos[0] < 4 * nanos[1];
        }
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
