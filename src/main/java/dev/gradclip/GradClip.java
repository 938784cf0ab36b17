package dev.gradclip;

import dev.gradclip.internal.GlobalNorm;
import dev.gradclip.internal.KernelProvider;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;

/**
 * Global-norm gradient clipping for float32 gradients, as {@code torch.nn.utils.clip_grad_norm_}.
 *
 * <p>One L2 norm is computed over every element of every buffer. When it exceeds {@code maxNorm},
 * every element of every buffer is multiplied by the same coefficient
 * {@code c = maxNorm / (norm + 1e-6)}, which shortens the update and keeps its direction.
 *
 * <h2>Buffers</h2>
 * Each {@link MemorySegment} holds float32 values in native byte order: off-heap, memory-mapped or
 * on the heap, at any alignment. A {@code float[][]} holds one array per parameter tensor.
 *
 * <h2>Accuracy</h2>
 * The norm has a relative error of at most 1e-13 against the exact value, for any finite input
 * and any element count (the derived bound, 8e-15 on 512-bit hardware, is
 * {@link GlobalNorm#relativeErrorBound(int)}). Squares are accumulated in double, so there is no
 * overflow and no underflow: two grads of 1e20 give 1.414e20, where torch's float32 sum gives
 * infinity and zeroes the grads. The result is the same to the bit on every run on one machine; the
 * vector width of the CPU can change its last bits.
 *
 * <h2>Non-finite elements</h2>
 * A NaN element makes the norm NaN; an infinite element (and no NaN) makes it +Infinity. Clipping
 * then does what torch 1.13 does: a NaN norm makes every element NaN, and an infinite norm gives
 * {@code c = 0}, so finite elements become (signed) zeros and infinite ones NaN. Only
 * {@code maxNorm = +Infinity} leaves such gradients untouched.
 *
 * <h2>Scaling</h2>
 * When the norm is at most {@code maxNorm}, nothing is written. Otherwise {@code c} is computed in
 * double from the accurate norm, rounded once to float32 ({@code c32 = (float) c}), and every element
 * {@code g} becomes the float32 product {@code g * c32}: one common coefficient, so ratios between
 * elements and between tensors are kept to within float32 rounding, and each element is within one
 * ulp of {@code (float) (g * c)}. Torch rounds twice in float32 ({@code reciprocal(norm + 1e-6) *
 * maxNorm}) and is one ulp off on its own seed example; gradclip is not.
 *
 * <h2>Errors</h2>
 * Bad arguments throw before anything is written, with a message that names the argument and the
 * segment index: {@code maxNorm} negative or NaN ({@link IllegalArgumentException}); a null list or
 * element ({@link NullPointerException}); a byte size that is not a multiple of 4, two segments
 * that overlap in memory, or a read-only segment that has to be scaled
 * ({@link IllegalArgumentException}); a segment whose arena is closed
 * ({@link IllegalStateException}) or that is confined to another thread
 * ({@link WrongThreadException}).
 *
 * <h2>Threads and allocation</h2>
 * Calls are thread-safe on distinct buffers. The {@code List<MemorySegment>} methods allocate
 * nothing after warm-up for native segments; the {@code float[][]} methods wrap each array in a
 * segment per call.
 *
 * <h2>Speed</h2>
 * The kernels use the Vector API when the JVM runs with {@code --add-modules=jdk.incubator.vector};
 * without it gradclip logs one warning and uses its scalar kernels, which give results within the
 * same bound.
 */
public final class GradClip {

    private GradClip() {}

    /** The L2 norm over every element of every segment. */
    public static double totalNorm(List<MemorySegment> grads) {
        return GlobalNorm.totalNorm(KernelProvider.kernels(), grads);
    }

    /**
     * Clips the segments in place to a global L2 norm of {@code maxNorm} and returns the norm they
     * had before. {@code maxNorm = +Infinity} never clips.
     */
    public static double clipGradNorm(List<MemorySegment> grads, double maxNorm) {
        return GlobalNorm.clipGradNorm(KernelProvider.kernels(), grads, maxNorm);
    }

    /** The L2 norm over every element of every array. */
    public static double totalNorm(float[][] grads) {
        return totalNorm(segments(grads));
    }

    /** Clips the arrays in place to a global L2 norm of {@code maxNorm}; returns the norm before. */
    public static double clipGradNorm(float[][] grads, double maxNorm) {
        return clipGradNorm(segments(grads), maxNorm);
    }

    /**
     * The coefficient {@link #clipGradNorm} applies for a norm: {@code maxNorm / (norm + 1e-6)}
     * when the norm exceeds {@code maxNorm} or is NaN, else 1 (nothing is written).
     */
    public static double clipCoefficient(double norm, double maxNorm) {
        return GlobalNorm.clipCoefficient(norm, maxNorm);
    }

    private static List<MemorySegment> segments(float[][] grads) {
        if (grads == null) {
            throw new NullPointerException("grads is null");
        }
        MemorySegment[] segments = new MemorySegment[grads.length];
        for (int i = 0; i < grads.length; i++) {
            if (grads[i] == null) {
                throw new NullPointerException("grads[" + i + "] is null");
            }
            segments[i] = MemorySegment.ofArray(grads[i]);
        }
        return Arrays.asList(segments);
    }
}
