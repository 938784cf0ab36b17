package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.util.List;
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

    /** The 0.1 lists: no nulls, float32 sizes, live, this thread's, disjoint. */
    public static void checkFloatList(List<MemorySegment> grads) {
        if (grads == null) {
            throw new NullPointerException("grads is null");
        }
        for (int i = 0, n = grads.size(); i < n; i++) {
            checkShape(grads.get(i), DType.FLOAT32, i, SegmentChecks::name);
        }
        Thread current = Thread.currentThread();
        for (int i = 0, n = grads.size(); i < n; i++) {
            MemorySegment segment = grads.get(i);
            if (!segment.scope().isAlive()) {
                throw new IllegalStateException(name(i) + " cannot be read: its arena is closed");
            }
            if (!segment.isAccessibleBy(current)) {
                throw new WrongThreadException(name(i) + " is confined to another thread than " + current);
            }
        }
        Overlaps.requireDisjoint(grads, SegmentChecks::name);
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
    public static void checkDisjoint(List<MemorySegment> segments, IntFunction<String> label) {
        Overlaps.requireDisjoint(segments, label);
    }

    public static String name(int index) {
        return "grads[" + index + "]";
    }
}
