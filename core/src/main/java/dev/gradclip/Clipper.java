package dev.gradclip;

import dev.gradclip.internal.ClipEvent;
import dev.gradclip.internal.Clipping;
import dev.gradclip.internal.Engine;
import dev.gradclip.internal.KernelProvider;
import dev.gradclip.internal.NormState;
import dev.gradclip.internal.NormType;
import dev.gradclip.internal.SegmentChecks;
import dev.gradclip.internal.ShardedStep;
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
 * <p><b>A failed sharded step.</b> Every check that can fail on one participant runs before the
 * all-reduce: null arguments, a {@link GradReport} built for other {@link Gradients}, a closed
 * arena, a segment confined to another thread, and any exception of the local norm pass. A
 * participant whose checks failed still takes part in the all-reduce and flags its failure in its
 * words; a read-only tensor with elements is flagged too, and fails the step only if the step
 * scales (read-only shards are fine while the norm stays under {@code maxNorm}, as unsharded). Then
 * every participant throws at that same step, and nothing is written on any participant: the
 * failing participant its own exception (as unsharded: {@link IllegalArgumentException},
 * {@link NullPointerException}, {@link IllegalStateException}, {@link WrongThreadException}); every
 * other participant an {@link IllegalStateException} that names the failing participant by its
 * {@link AllReduce#rank()} (the lowest and the highest, when several failed) and why. The report,
 * if any, is left as it was. A participant that catches the exception and goes on stays in
 * lockstep: the next step gets the right global norm. A failed step costs one more all-reduce of
 * two words; a step without failure costs one, of the norm type's word count plus two. Exceptions
 * of the hook itself (a timeout, a word-count mismatch) propagate as the hook throws them.
 *
 * <p><b>Thresholds.</b> The bound can adapt: {@link Builder#threshold(Threshold)} with
 * {@link Threshold#autoClip} or {@link Threshold#zClip} computes each step's bound from the global
 * norms seen so far, so it is the same bits on every participant of a sharded clip, and
 * {@link GradReport#maxNorm()} says which bound a step used. {@link Builder#maxConsecutiveSkips}
 * stops a run whose every step SKIP leaves unwritten.
 *
 * <p><b>Flight Recorder.</b> Each successful {@code clip} is a JFR event, {@code dev.gradclip.Clip}
 * (tensors, elements, bytes, threads, norm, the bound, the coefficient, whether it wrote, and the
 * duration), disabled by default: enable it in a recording, e.g.
 * {@code -XX:StartFlightRecording:filename=clip.jfr,+dev.gradclip.Clip#enabled=true}, and read it
 * with {@code jfr print --events dev.gradclip.Clip clip.jfr}
 * or JDK Mission Control. Without a recording that enables it, no event object is created.
 *
 * <p>Calls on one Clipper are serialized; after warm-up {@code clip} allocates nothing (an AutoClip
 * threshold's history grows with the steps: its arrays double, about log2(steps) times in all).
 */
public final class Clipper implements AutoCloseable {

    /**
     * The most threads a Clipper takes, 256: {@link Builder#threads} rejects more. The passes are bound
     * by memory bandwidth, which a few cores per memory channel saturate, and each thread is started
     * by {@code build()} and spins briefly after each call; thousands only cost time and memory.
     */
    public static final int MAX_THREADS = 256;

    /** The most tensors the stall guard's message names. */
    private static final int STALL_NAMES = 10;

    private final double maxNorm;
    private final Threshold threshold;
    /** The bound the last clip used, for {@link #maxNorm()}. */
    private volatile double lastBound = Double.NaN;
    private final int maxConsecutiveSkips;
    /** Steps in a row that SKIP left unwritten; reset by a step that passes or clips. */
    private long skipsInARow;
    /** What the last step multiplied by (1 if it wrote nothing) and whether it wrote, for the JFR event. */
    private double lastCoefficient = 1;
    private boolean lastWritten;
    private final double normType;
    private final NormType type;
    private final NonFinite nonFinite;
    private final AllReduce allReduce;
    private final ShardedStep step; // null without allReduce
    private final Engine engine;
    private final NormState local = new NormState();
    private final NormState global = new NormState();
    private boolean closed; // guarded by this

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
        this.step = allReduce == null ? null : new ShardedStep(allReduce, type, normType);
        this.engine = new Engine(KernelProvider.kernels(), builder.threads, builder.minParallelBytes);
        try {
            threshold.claim(this);
        } catch (RuntimeException e) {
            engine.close();
            throw e;
        }
    }

    /**
     * A builder; {@link Builder#maxNorm} or {@link Builder#threshold} is required.
     *
     * @return a new builder with the defaults
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Clips per the configuration.
     *
     * @param grads the tensors to clip in place
     * @return the global norm from before clipping
     */
    public double clip(Gradients grads) {
        return clip(grads, 1, null, false);
    }

    /**
     * The same, and fills {@code report} with the global and per-tensor figures, from the same pass.
     *
     * @param grads the tensors to clip in place
     * @param report the report built for {@code grads}, filled by this call
     * @return the global norm from before clipping
     * @throws IllegalArgumentException if {@code report} was built for other {@link Gradients} (even
     *     of the same size): a report labels the tensors of the one it was built for
     */
    public double clip(Gradients grads, GradReport report) {
        return clip(grads, 1, report, true);
    }

    /**
     * Clips buffers that hold {@code scale} times the gradient that counts: a sum over {@code scale}
     * examples whose mean the optimizer applies (DL4J divides its minibatch sums only in the updater),
     * or a loss-scaled gradient. With N the norm of the buffers, they are multiplied by
     * {@code min(1, maxNorm / (N / scale + 1e-6))} when that is below 1: the coefficient
     * {@link #clip(Gradients, GradReport)} applies for a norm of {@code N / scale}, so
     * {@code grads / scale} comes out clipped as torch's {@code clip_grad_norm_} clips it. Returns
     * {@code N / scale}; every figure in {@code report} is that of {@code grads / scale} (the non-finite
     * counts as they are). The division rounds once more, so the norms' error bounds grow by
     * 2^-53 relative. With {@code scale} 1 this is {@code clip(grads, report)}.
     *
     * @param grads buffers holding {@code scale} times the gradient
     * @param scale the factor the buffers carry, e.g. the minibatch size; positive and finite
     * @param report filled with the figures of {@code grads / scale}
     * @return the global norm of {@code grads / scale} from before clipping
     * @throws IllegalArgumentException if {@code scale} is not positive and finite (nothing is written)
     */
    public double clipScaled(Gradients grads, double scale, GradReport report) {
        return clip(grads, scale, report, true);
    }

    private synchronized double clip(Gradients grads, double scale, GradReport report, boolean withReport) {
        ClipEvent event = ClipEvent.startIfEnabled(); // null unless a flight recording wants it
        double norm = step != null ? clipSharded(grads, scale, report, withReport) : clipLocal(grads, scale, report, withReport);
        if (event != null) {
            event.tensors = grads.size();
            for (int i = 0; i < grads.size(); i++) {
                event.elements += grads.numel(i);
            }
            event.bytes = grads.byteSize();
            event.threads = engine.threads();
            event.norm = norm;
            event.maxNorm = lastBound;
            event.coefficient = lastCoefficient;
            event.clipped = lastWritten;
            event.commit();
        }
        return norm;
    }

    private double clipLocal(Gradients grads, double scale, GradReport report, boolean withReport) {
        TensorTable table = checked(grads, scale, report, withReport);
        engine.norm(table, type, normType, withReport, withReport, local);
        return finish(table, scale, report, withReport, unscaled(local.norm(), scale), false);
    }

    /**
     * Every check of a call, before anything is read or written. In a sharded clip whatever throws
     * here is flagged in the all-reduce, so a check added here fails every participant alike.
     */
    private TensorTable checked(Gradients grads, double scale, GradReport report, boolean withReport) {
        if (closed) {
            throw new IllegalStateException("the Clipper is closed: nothing was written");
        }
        TensorTable table = Gradients.readable(grads);
        if (!(scale > 0 && scale < Double.POSITIVE_INFINITY)) {
            throw new IllegalArgumentException("scale must be positive and finite, was " + scale);
        }
        if (withReport) {
            if (report == null) {
                throw new NullPointerException("report is null");
            }
            if (!report.isFor(grads)) {
                throw new IllegalArgumentException("report was built for other Gradients (" + report.size()
                        + " tensors; grads has " + grads.size() + "): build one GradReport per Gradients and pass it"
                        + " with that Gradients only");
            }
        }
        return table;
    }

    /**
     * A participant's step: whatever fails here before the all-reduce (a check, the norm pass) is
     * flagged in the all-reduce instead of skipping it, so every participant throws at this step.
     */
    private double clipSharded(Gradients grads, double scale, GradReport report, boolean withReport) {
        TensorTable table = null;
        RuntimeException failure = null;
        boolean readOnly = false;
        try {
            table = checked(grads, scale, report, withReport);
            readOnly = ShardedStep.readOnly(table);
            engine.norm(table, type, normType, withReport, withReport, local);
        } catch (RuntimeException e) {
            failure = e;
        }
        step.reduce(local, failure, readOnly, global); // throws on every participant if any failed
        return finish(table, scale, report, withReport, unscaled(global.norm(), scale), readOnly);
    }

    /** After the norm: the report, the non-finite policy, and the scaling. */
    private double finish(TensorTable table, double scale, GradReport report, boolean withReport, double norm,
            boolean readOnly) {
        double bound = threshold.bound(norm); // the threshold's state changes only once the step has succeeded
        if (step != null && scales(norm, bound)) {
            step.checkWritable(table, readOnly); // before the report is touched
        }
        lastBound = bound;
        lastCoefficient = 1;
        lastWritten = false;
        if (withReport) {
            copyTensorFigures(report, table.size(), scale);
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
        double c = Clipping.coefficientFor(bound, norm);
        boolean written = engine.clip(table, c);
        lastCoefficient = written ? c : 1;
        lastWritten = written;
        if (withReport) {
            report.fill(normType, norm, lastCoefficient, written);
        }
        threshold.observe(norm);
        skipsInARow = 0;
        return norm;
    }

    /** Whether a clip with this norm writes: what the policy and {@link Engine#clip} decide below. */
    private boolean scales(double norm, double bound) {
        return (Double.isFinite(norm) || nonFinite == NonFinite.PROPAGATE) && Clipping.coefficientFor(bound, norm) != 1.0;
    }

    /** {@code x / scale}; with scale 1 the value itself, so plain clips keep every bit (a NaN's payload too). */
    private static double unscaled(double x, double scale) {
        return scale == 1 ? x : x / scale;
    }

    private void copyTensorFigures(GradReport report, int n, double scale) {
        double[] norms = report.norms();
        double[] maxAbs = report.maxAbsArray();
        long[] counts = report.nonFiniteArray();
        for (int i = 0; i < n; i++) {
            norms[i] = unscaled(engine.tensorNorm(i), scale);
            maxAbs[i] = unscaled(engine.tensorMax(i), scale);
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
     *
     * @return the bound
     */
    public double maxNorm() {
        return threshold.isFixed() ? maxNorm : lastBound;
    }

    /**
     * The threshold this Clipper clips to, which it owns: take its {@link Threshold#state()} between steps.
     *
     * @return the threshold, fixed or adaptive
     */
    public Threshold threshold() {
        return threshold;
    }

    /**
     * The stall guard's limit, or 0 when it is off.
     *
     * @return {@link Builder#maxConsecutiveSkips}'s value, or 0
     */
    public int maxConsecutiveSkips() {
        return maxConsecutiveSkips;
    }

    /**
     * The norm this Clipper computes and clips.
     *
     * @return 2, 1, a finite p > 1, or {@code Double.POSITIVE_INFINITY}
     */
    public double normType() {
        return normType;
    }

    /**
     * What a clip does when the global norm is NaN or infinite.
     *
     * @return the policy
     */
    public NonFinite nonFinite() {
        return nonFinite;
    }

    /**
     * Threads for large work, the caller included.
     *
     * @return from 1 to {@link #MAX_THREADS}
     */
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

    /** Stops the worker threads, after a clip that another thread is running; later clips throw. Idempotent. */
    @Override
    public synchronized void close() {
        closed = true;
        engine.close();
    }

    @Override
    public String toString() {
        return "Clipper[" + (threshold.isFixed() ? "maxNorm " + maxNorm : "threshold " + threshold) + ", normType " + normType + ", " + nonFinite + ", " + threads()
                + " thread(s)" + (allReduce == null ? "" : ", all-reduce " + allReduce) + ", "
                + engine.kernels().description() + "]";
    }

    /** The configuration of a {@link Clipper}: set what differs from the defaults, then {@link #build()}. */
    public static final class Builder {
        private double maxNorm = Double.NaN;
        private double normType = 2;
        private NonFinite nonFinite = NonFinite.PROPAGATE;
        private int threads = Math.min(Runtime.getRuntime().availableProcessors(), MAX_THREADS);
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
         *
         * @param maxNorm the global norm to clip to, >= 0
         * @return this builder
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
         *
         * @param threshold the bound's rule
         * @return this builder
         * @throws NullPointerException if {@code threshold} is null
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
         *
         * @param k the number of skipped steps in a row that throws, >= 1
         * @return this builder
         * @throws IllegalArgumentException if {@code k} is less than 1
         */
        public Builder maxConsecutiveSkips(int k) {
            if (k < 1) {
                throw new IllegalArgumentException("maxConsecutiveSkips must be >= 1, was " + k);
            }
            this.maxConsecutiveSkips = k;
            return this;
        }

        /**
         * The norm to compute and clip: 2 (the default), 1, any finite p >= 1, or
         * {@code Double.POSITIVE_INFINITY}; checked at {@link #build()}.
         *
         * @param normType the norm's p
         * @return this builder
         */
        public Builder normType(double normType) {
            this.normType = normType;
            return this;
        }

        /**
         * What to do when the norm is NaN or infinite; default {@link NonFinite#PROPAGATE}, as torch.
         *
         * @param policy the policy
         * @return this builder
         * @throws NullPointerException if {@code policy} is null
         */
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
         *
         * @param threads the thread count
         * @return this builder
         * @throws IllegalArgumentException if {@code threads} is outside 1 to {@code MAX_THREADS}
         */
        public Builder threads(int threads) {
            if (threads < 1 || threads > MAX_THREADS) {
                throw new IllegalArgumentException("threads must be in 1.." + MAX_THREADS + ", was " + threads);
            }
            this.threads = threads;
            return this;
        }

        /**
         * Work below this many bytes stays on the calling thread; default 1 MiB.
         *
         * @param bytes the least work handed to the worker threads, >= 0
         * @return this builder
         * @throws IllegalArgumentException if {@code bytes} is negative
         */
        public Builder minParallelBytes(long bytes) {
            if (bytes < 0) {
                throw new IllegalArgumentException("minParallelBytes must be >= 0, was " + bytes);
            }
            this.minParallelBytes = bytes;
            return this;
        }

        /**
         * Shards: all-reduce the norm over every participant through this hook.
         *
         * @param hook the all-reduce shared by the participants
         * @return this builder
         * @throws NullPointerException if {@code hook} is null
         */
        public Builder allReduce(AllReduce hook) {
            if (hook == null) {
                throw new NullPointerException("hook is null");
            }
            this.allReduce = hook;
            return this;
        }

        /**
         * Checks the configuration and builds the Clipper, with its worker threads.
         *
         * @return a new Clipper; close it to stop its threads
         * @throws IllegalStateException if neither {@code maxNorm} nor {@code threshold} was set, or the
         *     adaptive threshold already belongs to another Clipper
         * @throws IllegalArgumentException if {@code maxNorm} or {@code normType} is out of range
         */
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
