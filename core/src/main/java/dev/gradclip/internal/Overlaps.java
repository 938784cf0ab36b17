package dev.gradclip.internal;

import java.lang.foreign.MemorySegment;
import java.util.function.IntFunction;

/**
 * Rejects two segments that share memory: they would be counted twice in the norm and scaled twice.
 *
 * <p>Segments are sorted by (memory space, start address) and each is compared with the ones that
 * start before it ends, so the check costs O(n log n). Native segments share one address space; a
 * heap segment's address is an offset into its array, so heap segments are grouped by array. The
 * array is known by the segment's scope, not by {@code heapBase()}, which a read-only segment hides:
 * {@link MemorySegment.Scope} promises that segments obtained from the same array (or heap buffer)
 * have equal scopes, and the JDK's heap scopes compare the array by identity and hash it by
 * identity. So read-only heap views need no pairwise comparison (32,000 of them took 6.2 s that way).
 *
 * <p>The common case, native segments in ascending address order, takes one pass and no scratch;
 * otherwise the check allocates about 40 bytes of scratch per segment, once per set built.
 */
final class Overlaps {

    /** The group of native segments; heap groups are scope hash codes. */
    private static final long NATIVE = Long.MIN_VALUE;

    private Overlaps() {}

    /**
     * Throws IllegalArgumentException naming the two tensors ({@code label} of their indices) that
     * overlap, among {@code segments[0 .. count)}, none of them null.
     */
    static void requireDisjoint(MemorySegment[] segments, int count, IntFunction<String> label) {
        if (count < 2 || nativeAndAscending(segments, count)) {
            return;
        }
        Scratch scratch = new Scratch(segments, count);
        scratch.sort();
        scratch.requireDisjoint(label);
    }

    private static IllegalArgumentException overlap(int a, int b, IntFunction<String> label) {
        return new IllegalArgumentException(label.apply(Math.min(a, b)) + " and "
                + label.apply(Math.max(a, b)) + " overlap in memory");
    }

    private static boolean nativeAndAscending(MemorySegment[] segments, int count) {
        long previousEnd = Long.MIN_VALUE;
        for (int i = 0; i < count; i++) {
            MemorySegment segment = segments[i];
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
        int size;
        final int[] order;
        final long[] group;
        final long[] start;
        final long[] end;
        /** A heap segment's scope (equal scopes, same array), null for native ones. */
        final MemorySegment.Scope[] array;

        Scratch(MemorySegment[] segments, int n) {
            order = new int[n];
            group = new long[n];
            start = new long[n];
            end = new long[n];
            array = new MemorySegment.Scope[n];
            for (int i = 0; i < n; i++) {
                MemorySegment segment = segments[i];
                if (segment.byteSize() == 0) {
                    continue; // shares no memory
                }
                MemorySegment.Scope scope = segment.isNative() ? null : segment.scope();
                group[i] = scope == null ? NATIVE : scope.hashCode();
                array[i] = scope;
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
                    if (array[a] == array[b] || array[a] != null && array[a].equals(array[b])) {
                        throw overlap(a, b, label);
                    }
                }
            }
        }
    }
}
