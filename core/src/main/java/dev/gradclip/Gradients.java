package dev.gradclip;

import dev.gradclip.internal.SegmentChecks;
import dev.gradclip.internal.TensorTable;
import dev.gradclip.internal.UnitClipping;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.RandomAccess;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * An immutable set of gradient buffers, each with a {@link DType} and a name, validated when it is
 * built: build it once and clip it on every step.
 *
 * <p>A set may mix dtypes. Elements are in native byte order, at any alignment, off-heap, mapped or
 * on the heap. {@link #of} and {@link Builder#build()} reject, naming the tensor by name and index:
 * a null segment, dtype or name ({@link NullPointerException}); a byte size that is not a multiple
 * of the dtype's size, two segments that share memory, a duplicate name, or a shape whose
 * dimensions are negative or do not multiply to the element count ({@link IllegalArgumentException}). What can change between calls is checked on every call: a
 * closed arena, access from the wrong thread, a read-only segment that must be written.
 */
public final class Gradients {

    private final TensorTable table;
    private final Map<String, Integer> indexByName;
    /** Each tensor's shape; null for a tensor added without one (one dimension). */
    private final long[][] shapes;
    /** The last {@link GradClip#adaptiveGradClip} plan with these as the gradients, for the params it was built for. */
    private volatile UnitClipping.Plan unitPlan;

    private Gradients(MemorySegment[] segments, DType[] types, String[] names, long[][] shapes) {
        for (int i = 0; i < segments.length; i++) {
            int index = i;
            SegmentChecks.checkShape(segments[i], types[i], i, k -> label(names, index));
            if (shapes[i] != null) {
                checkDimensions(shapes[i], segments[i].byteSize() / types[i].byteSize(), label(names, i));
            }
        }
        this.shapes = shapes;
        SegmentChecks.checkDisjoint(segments, k -> label(names, k));
        this.table = TensorTable.of(segments, types, names);
        this.indexByName = new HashMap<>();
        for (int i = 0; i < names.length; i++) {
            indexByName.put(names[i], i);
        }
    }

    /** A shape's dimensions are >= 0 and multiply to the element count. */
    private static void checkDimensions(long[] shape, long elements, String label) {
        long product = 1;
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] < 0) {
                throw new IllegalArgumentException(label + " has shape " + Arrays.toString(shape) + ": dimension " + d
                        + " is negative");
            }
            try {
                product = Math.multiplyExact(product, shape[d]);
            } catch (ArithmeticException e) {
                if (!Arrays.stream(shape).anyMatch(n -> n == 0)) {
                    throw new IllegalArgumentException(label + " has shape " + Arrays.toString(shape)
                            + ", whose element count overflows a long");
                }
                product = 0;
                break;
            }
        }
        if (product != elements) {
            throw new IllegalArgumentException(label + " has " + elements + " elements, but its shape "
                    + Arrays.toString(shape) + " has " + product);
        }
    }

    private static String label(String[] names, int i) {
        String index = SegmentChecks.name(i);
        return names[i].equals(index) ? index : '"' + names[i] + "\" (" + index + ')';
    }

    /**
     * Segments of one dtype, named {@code grads[0]}, {@code grads[1]}, ...
     *
     * @param type the dtype of every segment
     * @param segments the tensors, in order; the list is read once
     * @return the validated set
     * @throws IllegalArgumentException as the class comment lists, naming the tensor
     */
    public static Gradients of(DType type, List<MemorySegment> segments) {
        if (type == null) {
            throw new NullPointerException("type is null");
        }
        if (segments == null) {
            throw new NullPointerException("segments is null");
        }
        MemorySegment[] array = snapshot(segments);
        int n = array.length;
        DType[] types = new DType[n];
        String[] names = new String[n];
        for (int i = 0; i < n; i++) {
            types[i] = type;
            names[i] = SegmentChecks.name(i);
        }
        return new Gradients(array, types, names, new long[n][]);
    }

    /**
     * The list read once ({@code size()} and each {@code get(i)} once, or one iteration), so that a
     * list another thread changes meanwhile can neither slip an unchecked segment past the checks
     * nor have a segment counted twice. A {@code CopyOnWriteArrayList} is copied from its own
     * snapshot.
     */
    private static MemorySegment[] snapshot(List<MemorySegment> list) {
        if (!(list instanceof RandomAccess) || list instanceof CopyOnWriteArrayList) {
            return list.toArray(new MemorySegment[0]);
        }
        MemorySegment[] array = new MemorySegment[list.size()];
        for (int i = 0; i < array.length; i++) {
            array[i] = list.get(i);
        }
        return array;
    }

    /**
     * Float32 arrays (on the heap), named {@code grads[0]}, ...
     *
     * @param arrays the tensors, in order; the set views them, it does not copy
     * @return the validated set
     */
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

    /**
     * A builder for a set of named tensors, each with its own dtype and optionally a shape.
     *
     * @return a new, empty builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * The number of tensors.
     *
     * @return the tensor count
     */
    public int size() {
        return table.size();
    }

    /**
     * The tensor's name: as given to the builder, or {@code grads[i]}.
     *
     * @param tensor the tensor's index, from 0 to {@link #size()} - 1
     * @return the name
     */
    public String name(int tensor) {
        return table.name(tensor);
    }

    /**
     * The tensor's element type.
     *
     * @param tensor the tensor's index, from 0 to {@link #size()} - 1
     * @return the dtype
     */
    public DType dtype(int tensor) {
        return table.type(tensor);
    }

    /**
     * The tensor's memory, the segment it was built with.
     *
     * @param tensor the tensor's index, from 0 to {@link #size()} - 1
     * @return the segment
     */
    public MemorySegment segment(int tensor) {
        return table.segment(tensor);
    }

    /**
     * The tensor's element count.
     *
     * @param tensor the tensor's index, from 0 to {@link #size()} - 1
     * @return the number of elements
     */
    public long numel(int tensor) {
        return table.elements(tensor);
    }

    /**
     * The index of the tensor with this name, or -1.
     *
     * @param name a tensor's name
     * @return its index, or -1 when no tensor has that name
     */
    public int indexOf(String name) {
        Integer index = indexByName.get(name);
        return index == null ? -1 : index;
    }

    /**
     * The tensor's shape, as given to {@link Builder#add(String, MemorySegment, DType, long...)}: a
     * new array; {@code [numel]} for a tensor added without one.
     *
     * @param tensor the tensor's index, from 0 to {@link #size()} - 1
     * @return a copy of the shape
     */
    public long[] shape(int tensor) {
        long[] shape = shapes[tensor];
        return shape == null ? new long[] {numel(tensor)} : shape.clone();
    }

    /** The shape without a copy: null for one dimension. For the AGC plan. */
    long[] shapeOrNull(int tensor) {
        return shapes[tensor];
    }

    UnitClipping.Plan unitPlan() {
        return unitPlan;
    }

    void unitPlan(UnitClipping.Plan plan) {
        this.unitPlan = plan;
    }

    /**
     * Every tensor's bytes.
     *
     * @return the sum of the segments' byte sizes
     */
    public long byteSize() {
        return table.bytes();
    }

    TensorTable table() {
        return table;
    }

    /**
     * The table of {@code grads} once the checks of every call pass: every arena alive, every
     * segment accessible from this thread. Every entry point starts here.
     */
    static TensorTable readable(Gradients grads) {
        if (grads == null) {
            throw new NullPointerException("grads is null");
        }
        grads.table.checkAccess();
        return grads.table;
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
        private final List<long[]> shapes = new ArrayList<>();

        private Builder() {}

        /**
         * A tensor of one dimension.
         *
         * @param name its name, unique in the set
         * @param data its elements, in native byte order
         * @param type their dtype
         * @return this builder
         */
        public Builder add(String name, MemorySegment data, DType type) {
            segments.add(data);
            types.add(type);
            names.add(name);
            shapes.add(null);
            return this;
        }

        /**
         * A tensor with a shape, as torch's {@code size()}: the dimensions must be >= 0 and multiply to
         * the element count ({@link #build()} checks). Only {@link GradClip#adaptiveGradClip} reads the
         * shape, for its units: the slices along the first dimension of a tensor of two or more
         * dimensions. An empty shape is a scalar (one element).
         *
         * @param name its name, unique in the set
         * @param data its elements, in native byte order
         * @param type their dtype
         * @param shape its dimensions, copied
         * @return this builder
         * @throws NullPointerException if {@code shape} is null
         */
        public Builder add(String name, MemorySegment data, DType type, long... shape) {
            if (shape == null) {
                throw new NullPointerException("the shape of \"" + name + "\" (" + SegmentChecks.name(names.size())
                        + ") is null");
            }
            add(name, data, type);
            shapes.set(shapes.size() - 1, shape.clone());
            return this;
        }

        /**
         * Validates every tensor added (see the class comment) and builds the set.
         *
         * @return the set, tensors in the order added
         * @throws IllegalArgumentException if a tensor is invalid or a name is used twice, naming the tensor
         * @throws NullPointerException if a segment, dtype or name is null
         */
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
                    names.toArray(new String[0]), shapes.toArray(new long[0][]));
        }
    }
}
