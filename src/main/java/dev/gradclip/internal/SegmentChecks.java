package dev.gradclip.internal;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Argument checks for a list of gradient segments. Every check runs before the first write, and
 * each message names the argument ({@code grads}) and the segment's index in it.
 */
final class SegmentChecks {

    private SegmentChecks() {}

    static void checkMaxNorm(double maxNorm) {
        if (!(maxNorm >= 0)) {
            throw new IllegalArgumentException(
                    "maxNorm must be >= 0 (or +Infinity for no clipping), was " + maxNorm);
        }
    }

    /** Everything needed to read the segments: no nulls, float32 sizes, live, this thread's, disjoint. */
    static void checkReadable(List<MemorySegment> grads) {
        if (grads == null) {
            throw new NullPointerException("grads is null");
        }
        Thread current = Thread.currentThread();
        for (int i = 0, n = grads.size(); i < n; i++) {
            MemorySegment segment = grads.get(i);
            if (segment == null) {
                throw new NullPointerException(name(i) + " is null");
            }
            if (segment.byteSize() % Float.BYTES != 0) {
                throw new IllegalArgumentException(name(i) + " has " + segment.byteSize()
                        + " bytes, not a multiple of " + Float.BYTES + " (float32 elements)");
            }
            if (!segment.scope().isAlive()) {
                throw new IllegalStateException(name(i) + " cannot be read: its arena is closed");
            }
            if (!segment.isAccessibleBy(current)) {
                throw new WrongThreadException(name(i) + " is confined to another thread than " + current);
            }
        }
        Overlaps.requireDisjoint(grads);
    }

    /** Scaling writes every non-empty segment, so none of them may be read-only. */
    static void checkWritable(List<MemorySegment> grads) {
        for (int i = 0, n = grads.size(); i < n; i++) {
            MemorySegment segment = grads.get(i);
            if (segment.isReadOnly() && segment.byteSize() > 0) {
                throw new IllegalArgumentException(name(i) + " is read-only but has to be scaled");
            }
        }
    }

    static String name(int index) {
        return "grads[" + index + "]";
    }
}
