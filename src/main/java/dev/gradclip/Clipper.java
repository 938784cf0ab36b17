package dev.gradclip;

import dev.gradclip.internal.Clipping;
import dev.gradclip.internal.Engine;
import dev.gradclip.internal.KernelProvider;
import dev.gradclip.internal.NormState;
import dev.gradclip.internal.NormType;
import dev.gradclip.internal.SegmentChecks;
import dev.gradclip.internal.TensorTable;

/**
 * Global-norm clipping configured once and called on every training step: the norm type, the
 * non-finite policy, the threads, and optionally an all-reduce over the workers that shard the
 * model. One call reads the gradients once for the norm (and the optional {@link GradReport}) and,
 * if it clips, once more to scale them.
 *
 * <pre>{@code
 * try (Clipper clipper = Clipper.builder().maxNorm(1.0).nonFinite(NonFinite.SKIP).build()) {
 *     GradReport report = new GradReport(grads);
 *     for (Batch batch : loader) {
 *         model.forwardBackward(batch);
 *         double norm = clipper.clip(grads, report);
 *         if (!Double.isFinite(norm)) { log.warn("skipped: " + report); continue; }
 *         optimizer.step();
 *     }
 * }
 * }</pre>
 *
 * <p><b>Threads.</b> By default all available processors (at most {@link #MAX_THREADS}) for work of
 * at least 1 MiB, the calling thread alone below that (a hand-off costs about what one core needs for
 * that much memory). The results are the same bits for any thread count. Worker threads are daemons,
 * created once by {@link Builder#build()}; {@link #close()} stops them at once, and a Clipper dropped
 * without closing stops them once the garbage collector finds it unreachable. Segments confined to
 * the calling thread ({@code Arena.ofConfined()}) are processed on the calling thread alone.
 *
 * <p><b>Closing.</b> After {@link #close()} every {@code clip} throws {@link IllegalStateException}
 * and writes nothing.
 *
 * <p><b>Sharding.</b> With {@link Builder#allReduce(AllReduce)}, each participant passes the tensors
 * it holds; {@code clip} computes the local {@link NormPartial} words, all-reduces them through the
 * hook, takes the global norm from the result and scales only the local tensors. Every participant
 * must call {@code clip} the same number of times with the same normType (the hook's contract).
 * The norm bits are the same on every participant and equal the unsharded call's, for normType 1,
 * 2 and +Infinity.
 *
 * <p>Calls on one Clipper are serialized; after warm-up {@code clip} allocates nothing.
 */
public final class Clipper implements AutoCloseable {

    /**
     * The most threads a Clipper takes, 256: {@link Builder#threads} rejects more. The passes are bound
     * by memory bandwidth, which a few cores per memory channel saturate, and each thread is started
     * by {@code build()} and spins briefly after each call; thousands only cost time and memory.
     */
    public static final int MAX_THREADS = 256;

    private final double maxNorm;
    private final double normType;
    private final NormType type;
    private final NonFinite nonFinite;
    private final AllReduce allReduce;
    private final Engine engine;
    private final NormState local = new NormState();
    private final NormState global = new NormState();
    private final long[] words;
    private boolean closed; // guarded by this

    private Clipper(Builder builder) {
        this.maxNorm = builder.maxNorm;
        this.normType = builder.normType;
        this.type = NormType.of(normType);
        this.nonFinite = builder.nonFinite;
        this.allReduce = builder.allReduce;
        if (allReduce != null && type == NormType.POWER) {
            throw new IllegalArgumentException("allReduce needs normType 1, 2 or +Infinity, which have exact"
                    + " word forms; normType " + normType + " has none");
        }
        this.words = allReduce == null ? null : new long[NormState.wordCount(type)];
        this.engine = new Engine(KernelProvider.kernels(), builder.threads, builder.minParallelBytes);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Clips per the configuration and returns the global norm from before. */
    public double clip(Gradients grads) {
        return clip(grads, null, false);
    }

    /** The same, and fills {@code report} with the global and per-tensor figures, from the same pass. */
    public double clip(Gradients grads, GradReport report) {
        if (report == null) {
            throw new NullPointerException("report is null");
        }
        return clip(grads, report, true);
    }

    private synchronized double clip(Gradients grads, GradReport report, boolean withReport) {
        if (closed) {
            throw new IllegalStateException("the Clipper is closed: nothing was written");
        }
        TensorTable table = GradClip.readable(grads);
        if (withReport && !report.isFor(grads)) {
            throw new IllegalArgumentException("report was built for " + report.size() + " tensors, but grads has "
                    + grads.size() + ": build one GradReport per Gradients");
        }
        engine.norm(table, type, normType, withReport, withReport, local);
        double norm = allReduce == null ? local.norm() : allReduced();
        if (withReport) {
            copyTensorFigures(report, table.size());
        }
        if (!Double.isFinite(norm) && nonFinite != NonFinite.PROPAGATE) {
            if (withReport) {
                report.fill(normType, norm, 1, false);
            }
            if (nonFinite == NonFinite.ERROR) {
                throw new ArithmeticException(whyNonFinite(table, norm));
            }
            return norm; // SKIP
        }
        double c = Clipping.coefficientFor(maxNorm, norm);
        boolean written = GradClip.scale(engine, table, c);
        if (withReport) {
            report.fill(normType, norm, written ? c : 1, written);
        }
        return norm;
    }

    /** The global norm from the local state's words, summed (or maxed) by the hook over every participant. */
    private double allReduced() {
        local.toWords(words);
        if (NormState.reducesByMax(type)) {
            allReduce.max(words);
        } else {
            allReduce.sum(words);
        }
        try {
            global.fromWords(type, normType, words);
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("the all-reduce hook returned words that are not a reduction of"
                    + " gradclip partials (nothing was scaled): " + e.getMessage(), e);
        }
        return global.norm();
    }

    private void copyTensorFigures(GradReport report, int n) {
        double[] norms = report.norms();
        double[] maxAbs = report.maxAbsArray();
        long[] counts = report.nonFiniteArray();
        for (int i = 0; i < n; i++) {
            norms[i] = engine.tensorNorm(i);
            maxAbs[i] = engine.tensorMax(i);
            counts[i] = engine.tensorNonFinite(i);
        }
    }

    /** The ERROR policy's message: the first tensor with non-finite values, counted now (an error path). */
    private String whyNonFinite(TensorTable table, double norm) {
        engine.norm(table, NormType.INF, Double.POSITIVE_INFINITY, true, true, local);
        for (int i = 0; i < table.size(); i++) {
            long count = engine.tensorNonFinite(i);
            if (count > 0) {
                return "the gradient norm is " + norm + ": " + table.label(i) + " holds " + count
                        + " non-finite value" + (count == 1 ? "" : "s") + " (NaN or infinity); nothing was written";
            }
        }
        if (allReduce != null && !(global.max <= Double.MAX_VALUE)) { // some participant saw a NaN or an infinity
            return "the global gradient norm is " + norm + ": the non-finite values are on another participant"
                    + " (every local element is finite); nothing was written";
        }
        return "the " + (allReduce != null ? "global " : "") + "gradient norm is " + norm
                + ", yet every element" + (allReduce != null ? " on every participant" : "") + " is finite: the normType " + normType
                + " norm overflowed the double range; nothing was written";
    }

    public double maxNorm() {
        return maxNorm;
    }

    public double normType() {
        return normType;
    }

    public NonFinite nonFinite() {
        return nonFinite;
    }

    public int threads() {
        return engine.threads();
    }

    /** Stops the worker threads, after a clip that another thread is running; later clips throw. Idempotent. */
    @Override
    public synchronized void close() {
        closed = true;
        engine.close();
    }

    @Override
    public String toString() {
        return "Clipper[maxNorm " + maxNorm + ", normType " + normType + ", " + nonFinite + ", " + threads()
                + " thread(s)" + (allReduce == null ? "" : ", all-reduce " + allReduce) + ", "
                + engine.kernels().description() + "]";
    }

    public static final class Builder {
        private double maxNorm = Double.NaN;
        private double normType = 2;
        private NonFinite nonFinite = NonFinite.PROPAGATE;
        private int threads = Math.min(Runtime.getRuntime().availableProcessors(), MAX_THREADS);
        private long minParallelBytes = Engine.DEFAULT_MIN_PARALLEL_BYTES;
        private AllReduce allReduce;
        private boolean maxNormSet;

        private Builder() {}

        /** Required: the global norm to clip to; +Infinity never clips. */
        public Builder maxNorm(double maxNorm) {
            this.maxNorm = maxNorm;
            this.maxNormSet = true;
            return this;
        }

        /** 2 (the default), 1, any finite p >= 1, or {@code Double.POSITIVE_INFINITY}. */
        public Builder normType(double normType) {
            this.normType = normType;
            return this;
        }

        /** What to do when the norm is NaN or infinite; default {@link NonFinite#PROPAGATE}, as torch. */
        public Builder nonFinite(NonFinite policy) {
            if (policy == null) {
                throw new NullPointerException("policy is null");
            }
            this.nonFinite = policy;
            return this;
        }

        /**
         * Threads for large work, the caller included: 1 (the calling thread only) to
         * {@link #MAX_THREADS}; default all available processors, at most {@code MAX_THREADS}. More
         * threads than cores work, with the same bits, but only add hand-offs.
         */
        public Builder threads(int threads) {
            if (threads < 1 || threads > MAX_THREADS) {
                throw new IllegalArgumentException("threads must be in 1.." + MAX_THREADS + ", was " + threads);
            }
            this.threads = threads;
            return this;
        }

        /** Work below this many bytes stays on the calling thread; default 1 MiB. */
        public Builder minParallelBytes(long bytes) {
            if (bytes < 0) {
                throw new IllegalArgumentException("minParallelBytes must be >= 0, was " + bytes);
            }
            this.minParallelBytes = bytes;
            return this;
        }

        /** Shards: all-reduce the norm over every participant through this hook. */
        public Builder allReduce(AllReduce hook) {
            if (hook == null) {
                throw new NullPointerException("hook is null");
            }
            this.allReduce = hook;
            return this;
        }

        public Clipper build() {
            if (!maxNormSet) {
                throw new IllegalStateException("maxNorm is required: call maxNorm(...) before build()");
            }
            SegmentChecks.checkMaxNorm(maxNorm);
            NormType.of(normType);
            return new Clipper(this);
        }
    }
}
