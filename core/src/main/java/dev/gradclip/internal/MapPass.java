package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;

/**
 * The passes that write: scale every tensor by one factor, or clamp every element to a bound.
 * Element by element, so no chunk depends on another.
 */
final class MapPass implements BlockPass {

    private enum Op { SCALE, CLAMP }

    private final Kernels kernels;

    // The call, read by every worker (set before the scheduler hands off).
    private Op op;
    private double argument;

    MapPass(Kernels kernels) {
        this.kernels = kernels;
    }

    /** Multiplies every element by {@code c}: in double for float64, by {@code (float) c} for the other types. */
    void scale(Scheduler scheduler, TensorTable table, double c) {
        run(scheduler, table, Op.SCALE, c);
    }

    /** Clamps every element to {@code [-bound, bound]}, the bound rounded to each tensor's type; skips read-only tensors. */
    void clamp(Scheduler scheduler, TensorTable table, double bound) {
        run(scheduler, table, Op.CLAMP, bound);
    }

    private void run(Scheduler scheduler, TensorTable table, Op op, double argument) {
        this.op = op;
        this.argument = argument;
        scheduler.run(table, this);
    }

    @Override
    public void block(int worker, int tensor, DType type, MemorySegment segment, long from, int count) {
        switch (op) {
            case SCALE -> kernels.scaleBlock(type, segment, from, count, argument);
            case CLAMP -> {
                if (!segment.isReadOnly()) { // read-only tensors were checked to need no change
                    kernels.clampBlock(type, segment, from, count, boundIn(type, argument));
                }
            }
        }
    }

    /** Whether clamping tensor {@code i} to {@code bound} would change an element (a NaN never changes). */
    static boolean clampChanges(TensorTable table, int i, double bound) {
        DType type = table.type(i);
        double b = boundIn(type, bound);
        MemorySegment segment = table.segment(i);
        for (long k = 0, n = table.elements(i); k < n; k++) {
            double x = type == DType.FLOAT64 ? segment.getAtIndex(ScalarKernels.DOUBLE, k)
                    : ScalarKernels.load(type, segment, k);
            if (Math.abs(x) > b) {
                return true;
            }
        }
        return false;
    }

    /** The clamp bound rounded to the type, as torch converts a Python scalar to the tensor's dtype. */
    static double boundIn(DType type, double bound) {
        return switch (type) {
            case FLOAT64 -> bound;
            case FLOAT32 -> (float) bound;
            case FLOAT16 -> ScalarKernels.float16ToFloat(ScalarKernels.toFloat16((float) bound));
            case BFLOAT16 -> Float.intBitsToFloat(ScalarKernels.toBfloat16((float) bound) << 16);
        };
    }
}
