package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntFunction;

/**
 * Adaptive gradient clipping, unit by unit (Brock, De, Smith and Simonyan, "High-Performance
 * Large-Scale Image Recognition Without Normalization", ICML 2021), with the rule of
 * {@code timm.utils.agc.adaptive_clip_grad} and optax's {@code adaptive_grad_clip}: for each unit,
 * {@code max = clipFactor * max(‖W‖, eps)}; when {@code ‖G‖ >= max}, {@code G *= max / max(‖G‖, 1e-6)}.
 *
 * <p>A unit is a contiguous slice: one slice along the first dimension of a tensor of two or more
 * dimensions, or the whole tensor. So the units are tensors in their own right, and a {@link Plan}
 * lays them out as {@link UnitRuns}: runs of consecutive units of one pair of tensors. One pass over
 * the runs, on the engine's threads, gives each unit of both sets the norm that gradclip computes for
 * that slice alone (the same bits for any thread count and CPU, within the L2 bound of
 * {@link Clipping#l2Bound()}), then the unit's factor, and scales the units that clip while their
 * run is still in cache. When a gradient tensor is read-only, that pass writes nothing, and a scale pass follows
 * once every unit that has to change is known to be writable.
 */
public final class UnitClipping {

    /** timm's floor on the gradient norm in the factor's divisor. */
    public static final double GRAD_NORM_FLOOR = 1e-6;

    /** Work for the shared engine's threads, taken by one call at a time; others run on their own thread. */
    private static final AtomicBoolean SHARED_BUSY = new AtomicBoolean();
    private static Engine shared; // created and used only while SHARED_BUSY is held

    private UnitClipping() {}

    /** The units of one pair of tensor sets, built once and reused for every step. Immutable but for its scratch. */
    public static final class Plan {
        private final Object params;
        /**
         * The tensors of both sets, whole: the bytes and the access of the units, from which the
         * engine decides how many threads the passes over {@link #runs} take.
         */
        private final TensorTable sets;
        /** {@code firstUnit[t]} is tensor t's first unit; {@code firstUnit[tensors]} all units. */
        private final int[] firstUnit;
        /**
         * Whether no gradient tensor that holds elements is read-only: then the unit pass may scale as
         * it goes, since no unit can fail the write check.
         */
        private final boolean writable;
        /** Names tensor t of the gradients for messages (and {@code tensors + t} of the parameters). */
        private final IntFunction<String> label;
        /** The passes over the same entries, in runs of consecutive units. */
        private final UnitRuns runs;

        private Plan(Object params, TensorTable sets, int[] firstUnit, boolean writable, IntFunction<String> label,
                     UnitRuns runs) {
            this.params = params;
            this.sets = sets;
            this.firstUnit = firstUnit;
            this.writable = writable;
            this.runs = runs;
            this.label = label;
        }

        /** Whether this plan was built for these parameters (by identity). */
        public boolean isFor(Object params) {
            return this.params == params;
        }

        /**
         * Entry {@code i}'s norm from the last clip with this plan; tensor t's entries start at
         * {@code 2 firstUnit[t]}: its c gradient units, then its c parameter units.
         */
        public double norm(int i) {
            return runs.norm(i);
        }

        /** The number of units. */
        public int units() {
            return firstUnit[firstUnit.length - 1];
        }
    }

    /** A tensor's unit count: none when it is empty, its first dimension for two or more dimensions, else one. */
    static long unitsOf(long[] shape, long elements) {
        if (elements == 0) {
            return 0;
        }
        return shape == null || shape.length < 2 ? 1 : shape[0];
    }

    /**
     * The plan for gradients {@code grads} and parameters {@code params} of the same shapes
     * ({@code shapes[t]}, null for one dimension), checked by the caller; {@code paramsKey}
     * identifies the parameters for {@link Plan#isFor}. Rejects parameters that share memory with
     * gradients, naming both by {@code label} (kept for the plan's messages): tensor t of grads is
     * {@code t}, of params {@code tensors + t}.
     */
    public static Plan plan(Object paramsKey, TensorTable grads, TensorTable params, long[][] shapes,
                            IntFunction<String> label) {
        int tensors = grads.size();
        MemorySegment[] both = new MemorySegment[2 * tensors];
        for (int t = 0; t < tensors; t++) {
            both[t] = grads.segment(t);
            both[tensors + t] = params.segment(t);
        }
        Overlaps.requireDisjoint(both, both.length, label);
        int[] firstUnit = new int[tensors + 1];
        long units = 0;
        for (int t = 0; t < tensors; t++) {
            firstUnit[t] = (int) units;
            units += unitsOf(shapes[t], grads.elements(t));
            if (units > (Integer.MAX_VALUE - 1) / 2) {
                throw new IllegalArgumentException("grads has more than " + (Integer.MAX_VALUE - 1) / 2
                        + " units by " + label.apply(t) + ": too many for one call");
            }
        }
        firstUnit[tensors] = (int) units;
        boolean writable = true;
        for (int t = 0; t < tensors; t++) {
            writable &= !grads.segment(t).isReadOnly() || grads.segment(t).byteSize() == 0;
        }
        DType[] types = new DType[both.length];
        String[] names = new String[both.length];
        for (int t = 0; t < tensors; t++) {
            types[t] = grads.type(t);
            types[tensors + t] = params.type(t);
            names[t] = grads.name(t);
            names[tensors + t] = params.name(t);
        }
        return new Plan(paramsKey, TensorTable.of(both, types, names), firstUnit, writable, label,
                runs(grads, params, firstUnit));
    }

    /** The runs of both passes, tensor by tensor. */
    private static UnitRuns runs(TensorTable grads, TensorTable params, int[] firstUnit) {
        int tensors = grads.size();
        int runs = 0;
        for (int t = 0; t < tensors; t++) {
            int count = firstUnit[t + 1] - firstUnit[t];
            if (count > 0) {
                runs += UnitRuns.runsFor(count, grads.elements(t) / count);
            }
        }
        UnitRuns layout = new UnitRuns(runs, 2 * firstUnit[tensors]);
        int run = 0;
        for (int t = 0; t < tensors; t++) {
            int count = firstUnit[t + 1] - firstUnit[t];
            if (count > 0) {
                run = layout.add(run, grads.segment(t), grads.type(t), params.segment(t), params.type(t), count,
                        grads.elements(t) / count, 2 * firstUnit[t]);
            }
        }
        return layout;
    }

    /** A unit's bound, {@code clipFactor * max(paramNorm, eps)}: NaN for a NaN parameter norm. */
    static double bound(double paramNorm, double clipFactor, double eps) {
        return Math.max(paramNorm, eps) * clipFactor;
    }

    /** Whether a unit clips: its gradient norm finite and at least its bound (never for a NaN bound). */
    static boolean clips(double gradNorm, double bound) {
        return gradNorm >= bound && gradNorm <= Double.MAX_VALUE;
    }

    /** The factor of a unit that clips. */
    static double factor(double gradNorm, double bound) {
        return bound / Math.max(gradNorm, GRAD_NORM_FLOOR);
    }

    /**
     * Clips with the shared multi-threaded engine when no other call holds it, else on the calling
     * thread: the same bits either way. {@code grads} is the gradients' table, for the read-only
     * check; the caller has checked access to both sets and the arguments.
     */
    public static int clip(Plan plan, TensorTable grads, double clipFactor, double eps) {
        if (!SHARED_BUSY.compareAndSet(false, true)) {
            return clip(Engine.ofThisThread(), plan, grads, clipFactor, eps);
        }
        try {
            if (shared == null) {
                // Its own engine even for one processor: Engine.ofThisThread() is that thread's alone.
                int threads = Runtime.getRuntime().availableProcessors();
                shared = new Engine(KernelProvider.kernels(), threads, Engine.DEFAULT_MIN_PARALLEL_BYTES);
            }
            return clip(shared, plan, grads, clipFactor, eps);
        } finally {
            SHARED_BUSY.set(false);
        }
    }

    /**
     * One AGC step on {@code engine}: every unit's norms and factor, and the units whose factor is not
     * 1 scaled. With every gradient tensor writable, one pass does it all; otherwise the first pass
     * writes nothing, every unit that has to change is checked to be writable, and a scale pass
     * follows. Returns the number of units whose gradient norm is finite and at least their bound;
     * the others keep every bit, and so does a unit whose factor comes out as exactly 1.
     */
    public static int clip(Engine engine, Plan plan, TensorTable grads, double clipFactor, double eps) {
        int workers = engine.chunksFor(plan.sets);
        if (plan.writable) {
            return plan.runs.unitPass(engine, workers, clipFactor, eps, true);
        }
        int clipped = plan.runs.unitPass(engine, workers, clipFactor, eps, false);
        boolean writes = false;
        for (int t = 0; t < grads.size(); t++) {
            int base = 2 * plan.firstUnit[t];
            int count = plan.firstUnit[t + 1] - plan.firstUnit[t];
            for (int k = 0; k < count; k++) {
                double c = plan.runs.factor(base + k);
                if (c != 1) {
                    writes = true;
                    if (grads.segment(t).isReadOnly()) {
                        throw new IllegalArgumentException(plan.label.apply(t) + " is read-only but its unit " + k
                                + " has to be scaled by " + c + " (adaptive clipping); nothing was written");
                    }
                }
            }
        }
        if (writes) {
            plan.runs.scalePass(engine, workers);
        }
        return clipped;
    }
}
