package dev.gradclip;

import dev.gradclip.internal.OrderStatisticTree;
import dev.gradclip.internal.SegmentChecks;
import java.util.Arrays;
import java.util.Locale;

/**
 * The norm a {@link Clipper} clips to, step by step: a fixed {@code maxNorm}, or one that adapts to
 * the norms seen so far (AutoClip, ZClip). Give it to {@link Clipper.Builder#threshold(Threshold)};
 * on every {@code clip} the Clipper computes the global norm, asks the threshold for this step's
 * bound, and applies the coefficient rule with it, as for a fixed {@code maxNorm}.
 * {@link GradReport#maxNorm()} says which bound a step used.
 *
 * <p><b>Exact norms make adaptive thresholds reproducible.</b> The thresholds depend only on the
 * sequence of global norms, and those are the same bits for any thread count, any CPU and any
 * sharding: with an {@link AllReduce} every participant's threshold evolves identically, with no
 * extra communication, and equals the unsharded run's.
 *
 * <p><b>Non-finite steps.</b> A step whose norm is NaN or infinite (under any {@link NonFinite}
 * policy) changes no state: AutoClip does not add it to its history, ZClip does not count it in
 * its warm-up or its moving averages. Such a step's bound is AutoClip's percentile of the history
 * so far (+Infinity while the history is empty) and ZClip's {@code maxNorm}.
 *
 * <p><b>Checkpoints.</b> {@link #state()} is everything a threshold has learned, configuration
 * included, as a {@code double[]}; {@link #restore(double[])} on a threshold of the same kind and
 * configuration returns one that goes on from there exactly: the same thresholds, to the bit, as
 * the uninterrupted run. The format is in {@code docs/adaptive.md}.
 *
 * <p><b>Ownership.</b> An adaptive threshold has state, so it belongs to one Clipper: building a
 * second Clipper with it throws {@link IllegalStateException}. A fixed threshold has none and may
 * be shared. The methods are thread-safe; take {@link #state()} between steps.
 */
public abstract sealed class Threshold {

    /** Tags, the first entry of every {@link #state()}. */
    private static final double FIXED = 1;
    private static final double AUTO_CLIP = 2;
    private static final double Z_CLIP = 3;

    /** The Clipper this threshold belongs to, once built. */
    private Object owner;

    private Threshold() {}

    /**
     * Always {@code maxNorm}: what {@link Clipper.Builder#maxNorm(double)} sets.
     *
     * @param maxNorm the bound, >= 0, or +Infinity (never clips)
     * @return a fixed threshold, which may be shared
     * @throws IllegalArgumentException if {@code maxNorm} is negative or NaN
     */
    public static Threshold fixed(double maxNorm) {
        SegmentChecks.checkMaxNorm(maxNorm);
        return new Fixed(maxNorm + 0.0); // -0.0 is 0
    }

    /**
     * AutoClip (Seetharaman, Wichern, Pardo and Le Roux, "AutoClip: Adaptive Gradient Clipping for
     * Source Separation Networks", MLSP 2020; reference {@code autoclip.py} in pseeth/autoclip): every
     * step adds its norm to the history of all norms seen, and the bound is the {@code percentile}-th
     * percentile of that history, the step's own norm included, with numpy's default linear
     * interpolation ({@code np.percentile}): for n norms in ascending order {@code a[0..n-1]}, the
     * index {@code i = (n - 1) * (percentile / 100)}, {@code j = floor(i)}, {@code t = i - j}, and
     * the bound is {@code a[j] + (a[j+1] - a[j]) * t} when {@code t < 0.5}, else
     * {@code a[j+1] - (a[j+1] - a[j]) * (1 - t)} (numpy's {@code _lerp}), or {@code a[n-1]} when
     * {@code j >= n - 1}.
     *
     * <p>The history is an order-statistic tree: a step costs O(log n) after n steps, not the
     * reference's O(n log n) sort. It holds every norm, as the reference's list does: 21 bytes a step
     * in memory, 8 in {@link #state()}.
     *
     * @param percentile in (0, 100]; the paper's experiments use 10
     * @return a new AutoClip threshold with an empty history
     * @throws IllegalArgumentException if {@code percentile} is out of range
     */
    public static Threshold autoClip(double percentile) {
        checkPercentile(percentile);
        return new AutoClip(percentile, new OrderStatisticTree());
    }

    /**
     * {@link #zClip(double, double, int, double)} with the reference's defaults: alpha 0.97, zThreshold 2.5, 25 warm-up steps, maxNorm 1.
     *
     * @return a new ZClip threshold, at the start of its warm-up
     */
    public static Threshold zClip() {
        return zClip(0.97, 2.5, 25, 1.0);
    }

    /**
     * ZClip (Kumar, Owen, Ashkboos and others, "ZClip: Adaptive Spike Mitigation for LLM
     * Pre-Training", 2025; reference {@code zclip/zclip.py} in bluorion-com/ZClip, mode "zscore" with
     * clip option "adaptive_scaling", clip factor 1, no skipping on spikes), eps = 1e-6:
     * <ul>
     *   <li><b>Warm-up</b>, the first {@code warmupSteps} finite norms: each is collected, and the
     *       bound is {@code maxNorm}. After the last one, the moving mean and variance start as the
     *       collected norms' mean and population variance, each summed in order, as Python's
     *       {@code sum} before 3.12 does.
     *   <li><b>After warm-up</b>: {@code std = sqrt(var)}, {@code z = (g - mean) / (std + eps)}. A
     *       spike is {@code z > zThreshold}: then {@code x = mean + (zThreshold * std) / (z / zThreshold)}
     *       (in that order, as the reference computes {@code mean + zThreshold^2 std / z}) and the
     *       bound is {@code min(x, maxNorm)}. Otherwise {@code x = g} and the bound is {@code maxNorm}.
     *   <li><b>Moving averages</b>, with x as above: {@code mean = alpha * mean + (1 - alpha) * x},
     *       then {@code var = alpha * var + (1 - alpha) * (x - mean)^2} with the new mean.
     * </ul>
     *
     * @param alpha the moving averages' smoothing factor, in [0, 1]
     * @param zThreshold the z-score above which a norm is a spike, finite and > 0
     * @param warmupSteps the finite norms collected before the moving averages start, >= 1
     * @param maxNorm the cap on every bound, >= 0; {@code Double.POSITIVE_INFINITY} for none
     * @return a new ZClip threshold, at the start of its warm-up
     * @throws IllegalArgumentException if an argument is out of range
     */
    public static Threshold zClip(double alpha, double zThreshold, int warmupSteps, double maxNorm) {
        if (!(alpha >= 0 && alpha <= 1)) {
            throw new IllegalArgumentException("alpha must be in [0, 1], was " + alpha);
        }
        if (!(zThreshold > 0 && zThreshold < Double.POSITIVE_INFINITY)) {
            throw new IllegalArgumentException("zThreshold must be finite and > 0, was " + zThreshold);
        }
        if (warmupSteps < 1) {
            throw new IllegalArgumentException("warmupSteps must be >= 1, was " + warmupSteps);
        }
        SegmentChecks.checkMaxNorm(maxNorm);
        return new ZClip(alpha, zThreshold, warmupSteps, maxNorm + 0.0);
    }

    private static void checkPercentile(double percentile) {
        if (!(percentile > 0 && percentile <= 100)) {
            throw new IllegalArgumentException("percentile must be in (0, 100], was " + percentile);
        }
    }

    /**
     * Everything this threshold has learned, and its kind and configuration, as a new array: keep it
     * in a checkpoint and pass it to {@link #restore(double[])}. Its first entry names the kind (1
     * fixed, 2 AutoClip, 3 ZClip).
     *
     * @return the state, a new array
     */
    public abstract double[] state();

    /**
     * A new threshold of this kind and configuration, in the state {@code state} records: the steps
     * after it give the thresholds, to the bit, that the thresholds after the one that wrote it gave.
     * This threshold does not change. The new one belongs to no Clipper yet.
     *
     * @param state an array {@link #state()} returned, from a threshold of this kind and configuration
     * @return the restored threshold
     * @throws IllegalArgumentException if {@code state} was written by another kind of threshold or
     *     another configuration, or is not a state at all (wrong length, values out of range)
     */
    public abstract Threshold restore(double[] state);

    /**
     * The step's bound for the step's global norm, as the references compute it (AutoClip with the
     * norm already in its history); changes nothing, so that a step that fails later leaves no trace.
     */
    abstract double bound(double norm);

    /** Takes a finite norm into the state, once its step has succeeded; a non-finite one changes nothing. */
    abstract void observe(double norm);

    /** Whether this threshold is always the same number (and so may be shared by Clippers). */
    boolean isFixed() {
        return false;
    }

    /** Binds this threshold to {@code clipper}; an adaptive one binds once. */
    final synchronized void claim(Object clipper) {
        if (owner != null && !isFixed()) {
            throw new IllegalStateException(this + " already belongs to a Clipper: one Clipper per adaptive"
                    + " threshold (build another with restore(state()) to copy it)");
        }
        owner = clipper;
    }

    private static double[] checkedState(double[] state, double kind, int length, boolean exact, Threshold receiver) {
        if (state == null) {
            throw new NullPointerException("state is null");
        }
        if (state.length < 1 || state[0] != kind) {
            String what = state.length < 1 ? "empty" : "a state of kind " + state[0];
            throw new IllegalArgumentException("state is " + what + ", not one of " + receiver);
        }
        if (exact ? state.length != length : state.length < length) {
            throw new IllegalArgumentException("state has " + state.length + " entries; a state of " + receiver
                    + " has " + (exact ? "" : "at least ") + length);
        }
        return state;
    }

    private static void checkSame(String name, double stored, double configured, Threshold receiver) {
        if (Double.doubleToLongBits(stored) != Double.doubleToLongBits(configured)) {
            throw new IllegalArgumentException("state has " + name + " " + stored + ", but this is " + receiver
                    + ": restore a state on a threshold of the same configuration");
        }
    }

    private static void checkNorm(String name, double value) {
        if (!(value >= 0 && value <= Double.MAX_VALUE)) {
            throw new IllegalArgumentException("state's " + name + " is " + value + ", not a finite norm >= 0");
        }
    }

    private static String number(double value) {
        return value == Math.rint(value) && Math.abs(value) < 1e15 ? Long.toString((long) value)
                : String.format(Locale.ROOT, "%s", value);
    }

    /** {@code fixed(maxNorm)}. */
    private static final class Fixed extends Threshold {
        private final double maxNorm;

        Fixed(double maxNorm) {
            this.maxNorm = maxNorm;
        }

        @Override
        double bound(double norm) {
            return maxNorm;
        }

        @Override
        void observe(double norm) {}

        @Override
        boolean isFixed() {
            return true;
        }

        @Override
        public double[] state() {
            return new double[] {FIXED, maxNorm};
        }

        @Override
        public Threshold restore(double[] state) {
            checkedState(state, FIXED, 2, true, this);
            checkSame("maxNorm", state[1], maxNorm, this);
            return new Fixed(maxNorm);
        }

        @Override
        public String toString() {
            return "fixed(" + number(maxNorm) + ")";
        }
    }

    /** {@code autoClip(percentile)}; state: {@code [2, percentile, n, n norms ascending]}. */
    private static final class AutoClip extends Threshold {
        private final double percentile;
        private final OrderStatisticTree history;

        AutoClip(double percentile, OrderStatisticTree history) {
            this.percentile = percentile;
            this.history = history;
        }

        @Override
        synchronized double bound(double norm) {
            boolean finite = Double.isFinite(norm);
            int n = history.size() + (finite ? 1 : 0);
            if (n == 0) {
                return Double.POSITIVE_INFINITY;
            }
            // numpy's linear method: virtual index (n - 1) q, q = percentile / 100, then _lerp.
            double index = (n - 1) * (percentile / 100);
            double below = Math.floor(index);
            int rank = finite ? history.rank(norm) : n;
            if (below >= n - 1) {
                return select(n - 1, norm, rank);
            }
            int j = (int) below;
            double t = index - below;
            double a = select(j, norm, rank);
            double b = select(j + 1, norm, rank);
            double difference = b - a;
            return t >= 0.5 ? b - difference * (1 - t) : a + difference * t;
        }

        /** The k-th smallest of the history with {@code norm} inserted at {@code rank} (none when rank is the size plus one). */
        private double select(int k, double norm, int rank) {
            return k < rank ? history.select(k) : k == rank ? norm : history.select(k - 1);
        }

        @Override
        synchronized void observe(double norm) {
            if (Double.isFinite(norm)) {
                history.add(norm);
            }
        }

        @Override
        public synchronized double[] state() {
            int n = history.size();
            double[] state = new double[3 + n];
            state[0] = AUTO_CLIP;
            state[1] = percentile;
            state[2] = n;
            history.copyAscending(state, 3);
            return state;
        }

        @Override
        public Threshold restore(double[] state) {
            checkedState(state, AUTO_CLIP, 3, false, this);
            checkSame("percentile", state[1], percentile, this);
            double n = state[2];
            if (n != state.length - 3) {
                throw new IllegalArgumentException("state says it holds " + number(n) + " norms but holds "
                        + (state.length - 3));
            }
            for (int i = 3; i < state.length; i++) {
                checkNorm("norm " + (i - 3), state[i]);
                if (i > 3 && state[i] < state[i - 1]) {
                    throw new IllegalArgumentException("state's norms are not in ascending order at " + (i - 3));
                }
            }
            return new AutoClip(percentile, OrderStatisticTree.ofAscending(state, 3, state.length));
        }

        @Override
        public String toString() {
            return "autoClip(" + number(percentile) + ")";
        }
    }

    /**
     * {@code zClip(alpha, zThreshold, warmupSteps, maxNorm)}; state:
     * {@code [3, alpha, zThreshold, warmupSteps, maxNorm, started, mean, var, k, k warm-up norms]},
     * started 0 or 1, and k = 0 once started.
     */
    private static final class ZClip extends Threshold {
        private static final double EPS = 1e-6;
        private static final int HEADER = 9;

        private final double alpha;
        private final double zThreshold;
        private final int warmupSteps;
        private final double maxNorm;
        private boolean started;
        private double mean;
        private double var;
        /** The warm-up norms so far; grown as they come, so that a long warm-up costs only what it holds. */
        private double[] warmup = new double[0];
        private int collected;

        ZClip(double alpha, double zThreshold, int warmupSteps, double maxNorm) {
            this.alpha = alpha;
            this.zThreshold = zThreshold;
            this.warmupSteps = warmupSteps;
            this.maxNorm = maxNorm;
        }

        @Override
        synchronized double bound(double g) {
            return started && Double.isFinite(g) ? Math.min(spikeBound(g), maxNorm) : maxNorm;
        }

        /** After the warm-up: the uncapped spike threshold if {@code g} is a spike, else +Infinity. */
        private double spikeBound(double g) {
            double std = Math.sqrt(var);
            double z = (g - mean) / (std + EPS);
            if (z > zThreshold) {
                double eta = z / zThreshold;
                return mean + (zThreshold * std) / eta;
            }
            return Double.POSITIVE_INFINITY;
        }

        @Override
        synchronized void observe(double g) {
            if (!Double.isFinite(g)) {
                return;
            }
            if (!started) {
                if (collected == warmup.length) {
                    warmup = Arrays.copyOf(warmup, (int) Math.min(warmupSteps, Math.max(32, 2L * collected)));
                }
                warmup[collected++] = g;
                if (collected == warmupSteps) {
                    start();
                }
                return;
            }
            double spike = spikeBound(g);
            double x = spike < Double.POSITIVE_INFINITY ? spike : g;
            mean = alpha * mean + (1 - alpha) * x;
            double d = x - mean;
            var = alpha * var + (1 - alpha) * (d * d);
        }

        /** The moving averages' start: the warm-up norms' mean and population variance, summed in order. */
        private void start() {
            double sum = 0;
            for (int i = 0; i < collected; i++) {
                sum += warmup[i];
            }
            mean = sum / collected;
            double squares = 0;
            for (int i = 0; i < collected; i++) {
                double d = warmup[i] - mean;
                squares += d * d;
            }
            var = squares / collected;
            started = true;
            collected = 0;
            warmup = new double[0];
        }

        @Override
        public synchronized double[] state() {
            double[] state = new double[HEADER + collected];
            state[0] = Z_CLIP;
            state[1] = alpha;
            state[2] = zThreshold;
            state[3] = warmupSteps;
            state[4] = maxNorm;
            state[5] = started ? 1 : 0;
            state[6] = mean;
            state[7] = var;
            state[8] = collected;
            System.arraycopy(warmup, 0, state, HEADER, collected);
            return state;
        }

        @Override
        public Threshold restore(double[] state) {
            checkedState(state, Z_CLIP, HEADER, false, this);
            checkSame("alpha", state[1], alpha, this);
            checkSame("zThreshold", state[2], zThreshold, this);
            checkSame("warmupSteps", state[3], warmupSteps, this);
            checkSame("maxNorm", state[4], maxNorm, this);
            double started = state[5];
            double k = state[8];
            if (started != 0 && started != 1) {
                throw new IllegalArgumentException("state's started flag is " + started + ", not 0 or 1");
            }
            if (!(k >= 0 && k < warmupSteps && k == Math.rint(k)) || (started == 1 && k != 0)
                    || k != state.length - HEADER) {
                throw new IllegalArgumentException("state holds " + (state.length - HEADER) + " warm-up norms and says "
                        + number(k) + (started == 1 ? " after the warm-up" : "") + "; a " + this
                        + " state holds 0 to " + (warmupSteps - 1) + " during the warm-up and 0 after it");
            }
            checkNorm("mean", state[6]);
            checkNorm("variance", state[7]);
            if (started == 0 && (state[6] != 0 || state[7] != 0)) {
                throw new IllegalArgumentException("state has a mean and variance before the warm-up ended");
            }
            ZClip restored = new ZClip(alpha, zThreshold, warmupSteps, maxNorm);
            restored.started = started == 1;
            restored.mean = state[6];
            restored.var = state[7];
            restored.collected = (int) k;
            restored.warmup = new double[restored.collected];
            for (int i = 0; i < restored.collected; i++) {
                checkNorm("warm-up norm " + i, state[HEADER + i]);
                restored.warmup[i] = state[HEADER + i];
            }
            return restored;
        }

        @Override
        public String toString() {
            return "zClip(" + number(alpha) + ", " + number(zThreshold) + ", " + warmupSteps + ", " + number(maxNorm) + ")";
        }
    }

    /** For messages and logs: the factory call that makes this threshold's configuration. */
    @Override
    public abstract String toString();
}
