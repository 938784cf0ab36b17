package dev.gradclip.internal;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.function.IntFunction;

/**
 * Rejects two segments that share memory: they would be counted twice in the norm and scaled twice.
 *
 * <p>Segments are sorted by (memory space, start address) and each is compared with the ones that
 * start before it ends, so the check costs O(n log n). Native segments share one address space; a
 * heap segment's address is an offset into its array, so heap segments are grouped by array. The
 * common case, native segments in ascending address order, takes one pass and no scratch; otherwise
 * a per-thread scratch is reused, so after warm-up the check allocates nothing for native segments.
 *
 * <p>A read-only heap segment does not reveal its array ({@code heapBase()} is empty), so each one is
 * compared pairwise, with {@code asOverlappingSlice}, against the other heap segments.
 */
final class Overlaps {

    /** The group of native segments; heap groups are identity hash codes, which are non-negative. */
    private static final long NATIVE = -1;

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private Overlaps() {}

    /** Throws IllegalArgumentException naming the two tensors ({@code label} of their indices) that overlap. */
    static void requireDisjoint(List<MemorySegment> grads, IntFunction<String> label) {
        if (grads.size() < 2 || nativeAndAscending(grads)) {
            return;
        }
        requireDisjointHiddenArrays(grads, label);
        Scratch scratch = SCRATCH.get();
        try {
            scratch.load(grads);
            scratch.sort();
            scratch.requireDisjoint(label);
        } finally {
            scratch.release();
        }
    }

    private static void requireDisjointHiddenArrays(List<MemorySegment> grads, IntFunction<String> label) {
        for (int i = 0, n = grads.size(); i < n; i++) {
            MemorySegment hidden = grads.get(i);
            if (!hasHiddenArray(hidden)) {
                continue;
            }
            for (int j = 0; j < n; j++) {
                MemorySegment other = grads.get(j);
                if (j != i && !other.isNative() && other.byteSize() > 0
                        && (j < i || !hasHiddenArray(other)) // hidden pairs once
                        && hidden.asOverlappingSlice(other).isPresent()) {
                    throw overlap(i, j, label);
                }
            }
        }
    }

    private static boolean hasHiddenArray(MemorySegment segment) {
        return !segment.isNative() && segment.isReadOnly() && segment.byteSize() > 0;
    }

    private static IllegalArgumentException overlap(int a, int b, IntFunction<String> label) {
        return new IllegalArgumentException(label.apply(Math.min(a, b)) + " and "
                + label.apply(Math.max(a, b)) + " overlap in memory");
    }

    private static boolean nativeAndAscending(List<MemorySegment> grads) {
        long previousEnd = Long.MIN_VALUE;
        for (int i = 0, n = grads.size(); i < n; i++) {
            MemorySegment segment = grads.get(i);
            if (!segment.isNative()) {
                return false;
            }
            if (segment.byteSize() == 0) {
                continue;
            }
            if (segment.address() < previousEnd) {
                return false;
            }
            previousEnd = segment.address() + segment.byteSize();
        }
        return true;
    }

    /** Parallel arrays indexed by segment index, and {@code order}: the indices sorted by (group, start). */
    private static final class Scratch {
        int loaded;
        int size;
        int[] order = new int[0];
        long[] group = new long[0];
        long[] start = new long[0];
        long[] end = new long[0];
        Object[] base = new Object[0];

        void load(List<MemorySegment> grads) {
            int n = grads.size();
            if (order.length < n) {
                order = new int[n];
                group = new long[n];
                start = new long[n];
                end = new long[n];
                base = new Object[n];
            }
            loaded = n;
            size = 0;
            for (int i = 0; i < n; i++) {
                MemorySegment segment = grads.get(i);
                if (segment.byteSize() == 0 || hasHiddenArray(segment)) {
                    continue; // empty: shares no memory; hidden array: checked pairwise
                }
                Object array = segment.isNative() ? null : segment.heapBase().orElseThrow();
                group[i] = array == null ? NATIVE : System.identityHashCode(array);
                base[i] = array;
                start[i] = segment.address();
                end[i] = segment.address() + segment.byteSize();
                order[size++] = i;
            }
        }

        /** Heapsort: in place, O(n log n) for any input order. */
        void sort() {
            for (int root = size / 2 - 1; root >= 0; root--) {
                siftDown(root, size);
            }
            for (int last = size - 1; last > 0; last--) {
                swap(0, last);
                siftDown(0, last);
            }
        }

        private void siftDown(int root, int limit) {
            while (2 * root + 1 < limit) {
                int child = 2 * root + 1;
                if (child + 1 < limit && before(order[child], order[child + 1])) {
                    child++;
                }
                if (!before(order[root], order[child])) {
                    return;
                }
                swap(root, child);
                root = child;
            }
        }

        private boolean before(int a, int b) {
            return group[a] != group[b] ? group[a] < group[b] : start[a] < start[b];
        }

        private void swap(int p, int q) {
            int t = order[p];
            order[p] = order[q];
            order[q] = t;
        }

        /**
         * Any segment that overlaps an earlier-starting one of its array starts before that one
         * ends, and only segments of the same group can lie between them, so a short forward scan
         * from each segment finds every overlap.
         */
        void requireDisjoint(IntFunction<String> label) {
            for (int p = 0; p < size; p++) {
                int a = order[p];
                for (int q = p + 1; q < size && group[order[q]] == group[a] && start[order[q]] < end[a]; q++) {
                    int b = order[q];
                    if (base[a] == base[b]) {
                        throw overlap(a, b, label);
                    }
                }
            }
        }

        /** Drops the references to heap arrays, so the scratch keeps no gradients alive. */
        void release() {
            Arrays.fill(base, 0, loaded, null);
        }
    }
}
