package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.util.function.IntFunction;

/**
 * Argument checks. Every check runs before the first write, and each message names the argument
 * and the tensor, by name and index.
 */
public final class SegmentChecks {

    private SegmentChecks() {}

    public static void checkMaxNorm(double maxNorm) {
        if (!(maxNorm >= 0)) {
            throw new IllegalArgumentException(
                    "maxNorm must be >= 0 (or +Infinity for no clipping), was " + maxNorm);
        }
    }

    /** Not null, and a whole number of elements of the type. */
    public static void checkShape(MemorySegment segment, DType type, int index, IntFunction<String> label) {
        if (segment == null) {
            throw new NullPointerException(label.apply(index) + " is null");
        }
        if (type == null) {
            throw new NullPointerException(label.apply(index) + " has a null dtype");
        }
        if (segment.byteSize() % type.byteSize() != 0) {
            throw new IllegalArgumentException(label.apply(index) + " has " + segment.byteSize()
                    + " bytes, not a multiple of " + type.byteSize() + " (" + type.name().toLowerCase(java.util.Locale.ROOT)
                    + " elements)");
        }
    }

    /** Segments that share memory would be counted and scaled twice. */
    public static void checkDisjoint(MemorySegment[] segments, IntFunction<String> label) {
        Overlaps.requireDisjoint(segments, segments.length, label);
    }

    public static String name(int index) {
        return "grads[" + index + "]";
    }
}
