package dev.gradclip;

import java.lang.foreign.MemorySegment;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.RandomAccess;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The float32 {@link Gradients} behind {@link GradClip}'s {@code List<MemorySegment>} shorthands: built
 * from the list, and reused on the same thread while the list holds the same segments (by identity),
 * so a loop that passes the same list every step validates it once and then allocates nothing. A
 * segment's bounds, dtype size and read-only flag never change, so a set validated with the same
 * segment objects is still valid; what can change (a closed arena, another thread) is checked on
 * every call anyway.
 *
 * <p>The list is read once per call: {@code size()} and each {@code get(i)} once for a
 * {@code RandomAccess} list, one iteration otherwise (and for a {@code CopyOnWriteArrayList}, whose
 * iterator is a snapshot), so a list that another thread changes meanwhile can neither slip an
 * unchecked segment past the checks nor have a segment scaled twice.
 *
 * <p>The last set is held through a {@link WeakReference}: the cache never keeps gradients alive
 * past a garbage collection, after which the next call validates the list again.
 */
final class ListGradients {

    private static final ThreadLocal<WeakReference<Gradients>> LAST = new ThreadLocal<>();

    private ListGradients() {}

    static Gradients of(List<MemorySegment> list) {
        if (list == null) {
            throw new NullPointerException("grads is null");
        }
        WeakReference<Gradients> ref = LAST.get();
        Gradients last = ref == null ? null : ref.get();
        Gradients grads = list instanceof RandomAccess && !(list instanceof CopyOnWriteArrayList)
                ? byIndex(list, last) : byIteration(list, last);
        if (grads != last) {
            LAST.set(new WeakReference<>(grads));
        }
        return grads;
    }

    private static Gradients byIndex(List<MemorySegment> list, Gradients last) {
        int n = list.size();
        int same = 0;
        MemorySegment first = null; // the first element that differs, already read
        if (last != null && last.size() == n) {
            for (; same < n; same++) {
                MemorySegment segment = list.get(same);
                if (segment != last.segment(same)) {
                    first = segment;
                    break;
                }
            }
            if (same == n) {
                return last;
            }
        }
        List<MemorySegment> segments = prefix(last, same, n);
        for (int i = same; i < n; i++) {
            segments.add(i == same && last != null && last.size() == n ? first : list.get(i));
        }
        return Gradients.of(DType.FLOAT32, segments);
    }

    private static Gradients byIteration(List<MemorySegment> list, Gradients last) {
        int size = last == null ? 0 : last.size();
        int same = 0;
        List<MemorySegment> segments = null; // from the first element that differs on
        for (Iterator<MemorySegment> it = list.iterator(); it.hasNext(); ) {
            MemorySegment segment = it.next();
            if (segments == null && same < size && segment == last.segment(same)) {
                same++;
                continue;
            }
            if (segments == null) {
                segments = prefix(last, same, size);
            }
            segments.add(segment);
        }
        if (segments == null && same == size && last != null) {
            return last;
        }
        return Gradients.of(DType.FLOAT32, segments != null ? segments : prefix(last, same, size));
    }

    /** A new list holding the first {@code same} segments of {@code last}, which the list matched. */
    private static List<MemorySegment> prefix(Gradients last, int same, int capacity) {
        List<MemorySegment> segments = new ArrayList<>(Math.max(capacity, same));
        for (int i = 0; i < same; i++) {
            segments.add(last.segment(i));
        }
        return segments;
    }
}
