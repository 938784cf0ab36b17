package dev.gradclip;

import dev.gradclip.internal.Clipping;
import dev.gradclip.internal.Engine;
import dev.gradclip.internal.NormState;
import dev.gradclip.internal.NormType;
import dev.gradclip.internal.SegmentChecks;
import dev.gradclip.internal.TensorTable;
import dev.gradclip.internal.UnitClipping;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;

/**
 * Gradient clipping as torch names it: {@code clip_grad_norm_}, {@code clip_grads_with_norm_},
 * {@code clip_grad_value_}, and the norm alone; and adaptive clipping per unit,
 * {@link #adaptiveGradClip}. These static methods run on the calling thread (but
 * {@code adaptiveGradClip}, which uses threads); a {@link Clipper} adds threads, non-finite
 * policies, per-tensor reports, adaptive thresholds and sharding.
 *
 * <p><b>Global-norm clipping.</b> One norm is computed over every element of every tensor, and
 * every element of every tensor is multiplied by the same coefficient
 * {@code c = min(1, maxNorm / (norm + 1e-6))} whenever it is below 1, torch's rule: that shortens the
 * update and keeps its direction. A norm within 1e-6 below {@code maxNorm} is scaled too (by a factor
 * just below 1), and so is a norm near a {@code maxNorm} below 1e-6; when {@code c} is exactly 1
 * nothing is written.
 *
 * <p><b>Norm types.</b> {@code normType} is 2, 1, any finite p >= 1, or
 * {@code Double.POSITIVE_INFINITY} (the largest |g|), as torch's {@code norm_type}.
 *
 * <p><b>Accuracy.</b> Norms are accumulated in double for every dtype, with no overflow and no
 * underflow for finite input. Relative error against the exact norm: at most 1e-13 for normType 2
 * and 1 (derived: 7.6e-15 and 1.5e-14), exact for +Infinity, at most 1e-12 for other p (derived:
 * 1.1e-13); see {@code Clipping} in the internal package for the derivations. For normType 1, 2 and
 * +Infinity the result is the same to the bit on every CPU (any vector width, or none), for any
 * thread count and any sharding at tensor boundaries.
 *
 * <p><b>Scaling.</b> When {@code c} is 1, nothing is written. Otherwise each element becomes its dtype's round-to-nearest-even rounding of {@code g * c}: float64 multiplies
 * by the double {@code c}; float32 by {@code (float) c}, rounded once, within one ulp of
 * {@code (float) (g * c)}; float16 and bfloat16 widen exactly to float32, multiply by
 * {@code (float) c} and round to their type, within one ulp of the exact product. Where
 * {@code (float) c} would be subnormal (a norm beyond about 8.5e37 times {@code maxNorm}), the
 * 32- and 16-bit types multiply in double instead: float32 gets exactly {@code (float) (g * c)}, so
 * the direction survives however far the gradients exploded.
 *
 * <p><b>The clipped norm</b> (normType 2) is at most {@code maxNorm * (1 + 1e-6)} for float32 and
 * float64 when {@code maxNorm >= 1e-29}; for float16 at most {@code maxNorm * (1 + 2^-11 + 1e-6)}
 * when {@code maxNorm >= 0.04 * sqrt(n)}, n the element count; for bfloat16
 * {@code maxNorm * (1 + 2^-8 + 1e-6)} when {@code maxNorm >= 1e-33 * sqrt(n)}. Why: c is at most
 * {@code maxNorm / N} times {@code 1 + 3u} (N the computed norm, u = 2^-53), and N is within
 * 7.6e-15 of the exact norm; an element that rounds to a normal value of its type gains a factor
 * of at most {@code 1 + 2^-24} from {@code (float) c} (or {@code 1 + u} from the double product)
 * and {@code 1 + e} from its rounding (e = 2^-24, 2^-53, 2^-11, 2^-8 for float32, float64, float16,
 * bfloat16); one that rounds to a subnormal or zero gains at most half the type's smallest spacing,
 * h = 2^-150, 2^-1075, 2^-25, 2^-134. So the clipped norm is at most
 * {@code maxNorm (1 + e + 2^-23) + sqrt(n) h}, and {@code sqrt(n) h <= 8e-7 maxNorm} for
 * {@code n < 2^62} in the ranges above. Below them, correctly rounded subnormals cannot come closer:
 * {@code maxNorm = Float.MIN_VALUE} with grads {1, 1} gives 1.414 times {@code maxNorm}.
 *
 * <p><b>Bounds of zero.</b> {@code maxNorm} or {@code clipValue} {@code -0.0} is 0: no element
 * changes sign. {@code maxNorm = +Infinity} never clips, even for a NaN norm (torch would scale by
 * NaN there).
 *
 * <p><b>Non-finite elements.</b> A NaN element makes the norm NaN; an infinite one, and no NaN,
 * +Infinity. Clipping then does what torch does by default: a NaN norm makes every element NaN, an
 * infinite norm gives {@code c = 0}, so finite elements become (signed) zeros and infinite ones NaN.
 * Check the returned norm with {@link Double#isFinite} to skip such a step, or use a
 * {@link Clipper} with {@link NonFinite#SKIP} or {@link NonFinite#ERROR}.
 *
 * <p><b>NaN bits.</b> Every pass that writes ({@link #clipGradNorm}, {@link #clipGradsWithNorm},
 * {@link Clipper#clip}, {@link #clipGradValue}) writes NaNs by one rule, the same bits on every CPU,
 * with the vector or the scalar kernels, interpreted or compiled. A NaN element stays that NaN,
 * quieted: its sign and payload are kept and its quiet bit (the top significand bit:
 * {@code 0x0008000000000000} in float64, {@code 0x00400000} in float32, {@code 0x0200} in float16,
 * {@code 0x0040} in bfloat16) is set, so a quiet NaN keeps every bit. A NaN made from an element that
 * was not NaN (every element when the norm is NaN, an infinite element when the norm is infinite) is
 * the dtype's canonical quiet NaN, positive with an empty payload: {@code 0x7ff8000000000000},
 * {@code 0x7fc00000}, {@code 0x7e00}, {@code 0x7fc0}. Value clipping makes no NaN.
 *
 * <p><b>Errors.</b> Bad arguments throw before anything is written, naming the argument and the
 * tensor by name and index: {@code maxNorm} or {@code clipValue} negative or NaN, an unsupported
 * {@code normType}, a negative {@code totalNorm} ({@link IllegalArgumentException}); a read-only
 * tensor that must be written ({@link IllegalArgumentException}); a closed arena
 * ({@link IllegalStateException}); a segment confined to another thread ({@link WrongThreadException}).
 *
 * <p><b>Threads and allocation.</b> Thread-safe on distinct buffers. After warm-up the methods on
 * {@link Gradients} allocate nothing (but {@link #partialNorm}, which returns a new object).
 *
 * <p><b>Float32 lists and arrays.</b> The {@code List<MemorySegment>} and {@code float[][]} methods are
 * shorthands for the same methods on {@code Gradients.of(DType.FLOAT32, list)} and
 * {@code Gradients.of(arrays)}. A list is read once per call ({@code size()} and each {@code get(i)}
 * once for a {@code RandomAccess} list, else one iteration), so a list changed by another thread
 * during the call never gets an unchecked segment written or a segment scaled twice. The set built
 * from a list is reused by the next call on the same thread whose list holds the same segment
 * objects, so a loop over native segments allocates nothing after warm-up; the set is held weakly,
 * so it keeps no gradients alive, and is built again after a garbage collection. A
 * {@code float[][]} call wraps each array anew, so it builds its set on every call.
 */
public final class GradClip {

    private GradClip() {}

    // ---- Gradients (0.2) ----

    /**
     * The global norm of type {@code normType} over every element of every tensor.
     *
     * @param grads the tensors to read
     * @param normType 2, 1, any finite p >= 1, or {@code Double.POSITIVE_INFINITY} (the largest |g|)
     * @return the norm (NaN if an element is NaN; +Infinity if one is infinite, or on overflow)
     * @throws IllegalArgumentException if {@code normType} is none of those
     */
    public static double totalNorm(Gradients grads, double normType) {
        NormType type = NormType.of(normType);
        return Engine.ofThisThread().norm(Gradients.readable(grads), type, normType);
    }

    /**
     * The global L2 norm.
     *
     * @param grads the tensors to read
     * @return the L2 norm over every element of every tensor
     */
    public static double totalNorm(Gradients grads) {
        return totalNorm(grads, 2);
    }

    /**
     * Clips every tensor in place to a global norm of {@code maxNorm} and returns the norm they had
     * before: torch's {@code clip_grad_norm_(parameters, max_norm, norm_type)}.
     *
     * @param grads the tensors to clip in place
     * @param maxNorm the global norm to clip to, >= 0; +Infinity never clips
     * @param normType 2, 1, any finite p >= 1, or {@code Double.POSITIVE_INFINITY}
     * @return the global norm before clipping
     * @throws IllegalArgumentException if {@code maxNorm} or {@code normType} is out of range, or a
     *     tensor that must be scaled is read-only
     */
    public static double clipGradNorm(Gradients grads, double maxNorm, double normType) {
        SegmentChecks.checkMaxNorm(maxNorm);
        NormType type = NormType.of(normType);
        TensorTable table = Gradients.readable(grads);
        Engine engine = Engine.ofThisThread();
        double norm = engine.norm(table, type, normType);
        engine.clip(table, Clipping.coefficientFor(maxNorm, norm));
        return norm;
    }

    /**
     * {@link #clipGradNorm(Gradients, double, double)} with the L2 norm.
     *
     * @param grads the tensors to clip in place
     * @param maxNorm the global L2 norm to clip to, >= 0; +Infinity never clips
     * @return the global L2 norm before clipping
     */
    public static double clipGradNorm(Gradients grads, double maxNorm) {
        return clipGradNorm(grads, maxNorm, 2);
    }

    /**
     * Scales every tensor by {@code c = min(1, maxNorm / (totalNorm + 1e-6))} when that is below 1 (or
     * NaN), exactly as {@link #clipGradNorm} would for that norm: torch's
     * {@code clip_grads_with_norm_}, TensorFlow's {@code use_norm}. For a norm computed elsewhere, e.g.
     * all-reduced from {@link #partialNorm}s.
     *
     * @param grads the tensors to scale in place
     * @param maxNorm the global norm to clip to, >= 0; +Infinity never clips
     * @param totalNorm the norm to take the coefficient from, >= 0 or NaN
     * @throws IllegalArgumentException if {@code maxNorm} is out of range, {@code totalNorm} is
     *     negative, or a tensor that must be scaled is read-only
     */
    public static void clipGradsWithNorm(Gradients grads, double maxNorm, double totalNorm) {
        SegmentChecks.checkMaxNorm(maxNorm);
        if (totalNorm < 0) {
            throw new IllegalArgumentException("totalNorm must be >= 0 (or NaN), was " + totalNorm
                    + ": a negative coefficient would flip the gradients' sign");
        }
        Engine.ofThisThread().clip(Gradients.readable(grads), Clipping.coefficientFor(maxNorm, totalNorm));
    }

    /**
     * This worker's share of a global norm, to merge with the others' (see {@link NormPartial}).
     *
     * @param grads this worker's tensors
     * @param normType 2, 1, any finite p >= 1, or {@code Double.POSITIVE_INFINITY}
     * @return a new partial holding this worker's exact share
     * @throws IllegalArgumentException if {@code normType} is none of those
     */
    public static NormPartial partialNorm(Gradients grads, double normType) {
        NormType type = NormType.of(normType);
        NormState state = new NormState();
        Engine.ofThisThread().norm(Gradients.readable(grads), type, normType, false, false, state);
        return new NormPartial(state);
    }

    /**
     * Clamps every element to {@code [-clipValue, clipValue]}: torch's {@code clip_grad_value_},
     * optax's {@code clip}. The bound is rounded to each tensor's dtype, as torch does; NaN stays NaN
     * (a NaN keeps its sign and payload, quieted). A read-only tensor is fine
     * when nothing in it has to change.
     *
     * <p><b>This changes the update's direction</b> whenever an element is clamped: [50, 200, 30]
     * clipped at 100 gives [50, 100, 30], pointing elsewhere, while global-norm clipping to 100 gives
     * [24.0, 96.0, 14.4] (the norm is 208.3), the same direction, shorter.
     *
     * @param grads the tensors to clamp in place
     * @param clipValue the bound, >= 0
     * @throws IllegalArgumentException if {@code clipValue} is negative or NaN, or a read-only tensor
     *     has an element to clamp
     */
    public static void clipGradValue(Gradients grads, double clipValue) {
        if (!(clipValue >= 0)) {
            throw new IllegalArgumentException("clipValue must be >= 0, was " + clipValue);
        }
        clipValue += 0.0; // -0.0 is 0: clamping to [+0.0, -0.0] would make every element -0.0
        Engine.ofThisThread().clamp(Gradients.readable(grads), clipValue);
    }

    /**
     * The factor {@code clipGradNorm} applies for a norm: {@code min(1, maxNorm / (norm + 1e-6))}, NaN
     * for a NaN norm; 1 means nothing is written. {@code maxNorm = +Infinity} never clips, so its
     * factor is 1 even for a NaN norm; {@code maxNorm = -0.0} counts as 0.
     *
     * @param norm the global norm
     * @param maxNorm the global norm to clip to, >= 0
     * @return the factor (in [0, 1] for a norm >= 0), or NaN for a NaN norm
     * @throws IllegalArgumentException if {@code maxNorm} is negative or NaN
     */
    public static double clipCoefficient(double norm, double maxNorm) {
        SegmentChecks.checkMaxNorm(maxNorm);
        return Clipping.coefficientFor(maxNorm, norm);
    }

    // ---- adaptive gradient clipping ----

    /**
     * Adaptive gradient clipping (AGC; Brock, De, Smith and Simonyan, "High-Performance Large-Scale
     * Image Recognition Without Normalization", ICML 2021), unit by unit, with the rule of
     * {@code timm.utils.agc.adaptive_clip_grad} and optax's {@code adaptive_grad_clip}: for each unit
     * i, {@code max_i = clipFactor * max(‖W_i‖, eps)}; when {@code ‖G_i‖ >= max_i}, the unit becomes
     * {@code G_i * (max_i / max(‖G_i‖, 1e-6))}, scaled as a global clip scales (see the class
     * comment). Returns the number of units clipped.
     *
     * <p><b>Units.</b> Tensor t of {@code grads} pairs with tensor t of {@code params}, which must
     * have the same shape ({@link Gradients#shape}; the dtypes may differ). A tensor of two or more
     * dimensions has one unit per slice along its first dimension (an output row of a linear layer,
     * an output channel of a convolution); a tensor of one dimension (or none) is one unit; a tensor
     * with a dimension of size zero has none.
     *
     * <p><b>Numerics.</b> Each unit's norm is the L2 norm gradclip computes for that slice as a tensor
     * of its own: accumulated exactly across blocks, within 7.6e-15 of the exact norm, the same bits
     * for any thread count and CPU. A unit under its bound keeps every bit, and so does a unit whose
     * gradient norm is NaN or infinite, or whose bound is NaN (a NaN in its parameters; timm would
     * write NaN there) or infinite.
     *
     * <p><b>Threads.</b> Work of 1 MiB or more runs on all available processors, in one shared pool of
     * daemon threads; a call made while another thread's call holds the pool runs on its calling
     * thread. The bits are the same either way. The units are laid out once per pair of sets and
     * kept with {@code grads} for the next call with the same {@code params}: after that a call
     * allocates nothing.
     *
     * @param grads the gradient tensors to clip in place, unit by unit
     * @param params the parameter tensors the bounds come from, paired with {@code grads} by index
     * @param clipFactor the ratio of a unit's gradient norm to its parameter norm at which it clips,
     *     finite and > 0 (timm's default 0.01)
     * @param eps the least parameter norm a bound is taken from, finite and >= 0 (timm's default 1e-3),
     *     so that units whose parameters are zero still get a bound
     * @throws IllegalArgumentException before anything is written, naming the argument and the tensor:
     *     {@code clipFactor} or {@code eps} out of range, tensor counts or shapes that differ, parameters
     *     that share memory with gradients, a read-only gradient tensor with a unit to scale
     * @return the number of units clipped
     */
    public static int adaptiveGradClip(Gradients grads, Gradients params, double clipFactor, double eps) {
        if (grads == null) {
            throw new NullPointerException("grads is null");
        }
        if (params == null) {
            throw new NullPointerException("params is null");
        }
        if (!(clipFactor > 0 && clipFactor < Double.POSITIVE_INFINITY)) {
            throw new IllegalArgumentException("clipFactor must be finite and > 0, was " + clipFactor);
        }
        if (!(eps >= 0 && eps < Double.POSITIVE_INFINITY)) {
            throw new IllegalArgumentException("eps must be finite and >= 0, was " + eps);
        }
        TensorTable gradTable = Gradients.readable(grads);
        Gradients.readable(params);
        UnitClipping.Plan plan = grads.unitPlan();
        if (plan == null || !plan.isFor(params)) {
            plan = unitPlan(grads, params);
            grads.unitPlan(plan);
        }
        return UnitClipping.clip(plan, gradTable, clipFactor, eps);
    }

    /** Checks that the two sets pair up, then lays out their units. */
    private static UnitClipping.Plan unitPlan(Gradients grads, Gradients params) {
        int n = grads.size();
        if (params.size() != n) {
            throw new IllegalArgumentException("grads has " + n + " tensors but params has " + params.size()
                    + ": adaptiveGradClip pairs them by index");
        }
        long[][] shapes = new long[n][];
        for (int t = 0; t < n; t++) {
            long[] shape = grads.shape(t);
            if (!Arrays.equals(shape, params.shape(t))) {
                throw new IllegalArgumentException(label(grads, "grads", t) + " has shape " + Arrays.toString(shape)
                        + " but " + label(params, "params", t) + " has shape " + Arrays.toString(params.shape(t)));
            }
            shapes[t] = grads.shapeOrNull(t);
        }
        return UnitClipping.plan(params, grads.table(), params.table(), shapes,
                k -> k < n ? label(grads, "grads", k) : label(params, "params", k - n));
    }

    /** A tensor for messages, by name and index in its set: {@code "fc.weight" (params[3])}. */
    private static String label(Gradients set, String argument, int t) {
        String index = argument + "[" + t + "]";
        String name = set.name(t);
        return name.equals(SegmentChecks.name(t)) ? index : '"' + name + "\" (" + index + ')';
    }

    // ---- float32 lists and arrays, L2 ----

    /**
     * The L2 norm over every element of every float32 segment: {@code totalNorm(Gradients.of(FLOAT32,
     * grads))}, with the set reused while the list holds the same segments (see the class comment).
     *
     * @param grads float32 segments, one per tensor
     * @return the global L2 norm
     * @throws IllegalArgumentException as {@link Gradients#of(DType, List)}, naming the tensor
     */
    public static double totalNorm(List<MemorySegment> grads) {
        return totalNorm(float32(grads));
    }

    /**
     * Clips float32 segments in place to a global L2 norm of {@code maxNorm}:
     * {@code clipGradNorm(Gradients.of(FLOAT32, grads), maxNorm)}, with the set reused while the list
     * holds the same segments (see the class comment).
     *
     * @param grads float32 segments, one per tensor
     * @param maxNorm the global L2 norm to clip to, >= 0; +Infinity never clips
     * @return the global L2 norm before clipping
     * @throws IllegalArgumentException if {@code maxNorm} is negative or NaN, or as
     *     {@link Gradients#of(DType, List)}, naming the tensor
     */
    public static double clipGradNorm(List<MemorySegment> grads, double maxNorm) {
        SegmentChecks.checkMaxNorm(maxNorm);
        return clipGradNorm(float32(grads), maxNorm);
    }

    /**
     * The L2 norm over every element of every array: {@code totalNorm(Gradients.of(grads))}.
     *
     * @param grads the arrays, one per tensor
     * @return the global L2 norm
     */
    public static double totalNorm(float[][] grads) {
        return totalNorm(float32(grads));
    }

    /**
     * Clips the arrays in place to a global L2 norm of {@code maxNorm}:
     * {@code clipGradNorm(Gradients.of(grads), maxNorm)}.
     *
     * @param grads the arrays, one per tensor
     * @param maxNorm the global L2 norm to clip to, >= 0; +Infinity never clips
     * @return the global L2 norm before clipping
     * @throws IllegalArgumentException if {@code maxNorm} is negative or NaN
     */
    public static double clipGradNorm(float[][] grads, double maxNorm) {
        SegmentChecks.checkMaxNorm(maxNorm);
        return clipGradNorm(float32(grads), maxNorm);
    }

    private static Gradients float32(List<MemorySegment> grads) {
        return ListGradients.of(grads);
    }

    private static Gradients float32(float[][] grads) {
        if (grads == null) {
            throw new NullPointerException("grads is null");
        }
        return Gradients.of(grads);
    }
}
