package dev.gradclip;

import dev.gradclip.internal.SegmentChecks;
import dev.gradclip.internal.TensorTable;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * An immutable set of gradient buffers, each with a {@link DType} and a name, validated when it is
 * built: build it once and clip it on every step.
 *
 * <p>A set may mix dtypes. Elements are in native byte order, at any alignment, off-heap, mapped or
 * on the heap. {@link #of} and {@link Builder#build()} reject, naming the tensor by name and index:
 * a null segment, dtype or name ({@link NullPointerException}); a byte size that is not a multiple
 * of the dtype's size, two segments that share memory, or a duplicate name
 * ({@link IllegalArgumentException}). What can change between calls is checked on every call: a
 * closed arena, access from the wrong thread, a read-only segment that must be written.
 */
public final class Gradients {

    private final TensorTable table;
    private final Map<String, Integer> indexByName;

    private Gradients(MemorySegment[] segments, DType[] types, String[] names) {
        for (int i = 0; i < segments.length; i++) {
            int index = i;
            SegmentChecks.checkShape(segments[i], types[i], i, k -> label(names, index));
        }
        SegmentChecks.checkDisjoint(segments, k -> label(names, k));
        this.table = TensorTable.of(segments, types, names);
        this.indexByName = new HashMap<>();
        for (int i = 0; i < names.length; i++) {
            indexByName.put(names[i], i);
        }
    }

    private static String label(String[] names, int i) {
        String index = SegmentChecks.name(i);
        return names[i].equals(index) ? index : '"' + names[i] + "\" (" + index + ')';
    }

    /** Segments of one dtype, named {@code grads[0]}, {@code grads[1]}, ... */
    public static Gradients of(DType type, List<MemorySegment> segments) {
        if (type == null) {
            throw new NullPointerException("type is null");
        }
        if (segments == null) {
            throw new NullPointerException("segments is null");
        }
        MemorySegment[] array = segments.toArray(new MemorySegment[0]); // the list is read once: a snapshot
        int n = array.length;
        DType[] types = new DType[n];
        String[] names = new String[n];
        for (int i = 0; i < n; i++) {
            types[i] = type;
            names[i] = SegmentChecks.name(i);
        }
        return new Gradients(array, types, names);
    }

    /** Float32 arrays (on the heap), named {@code grads[0]}, ... */
    public static Gradients of(float[]... arrays) {
        if (arrays == null) {
            throw new NullPointerException("arrays is null");
        }
        List<MemorySegment> segments = new ArrayList<>(arrays.length);
        for (int i = 0; i < arrays.length; i++) {
            if (arrays[i] == null) {
                throw new NullPointerException(SegmentChecks.name(i) + " is null");
            }
            segments.add(MemorySegment.ofArray(arrays[i]));
        }
        return of(DType.FLOAT32, segments);
    }

    public static Builder builder() {
        return new Builder();
    }

    /** The number of tensors. */
    public int size() {
        return table.size();
    }

    public String name(int tensor) {
        return table.name(tensor);
    }

    public DType dtype(int tensor) {
        return table.type(tensor);
    }

    public MemorySegment segment(int tensor) {
        return table.segment(tensor);
    }

    /** The tensor's element count. */
    public long numel(int tensor) {
        return table.elements(tensor);
    }

    /** The index of the tensor with this name, or -1. */
    public int indexOf(String name) {
        Integer index = indexByName.get(name);
        return index == null ? -1 : index;
    }

    /** Every tensor's bytes. */
    public long byteSize() {
        return table.bytes();
    }

    TensorTable table() {
        return table;
    }

    @Override
    public String toString() {
        long elements = 0;
        for (int i = 0; i < size(); i++) {
            elements += numel(i);
        }
        return "Gradients[" + size() + " tensors, " + elements + " elements, " + byteSize() + " bytes]";
    }

    /** Adds tensors in order; {@link #build()} validates them all. */
    public static final class Builder {
        private final List<MemorySegment> segments = new ArrayList<>();
        private final List<DType> types = new ArrayList<>();
        private final List<String> names = new ArrayList<>();

        private Builder() {}

        public Builder add(String name, MemorySegment data, DType type) {
            segments.add(data);
            types.add(type);
            names.add(name);
            return this;
        }

        public Gradients build() {
            int n = names.size();
            Map<String, Integer> seen = new HashMap<>();
            for (int i = 0; i < n; i++) {
                String name = names.get(i);
                if (name == null) {
                    throw new NullPointerException("the name of " + SegmentChecks.name(i) + " is null");
                }
                Integer earlier = seen.putIfAbsent(name, i);
                if (earlier != null) {
                    throw new IllegalArgumentException("\"" + name + "\" names both " + SegmentChecks.name(earlier)
                            + " and " + SegmentChecks.name(i));
                }
            }
            return new Gradients(segments.toArray(new MemorySegment[0]), types.toArray(new DType[0]),
                    names.toArray(new String[0]));
        }
    }
}
