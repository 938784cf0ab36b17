package dev.gradclip.djl;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/** {@link DjlSegments} on real PyTorch-engine arrays, and on stand-ins where DJL cannot make the array. */
class DjlSegmentsTest {

    private NDManager manager;

    @BeforeEach
    void open() {
        manager = NDManager.newBaseManager(Device.cpu(), "PyTorch");
    }

    @AfterEach
    void close() {
        manager.close();
    }

    /** 0, 1, 2, ... as a (4, 5) float32 array. */
    private NDArray base() {
        return manager.arange(20f).reshape(4, 5);
    }

    @ParameterizedTest
    @EnumSource(value = DataType.class, names = {"FLOAT32", "FLOAT64", "FLOAT16"})
    void aSegmentAndItsArrayAliasBothWays(DataType type) {
        NDArray array = base().toType(type, false);
        MemorySegment segment = DjlSegments.of(array);
        assertEquals(20L * type.getNumOfBytes(), segment.byteSize());

        // Segment to array: write -2.5 (exact in every type) into element 7.
        write(segment, type, 7, -2.5);
        double[] seen = doubles(array);
        assertEquals(-2.5, seen[7]);
        assertEquals(6.0, seen[6]);
        assertEquals(8.0, seen[8]);

        // Array to segment: an in-place operation on the array.
        array.muli(2);
        assertEquals(-5.0, read(segment, type, 7));
        assertEquals(38.0, read(segment, type, 19));
    }

    @Test
    void aRowSliceStartsAtItsFirstElementNotAtTheBuffer() {
        NDArray base = base();
        NDArray rows = base.get("1:3");
        NDArray row = base.get(3);
        MemorySegment whole = DjlSegments.of(base);
        MemorySegment slice = DjlSegments.of(rows);
        MemorySegment last = DjlSegments.of(row);
        assertEquals(5L * 4, slice.address() - whole.address());
        assertEquals(10L * 4, slice.byteSize());
        assertEquals(15L * 4, last.address() - whole.address());
        assertEquals(5L * 4, last.byteSize());

        slice.setAtIndex(ValueLayout.JAVA_FLOAT, 0, -1f);
        slice.setAtIndex(ValueLayout.JAVA_FLOAT, 9, -2f);
        float[] expected = new float[20];
        for (int i = 0; i < 20; i++) {
            expected[i] = i;
        }
        expected[5] = -1f;
        expected[14] = -2f;
        assertArrayEquals(expected, base.toFloatArray());
        assertEquals(-1f, rows.getFloat(0, 0));
    }

    @Test
    void aReshapedViewAliasesTheSameMemory() {
        NDArray base = base();
        assertEquals(DjlSegments.of(base).address(), DjlSegments.of(base.reshape(20)).address());
        assertEquals(DjlSegments.of(base).address() + 4 * 5,
                DjlSegments.of(base.get("1:").reshape(3, 5)).address());
    }

    @ParameterizedTest
    @ValueSource(strings = {"transpose", "column block", "one column", "step-2 slice", "broadcast"})
    void anArrayWithGapsIsRefusedAndLeftAlone(String kind) {
        NDArray base = base();
        Function<NDArray, NDArray> view = switch (kind) {
            case "transpose" -> NDArray::transpose;
            case "column block" -> a -> a.get(":, 1:3");
            case "one column" -> a -> a.get(":, 2:3");
            case "step-2 slice" -> a -> a.get("::2");
            case "broadcast" -> a -> a.get(0).broadcast(new Shape(3, 5));
            default -> throw new AssertionError(kind);
        };
        NDArray array = view.apply(base);
        array.setName("g");
        float[] before = base.toFloatArray();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DjlSegments.of(array));
        assertTrue(e.getMessage().startsWith("array \"g\" (" + array.getShape() + ", float32) is not one gap-free range"),
                e.getMessage());
        assertArrayEquals(before, base.toFloatArray());
    }

    @Test
    void aSparseArrayIsRefused() {
        NDArray sparse = manager.create(new float[] {0, 1, 0, 2}).toSparse(SparseFormat.COO);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DjlSegments.of(sparse));
        assertTrue(e.getMessage().contains("is sparse (COO)"), e.getMessage());
    }

    @Test
    void anArrayOffTheCpuIsRefused() {
        NDArray onGpu = StandIns.array(base(), Map.of("getDevice", Device.gpu(0)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DjlSegments.of(onGpu));
        assertTrue(e.getMessage().contains("is on gpu(0)"), e.getMessage());
    }

    @Test
    void anArrayOfAnotherEngineIsRefused() {
        NDArray real = base();
        NDArray other = StandIns.array(real, Map.of("getManager", StandIns.managerOfEngine(manager, "OnnxRuntime")));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DjlSegments.of(other));
        assertTrue(e.getMessage().contains("belongs to the OnnxRuntime engine"), e.getMessage());
    }

    @Test
    void aClosedArrayIsRefused() {
        NDArray array = base();
        array.setName("w");
        array.close();
        assertEquals("array \"w\" is closed",
                assertThrows(IllegalArgumentException.class, () -> DjlSegments.of(array)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> DjlSegments.dtype(array));
    }

    @Test
    void nullIsANullPointerException() {
        assertEquals("array is null", assertThrows(NullPointerException.class, () -> DjlSegments.of(null)).getMessage());
        assertEquals("array is null",
                assertThrows(NullPointerException.class, () -> DjlSegments.dtype(null)).getMessage());
    }

    @Test
    void anEmptyArrayGivesAnEmptySegment() {
        assertEquals(0, DjlSegments.of(manager.zeros(new Shape(0))).byteSize());
        assertEquals(0, DjlSegments.of(manager.zeros(new Shape(3, 0)).transpose()).byteSize());
    }

    @Test
    void aScalarIsOneElement() {
        NDArray scalar = manager.create(3f);
        MemorySegment segment = DjlSegments.of(scalar);
        segment.set(ValueLayout.JAVA_FLOAT, 0, 4f);
        assertEquals(4f, scalar.getFloat());
    }

    /**
     * Every data type DJL 0.36 has. The float types map to their {@link DType}; the rest are
     * refused by {@code dtype}. Arrays that the PyTorch engine makes safely are real; bfloat16,
     * int16 and the unsigned 16-, 32- and 64-bit types abort the JVM when DJL creates them (see
     * {@link DjlLimitsTest}), UNKNOWN does too, and COMPLEX64 comes out as float32: those are
     * stand-ins that report the type.
     */
    @ParameterizedTest
    @EnumSource(DataType.class)
    void everyDataTypeMapsOrIsRefused(DataType type) {
        boolean real = switch (type) {
            case FLOAT32, FLOAT64, FLOAT16, UINT8, INT32, INT8, INT64, BOOLEAN, STRING -> true;
            case BFLOAT16, INT16, UINT16, UINT32, UINT64, UNKNOWN, COMPLEX64 -> false;
        };
        NDArray array;
        if (type == DataType.STRING) {
            array = manager.create(new String[] {"a", "b"});
        } else if (real) {
            array = manager.zeros(new Shape(2, 3), type);
        } else {
            array = StandIns.array(manager.zeros(new Shape(2, 3)), Map.of("getDataType", type));
        }
        assertEquals(type, array.getDataType());
        DType expected = switch (type) {
            case FLOAT32 -> DType.FLOAT32;
            case FLOAT64 -> DType.FLOAT64;
            case FLOAT16 -> DType.FLOAT16;
            case BFLOAT16 -> DType.BFLOAT16;
            default -> null;
        };
        if (expected != null) {
            assertEquals(expected, DjlSegments.dtype(array));
        } else {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DjlSegments.dtype(array));
            assertTrue(e.getMessage().contains("holds " + type), e.getMessage());
        }
        if (real && type != DataType.STRING) {
            // of() aliases any fixed-width array; the listener asks dtype() first.
            assertEquals(6L * type.getNumOfBytes(), DjlSegments.of(array).byteSize());
        }
    }

    @Test
    void aStringArrayCannotBeAliased() {
        NDArray strings = manager.create(new String[] {"a"});
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DjlSegments.of(strings));
        assertTrue(e.getMessage().contains("no fixed element width"), e.getMessage());
    }

    private static void write(MemorySegment segment, DataType type, long index, double value) {
        switch (type) {
            case FLOAT32 -> segment.setAtIndex(ValueLayout.JAVA_FLOAT, index, (float) value);
            case FLOAT64 -> segment.setAtIndex(ValueLayout.JAVA_DOUBLE, index, value);
            case FLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT, index, Float.floatToFloat16((float) value));
            default -> throw new AssertionError(type);
        }
    }

    private static double read(MemorySegment segment, DataType type, long index) {
        return switch (type) {
            case FLOAT32 -> segment.getAtIndex(ValueLayout.JAVA_FLOAT, index);
            case FLOAT64 -> segment.getAtIndex(ValueLayout.JAVA_DOUBLE, index);
            case FLOAT16 -> Float.float16ToFloat(segment.getAtIndex(ValueLayout.JAVA_SHORT, index));
            default -> throw new AssertionError(type);
        };
    }

    private static double[] doubles(NDArray array) {
        try (NDArray wide = array.toType(DataType.FLOAT64, true)) {
            return wide.toDoubleArray();
        }
    }
}
