package dev.gradclip.dl4j;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Test arrays and element access through a segment, for the four floating-point types. */
final class Elements {

    private Elements() {}

    /** An array of the type and order holding 1, 2, 3, ... in its own (logical, row-major) element order. */
    static INDArray counting(DataType type, char order, long... shape) {
        INDArray array = Nd4j.create(type, shape, Nd4j.getStrides(shape, order), order);
        for (long i = 0; i < array.length(); i++) {
            array.putScalar(i, i + 1); // up to 256 is exact in every type, bfloat16 included
        }
        return array;
    }

    static double get(MemorySegment segment, DType type, long i) {
        return switch (type) {
            case FLOAT64 -> segment.getAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i);
            case FLOAT32 -> segment.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
            case FLOAT16 -> Float.float16ToFloat(segment.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i));
            case BFLOAT16 -> Float.intBitsToFloat(segment.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i) << 16);
        };
    }

    /** Writes a value that is exact in every type (a small integer or its negation). */
    static void set(MemorySegment segment, DType type, long i, double value) {
        switch (type) {
            case FLOAT64 -> segment.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i, value);
            case FLOAT32 -> segment.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) value);
            case FLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16((float) value));
            case BFLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i,
                    (short) (Float.floatToRawIntBits((float) value) >>> 16));
        }
    }

    /** The element's place in memory, counted from the array's first element: the sum of index times stride. */
    static long memoryIndex(INDArray array, long[] index) {
        long[] stride = array.stride();
        long k = 0;
        for (int d = 0; d < index.length; d++) {
            k += index[d] * stride[d];
        }
        return k;
    }

    /** Every index tuple of the shape, row-major. */
    static long[][] indices(long[] shape) {
        long n = 1;
        for (long s : shape) {
            n *= s;
        }
        long[][] out = new long[(int) n][shape.length];
        for (int i = 0; i < n; i++) {
            long rest = i;
            for (int d = shape.length - 1; d >= 0; d--) {
                out[i][d] = rest % shape[d];
                rest /= shape[d];
            }
        }
        return out;
    }
}
