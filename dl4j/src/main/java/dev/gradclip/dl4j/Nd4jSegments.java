package dev.gradclip.dl4j;

import dev.gradclip.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Reference;
import java.util.Arrays;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * ND4J arrays as {@link MemorySegment}s that alias their memory, for {@link dev.gradclip.Gradients}:
 *
 * <pre>{@code
 * Gradients grads = Gradients.builder()
 *         .add("W", Nd4jSegments.of(w), Nd4jSegments.dtype(w))
 *         .build();
 * }</pre>
 *
 * <p><b>Views.</b> A view's {@code data().address()} is the whole buffer's; its first element lies
 * {@code offset()} elements further on. {@link #of} adds that offset, so a segment of a view covers
 * exactly the view's elements.
 *
 * <p><b>Layouts.</b> An array is accepted when its elements fill one memory range without gaps or
 * overlaps: row order ('c'), column order ('f', as DL4J's weight-gradient views are), or any other
 * order of its dimensions. The segment lists the elements in memory order, which is all a global
 * norm and a uniform scale need. An array with gaps (a column of a 'c' matrix, a block of columns, a
 * step-2 slice) or with repeated elements (a broadcast) is refused: its elements are no one range,
 * and a copy would take the clip away from the array.
 *
 * <p><b>Lifetime.</b> The segment keeps the array reachable, so ND4J does not free the memory while
 * the segment is in use. It cannot see {@code close()} on the array, nor the reuse of workspace
 * memory after the workspace's scope ends: use segments of such arrays only while they are valid.
 *
 * <p>{@code MemorySegment.reinterpret} is a restricted method: run with
 * {@code --enable-native-access=ALL-UNNAMED} (which JavaCPP needs anyway), or with the module's
 * name when this jar is on the module path.
 */
public final class Nd4jSegments {

    private Nd4jSegments() {}

    /**
     * A segment over exactly the array's elements, in memory order, aliasing the array's memory: a
     * write through either one is seen through the other. An empty array gives an empty segment.
     *
     * @param array a CPU array whose elements fill one memory range
     * @return a segment of {@code length() * dataType().width()} bytes at the array's first element
     * @throws IllegalArgumentException if the array's elements do not fill one gap-free memory range,
     *     if its data type has no fixed element size (UTF8, COMPRESSED), if it was closed, or if the
     *     backend does not keep it in host memory
     * @throws NullPointerException if {@code array} is null
     */
    @SuppressWarnings("restricted") // reinterpret: the flag is documented above
    public static MemorySegment of(INDArray array) {
        if (array == null) {
            throw new NullPointerException("array is null");
        }
        DataType type = array.dataType();
        int width = type.width();
        if (width <= 0) {
            throw new IllegalArgumentException("array has data type " + type + ", which has no fixed element size: "
                    + describe(array));
        }
        if (array.wasClosed()) {
            throw new IllegalArgumentException("array was closed, its memory released");
        }
        if (!Nd4j.getEnvironment().isCPU()) {
            throw new IllegalArgumentException("array lives on the " + Nd4j.getBackend().getClass().getSimpleName()
                    + " backend, not in host memory: gradclip clips on the CPU, in place, and cannot alias it");
        }
        if (array.isEmpty()) {
            return MemorySegment.NULL;
        }
        checkGapFree(array);
        long address = array.data().address();
        if (address == 0) {
            throw new IllegalArgumentException("array has no host memory (address 0): " + describe(array));
        }
        long bytes = array.length() * width;
        // The cleanup action holds the array, and the segment's arena holds the action.
        return MemorySegment.ofAddress(address + array.offset() * width)
                .reinterpret(bytes, Arena.ofAuto(), segment -> Reference.reachabilityFence(array));
    }

    /**
     * The gradclip dtype of the array's elements: FLOAT to {@link DType#FLOAT32}, DOUBLE to
     * {@link DType#FLOAT64}, HALF (FLOAT16) to {@link DType#FLOAT16}, BFLOAT16 to
     * {@link DType#BFLOAT16}.
     *
     * @param array an array of one of those four types
     * @return the matching gradclip dtype
     * @throws IllegalArgumentException for any other data type (integers, BOOL, UTF8, ...)
     * @throws NullPointerException if {@code array} is null
     */
    public static DType dtype(INDArray array) {
        if (array == null) {
            throw new NullPointerException("array is null");
        }
        DType dtype = forType(array.dataType());
        if (dtype == null) {
            throw new IllegalArgumentException("array has data type " + array.dataType()
                    + ": gradclip clips FLOAT, DOUBLE, HALF and BFLOAT16 gradients");
        }
        return dtype;
    }

    /** The mapping itself, for every ND4J data type; null where there is none. */
    static DType forType(DataType type) {
        return switch (type) {
            case FLOAT -> DType.FLOAT32;
            case DOUBLE -> DType.FLOAT64;
            case HALF -> DType.FLOAT16;
            case BFLOAT16 -> DType.BFLOAT16;
            default -> null;
        };
    }

    /**
     * Refuses an array whose elements are not one gap-free range: sorted by stride, the dimensions
     * longer than 1 must have strides 1, n1, n1*n2, ... (n the lengths), whatever their order.
     */
    private static void checkGapFree(INDArray array) {
        long[] shape = array.shape();
        long[] stride = array.stride();
        int rank = shape.length;
        boolean[] used = new boolean[rank];
        long expected = 1;
        for (int step = 0; step < rank; step++) {
            int next = -1;
            for (int d = 0; d < rank; d++) {
                if (!used[d] && shape[d] > 1 && (next < 0 || stride[d] < stride[next])) {
                    next = d;
                }
            }
            if (next < 0) {
                return; // the remaining dimensions have length 1
            }
            used[next] = true;
            if (stride[next] != expected) {
                throw new IllegalArgumentException("array's elements do not fill one memory range ("
                        + (stride[next] > expected ? "gaps" : "repeated or reversed elements") + "): "
                        + describe(array) + ". gradclip aliases memory, and a dup() would clip a copy:"
                        + " pass the whole array that this view was taken from");
            }
            expected *= shape[next];
        }
    }

    private static String describe(INDArray array) {
        return "shape " + Arrays.toString(array.shape()) + ", strides " + Arrays.toString(array.stride())
                + ", order '" + array.ordering() + "', offset " + array.offset();
    }
}
