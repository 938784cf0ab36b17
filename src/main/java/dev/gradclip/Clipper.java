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
 * <p><b>Threads.</b> By default all available processors for work of at least 1 MiB, the calling
 * thread alone below that (a hand-off costs about what one core needs for that much memory). The
 * results are the same bits for any thread count. Worker threads are daemons, created once; close the
 * Clipper to stop them. Segments confined to the calling thread ({@code Arena.ofConfined()}) are
 * processed on the calling thread alone.
 *
 * <p><b>Sharding.</b> With {@link Builder#allReduce(AllReduce)}, each participant passes the tensors
 * it holds; {@code clip} computes the local {@link NormPartial} words, all-reduces them through the
 * hook, takes the global norm from the result and scales only the local tensors. Every participant
 * must call {@code clip} the same number of times with the same normType (the hook's contract).
 * The norm bits are the same on every participant and equal the unsharded call's, for normType 1,
 * 2 and +Infinity.
 *
 * <p><b>Thresholds.</b> The bound can adapt: {@link Builder#threshold(Threshold)} with
 * {@link Threshold#autoClip} or {@link Threshold#zClip} computes each step's bound from the global
 * norms seen so far, so it is the same bits on every participant of a sharded clip, and
 * {@link GradReport#maxNorm()} says which bound a step used. {@link Builder#maxConsecutiveSkips}
 * stops a run whose every step SKIP leaves unwritten.
 *
 * <p>Calls on one Clipper are serialized; after warm-up {@code clip} allocates nothing (an AutoClip
 * threshold's history grows with the steps: its arrays double, about log2(steps) times in all).
 */
public final class Clipper implements AutoCloseable {

    /** The most tensors the stall guard's message names. */
    private static final int STALL_NAMES = 10;

    private final double maxNorm;
    private final Threshold threshold;
    /** The bound the last clip used, for {@link #maxNorm()}. */
    private volatile double lastBound = Double.NaN;
    private final int maxConsecutiveSkips;
    /** Steps in a row that SKIP left unwritten; reset by a step that passes or clips. */
    private long skipsInARow;
    private final double normType;
    private final NormType type;
    private final NonFinite nonFinite;
    private final AllReduce allReduce;
    private final Engine engine;
    private final NormState local = new NormState();
    private final NormState global = new NormState();
    private final long[] words;

    private Clipper(Builder builder) {
        this.threshold = builder.threshold != null ? builder.threshold : Threshold.fixed(builder.maxNorm);
        this.maxNorm = threshold.isFixed() ? threshold.bound(0) : Double.NaN;
        this.maxConsecutiveSkips = builder.maxConsecutiveSkips;
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
        try {
            threshold.claim(this);
        } catch (RuntimeException e) {
            engine.close();
            throw e;
        }
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
        TensorTable table = GradClip.readable(grads);
        if (withReport && !report.isFor(grads)) {
            throw new IllegalArgumentException("report was built for " + report.size() + " tensors, but grads has "
                    + grads.size() + ": build one GradReport per Gradients");
        }
        engine.norm(table, type, normType, withReport, withReport, local);
        double norm = allReduce == null ? local.norm() : allReduced();
        double bound = threshold.bound(norm);
        lastBound = bound;
        if (withReport) {
            copyTensorFigures(report, table.size());
            report.setMaxNorm(bound);
        }
        if (!Double.isFinite(norm) && nonFinite != NonFinite.PROPAGATE) {
            if (withReport) {
                report.fill(normType, norm, 1, false);
            }
            if (nonFinite == NonFinite.ERROR) {
                throw new ArithmeticException(whyNonFinite(table, norm));
            }
            if (maxConsecutiveSkips > 0 && ++skipsInARow >= maxConsecutiveSkips) {
                throw new IllegalStateException(stalled(table, norm));
            }
            return norm; // SKIP
        }
        double c = Clipping.coefficient(norm, bound);
        boolean written = GradClip.scale(engine, table, c);
        if (withReport) {
            report.fill(normType, norm, written ? c : 1, written);
        }
        threshold.observe(norm);
        skipsInARow = 0;
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

    /**
     * The fixed {@code maxNorm}; with an adaptive {@link Threshold}, the bound the last {@code clip}
     * used (NaN before the first).
     */
    public double maxNorm() {
        return threshold.isFixed() ? maxNorm : lastBound;
    }

    /** The threshold this Clipper clips to, which it owns: take its {@link Threshold#state()} between steps. */
    public Threshold threshold() {
        return threshold;
    }

    /** The stall guard's limit, or 0 when it is off. */
    public int maxConsecutiveSkips() {
        return maxConsecutiveSkips;
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

    /**
     * The stall guard's message: how many steps in a row were skipped, and the tensors of this
     * participant that hold non-finite values in the last one, counted now (an error path).
     */
    private String stalled(TensorTable table, double norm) {
        StringBuilder message = new StringBuilder().append(skipsInARow).append(" steps in a row were skipped (NonFinite.SKIP,"
                + " maxConsecutiveSkips ").append(maxConsecutiveSkips).append("): the ").append(allReduce != null ? "global " : "")
                .append("gradient norm was not finite, nothing was written, training is stalled. The last step's norm was ")
                .append(norm);
        engine.norm(table, NormType.INF, Double.POSITIVE_INFINITY, true, true, local);
        int named = 0;
        int more = 0;
        for (int i = 0; i < table.size(); i++) {
            long count = engine.tensorNonFinite(i);
            if (count == 0) {
                continue;
            }
            if (named == STALL_NAMES) {
                more++;
                continue;
            }
            message.append(named++ == 0 ? "; its non-finite tensors: " : ", ").append(table.label(i)).append(" (")
                    .append(count).append(" NaN or infinite value").append(count == 1 ? ")" : "s)");
        }
        if (more > 0) {
            message.append(" and ").append(more).append(" more");
        }
        if (named == 0) {
            message.append(allReduce != null ? "; every element on this participant is finite: the non-finite values"
                    + " are on another participant, or the norm overflowed" : "; every element is finite: the normType "
                    + normType + " norm overflowed the double range");
        }
        return message.toString();
    }

    /** Stops the worker threads, after a clip that another thread is running. */
    @Override
    public synchronized void close() {
        engine.close();
    }

    @Override
    public String toString() {
        return "Clipper[" + (threshold.isFixed() ? "maxNorm " + maxNorm : "threshold " + threshold) + ", normType " + normType + ", " + nonFinite + ", " + threads()
                + " thread(s)" + (allReduce == null ? "" : ", all-reduce " + allReduce) + ", "
                + engine.kernels().description() + "]";
    }

    public static final class Builder {
        private double maxNorm = Double.NaN;
        private double normType = 2;
        private NonFinite nonFinite = NonFinite.PROPAGATE;
        private int threads = Runtime.getRuntime().availableProcessors();
        private long minParallelBytes = Engine.DEFAULT_MIN_PARALLEL_BYTES;
        private AllReduce allReduce;
        private boolean maxNormSet;
        private Threshold threshold;
        private int maxConsecutiveSkips;

        private Builder() {}

        /**
         * The global norm to clip to; +Infinity never clips. The same as
         * {@code threshold(Threshold.fixed(maxNorm))}, checked at {@link #build()}. This or
         * {@link #threshold(Threshold)} is required; the last one called counts.
         */
        public Builder maxNorm(double maxNorm) {
            this.maxNorm = maxNorm;
            this.maxNormSet = true;
            this.threshold = null;
            return this;
        }

        /**
         * The bound to clip to, fixed or adaptive ({@link Threshold#autoClip}, {@link Threshold#zClip}):
         * each step clips with the coefficient rule at the bound the threshold gives for that step's
         * global norm. An adaptive threshold belongs to the one Clipper built with it.
         */
        public Builder threshold(Threshold threshold) {
            if (threshold == null) {
                throw new NullPointerException("threshold is null");
            }
            this.threshold = threshold;
            this.maxNormSet = false;
            return this;
        }

        /**
         * The stall guard: once {@code k} steps in a row have written nothing because the norm was
         * not finite under {@link NonFinite#SKIP}, that k-th {@code clip} (and each skipped one after
         * it) throws an {@link IllegalStateException} that says how many steps in a row were skipped
         * and names the tensors holding non-finite values in the last one. A step that passes or
         * clips resets the count. Off by default; only SKIP steps count. In a sharded clip the skip
         * is decided on the global norm, so every participant throws at the same step (each names
         * its own tensors).
         */
        public Builder maxConsecutiveSkips(int k) {
            if (k < 1) {
                throw new IllegalArgumentException("maxConsecutiveSkips must be >= 1, was " + k);
            }
            this.maxConsecutiveSkips = k;
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

        /** Threads for large work, the caller included; default all available processors; 1 = the calling thread only. */
        public Builder threads(int threads) {
            if (threads < 1) {
                throw new IllegalArgumentException("threads must be >= 1, was " + threads);
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
            if (!maxNormSet && threshold == null) {
                throw new IllegalStateException("maxNorm is required: call maxNorm(...) or threshold(...) before build()");
            }
            if (maxNormSet) {
                SegmentChecks.checkMaxNorm(maxNorm);
            }
            NormType.of(normType);
            return new Clipper(this);
        }
    }
}
