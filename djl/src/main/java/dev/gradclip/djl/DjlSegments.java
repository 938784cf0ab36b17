package dev.gradclip.djl;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.SparseFormat;
import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;

/**
 * DJL arrays as gradclip segments: {@link #of} hands over an array's own memory, never a copy, and
 * {@link #dtype} names its element type.
 *
 * <p><b>Why not {@code toByteBuffer()}.</b> {@code NDArray.toByteBuffer()} returns a heap copy, so a
 * clip written into it is lost. {@code toByteBuffer(true)} returns the tensor's own memory only when
 * it can: for an array on another device, a sparse or MKL-DNN array or a non-contiguous view (a
 * transpose, a column slice, a step-2 slice, a broadcast), the PyTorch engine returns a contiguous
 * copy instead and says nothing. {@link #of} detects that case and refuses it.
 *
 * <p><b>Engines.</b> Only arrays of DJL's PyTorch engine are accepted: it is the engine DJL trains
 * with, and the one whose copying rule the aliasing check relies on (see {@link #of}).
 *
 * <p><b>Data types in DJL 0.36 with PyTorch 2.7.1.</b> float32 and float16 arrays work throughout,
 * training included. float64 arrays alias and clip, but {@code Trainer.step()} fails on a float64
 * model (its first-step gradient check reads the gradients as float32). DJL cannot make a bfloat16
 * array with this engine: asking for one ({@code zeros}, {@code toType}) aborts the JVM, and so do
 * int16, uint16, uint32 and uint64.
 */
public final class DjlSegments {

    /** The engine name DJL reports for PyTorch ({@code Engine#getEngineName()}). */
    private static final String PYTORCH = "PyTorch";

    private DjlSegments() {}

    /**
     * A segment over exactly the array's elements that aliases its native memory: a write through
     * either one is seen by the other. Views are accepted when their elements fill one gap-free
     * range in row-major order (a row slice {@code a.get("1:3")}, {@code a.get(1)}, a reshape),
     * their segment starting at their first element, not at the underlying buffer's start. An
     * empty array gives an empty segment.
     *
     * <p>The segment is valid while the array (and the tensor behind it) lives: closing the array,
     * or its {@code NDManager}, frees the memory under the segment, and touching the segment after
     * that is undefined behaviour.
     *
     * <p><b>How a copy is detected.</b> DJL 0.36 has no public contiguity test, and
     * {@code toByteBuffer(true)} returns a contiguous copy of a non-contiguous array without saying
     * so. The PyTorch engine attaches each such copy to the array's {@code NDManager}, so it stays
     * alive until the manager closes ({@code JniUtils.getByteBuffer} in pytorch-engine 0.36.0). This
     * method therefore asks twice: the array's own memory has the same address both times, while two
     * copies are two live allocations and cannot share an address. On the refusal path those two
     * copies stay attached to the array's manager until it closes.
     *
     * @param array a dense array of the PyTorch engine on the CPU, with a fixed-width data type
     * @return a read-write segment of {@code array.size() * dataType.getNumOfBytes()} bytes
     * @throws NullPointerException if {@code array} is null
     * @throws IllegalArgumentException if the array is closed, of another engine, not on the CPU,
     *     sparse, a string array, or not one gap-free range of memory (the message names it)
     */
    public static MemorySegment of(NDArray array) {
        return of(array, describe(array));
    }

    /**
     * The gradclip element type of the array: FLOAT32, FLOAT64, FLOAT16 and BFLOAT16.
     *
     * @param array any array
     * @return the matching {@link DType}
     * @throws NullPointerException if {@code array} is null
     * @throws IllegalArgumentException for any other data type (integers, booleans, complex, strings)
     */
    public static DType dtype(NDArray array) {
        return dtype(array, describe(array));
    }

    /** {@link #dtype(NDArray)}, the message naming the array as {@code label}. */
    static DType dtype(NDArray array, String label) {
        if (array.isReleased()) {
            throw new IllegalArgumentException(label + " is closed");
        }
        DataType type = array.getDataType();
        return switch (type) {
            case FLOAT32 -> DType.FLOAT32;
            case FLOAT64 -> DType.FLOAT64;
            case FLOAT16 -> DType.FLOAT16;
            case BFLOAT16 -> DType.BFLOAT16;
            default -> throw new IllegalArgumentException(label + " holds " + type
                    + ": gradclip clips float32, float64, float16 and bfloat16");
        };
    }

    /** {@link #of(NDArray)}, the messages naming the array as {@code label}. */
    static MemorySegment of(NDArray array, String label) {
        if (array.isReleased()) {
            throw new IllegalArgumentException(label + " is closed");
        }
        String engine = array.getManager().getEngine().getEngineName();
        if (!PYTORCH.equals(engine)) {
            throw new IllegalArgumentException(label + " belongs to the " + engine
                    + " engine; gradclip-djl aliases arrays of the PyTorch engine only");
        }
        // The width first: a string array has no tensor behind it to ask for a device.
        DataType type = array.getDataType();
        if (type.getNumOfBytes() <= 0) {
            throw new IllegalArgumentException(label + " holds " + type + ", which has no fixed element width");
        }
        Device device = array.getDevice();
        if (!Device.Type.CPU.equals(device.getDeviceType())) {
            throw new IllegalArgumentException(label + " is on " + device
                    + "; gradclip clips memory on the CPU (toByteBuffer(true) would hand over a CPU copy)");
        }
        if (array.getSparseFormat() != SparseFormat.DENSE) {
            throw new IllegalArgumentException(label + " is sparse (" + array.getSparseFormat()
                    + "); only dense arrays have their elements in one range of memory");
        }
        long bytes = array.size() * type.getNumOfBytes();
        ByteBuffer first = array.toByteBuffer(true);
        ByteBuffer second = array.toByteBuffer(true);
        if (!first.isDirect() || !second.isDirect()) {
            throw new IllegalArgumentException(label + " was handed over as a heap copy, not its own memory");
        }
        MemorySegment segment = MemorySegment.ofBuffer(first);
        if (segment.address() != MemorySegment.ofBuffer(second).address()) {
            throw new IllegalArgumentException(label + " is not one gap-free range of memory (a transpose,"
                    + " a column or strided slice, a broadcast, or an MKL-DNN array): DJL would hand over a"
                    + " copy; clip a contiguous array instead");
        }
        if (segment.byteSize() != bytes) {
            throw new IllegalArgumentException(label + " has " + array.size() + " elements of " + type
                    + " (" + bytes + " bytes), but the engine handed over " + segment.byteSize() + " bytes");
        }
        return segment;
    }

    /** {@code array "name" (shape, type)}, without the name for an unnamed array and without the brackets for a closed one. */
    static String describe(NDArray array) {
        if (array == null) {
            throw new NullPointerException("array is null");
        }
        String name = array.getName();
        String label = name == null ? "array" : "array \"" + name + '"';
        return array.isReleased() ? label : label + " (" + array.getShape() + ", " + array.getDataType() + ')';
    }
}
