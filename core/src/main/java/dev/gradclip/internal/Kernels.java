package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;

/**
 * The kernels of gradient clipping, over one block of one segment. Not API: {@link dev.gradclip.GradClip} is.
 *
 * <p><b>One summation order on every CPU.</b> Both implementations, {@link ScalarKernels} (the
 * reference) and {@link VectorKernels}, sum a block in the same order: element {@code k} of the
 * block goes to lane {@code k mod 32} while a whole row of {@link #LANES} lanes remains; each lane
 * accumulates its terms in order from zero with one rounding per step ({@code fma(x, x, lane)} for
 * squares); the lanes are folded by halving (lane {@code j} += lane {@code j + h} for
 * {@code h = 16, 8, 4, 2, 1}); the remaining {@code < 32} elements are accumulated in order into a
 * tail sum, and the block's sum is {@code fold + tail}. The lane count does not follow the
 * hardware's vector width, so every width and the fallback return the same bits.
 *
 * <p>Indices are element indices into the segment, of the given {@link DType}; {@code count <=}
 * {@link #BLOCK}. Callers validate the segment first: the kernels check nothing.
 */
public interface Kernels {

    /** Elements per block: a lane sums at most BLOCK/LANES = 128 terms before its block is folded. */
    int BLOCK = 4096;

    /** The logical lanes of the summation order, whatever the vector width. */
    int LANES = 32;

    /**
     * Sums the block's terms, {@code (x*scale)^2} when {@code squares} else {@code |x*scale|}, into
     * {@code out.sum}. With {@code max}, writes {@code max |x*scale|} (NaN if any element is NaN) into
     * {@code out.max}; without, only the sum's status: NaN or +Infinity if the sum is, else 0 (for
     * FLOAT64 pass {@code max}: its sum can overflow with finite elements). {@code scale} is a power of
     * two and applies to FLOAT64 only (the other types never need it); pass 1.
     */
    void normBlock(DType type, boolean squares, boolean max, MemorySegment segment, long from, int count,
                   double scale, BlockFigures out);

    /**
     * Multiplies each element by {@code c} (at least 0, or NaN), rounded to the element's type to
     * nearest even: in double for FLOAT64; for the other types by {@code (float) c}, in float32, then
     * rounded to the type, unless {@code (float) c} would be subnormal ({@link Clipping#floatCoefficient}):
     * then {@code (float) (x * c)} in double, then rounded to the type. NaNs follow one rule (the NaN
     * bits of {@link dev.gradclip.GradClip}): a NaN element is written quieted, and a NaN made by the
     * product (a NaN {@code c}, or infinity times 0) is the canonical quiet NaN; factors 0 and NaN are
     * written from the bits by {@link ScalarKernels#scaleByZeroOrNaN}, since the hardware decides the
     * bits of those products.
     */
    void scaleBlock(DType type, MemorySegment segment, long from, int count, double c);

    /** Clamps each element to {@code [-bound, bound]}; {@code bound} is representable in the type; a NaN is written quieted. */
    void clampBlock(DType type, MemorySegment segment, long from, int count, double bound);

    /** One line for logs and reports, e.g. {@code "vector (256-bit doubles, 8 accumulators, 32 lanes)"}. */
    String description();
}
