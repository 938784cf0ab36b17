package dev.gradclip.dl4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.nd4j.linalg.indexing.NDArrayIndex.all;
import static org.nd4j.linalg.indexing.NDArrayIndex.interval;
import static org.nd4j.linalg.indexing.NDArrayIndex.point;

import dev.gradclip.DType;
import dev.gradclip.GradClip;
import dev.gradclip.Gradients;
import java.lang.foreign.MemorySegment;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Segments over ND4J arrays: aliasing both ways, views with offsets, layouts refused, every data type. */
class Nd4jSegmentsTest {

    /** Reading: the segment holds the array's elements where its strides put them. Writing: the array sees every write, and only its own elements change. */
    private static void assertAliases(INDArray parent, INDArray view) {
        DType type = Nd4jSegments.dtype(view);
        MemorySegment segment = Nd4jSegments.of(view);
        assertEquals(view.length() * type.byteSize(), segment.byteSize(), "the segment covers exactly the view");
        long[][] indices = Elements.indices(view.shape());
        double[] before = new double[indices.length];
        for (int i = 0; i < indices.length; i++) {
            before[i] = view.getDouble(indices[i]);
            assertEquals(before[i], Elements.get(segment, type, Elements.memoryIndex(view, indices[i])),
                    "element " + java.util.Arrays.toString(indices[i]) + " read through the segment");
        }
        double parentSum = parent.castTo(DataType.DOUBLE).sumNumber().doubleValue(); // exact: small integers
        for (long k = 0; k < view.length(); k++) {
            Elements.set(segment, type, k, -Elements.get(segment, type, k));
        }
        for (int i = 0; i < indices.length; i++) {
            assertEquals(-before[i], view.getDouble(indices[i]), "element " + java.util.Arrays.toString(indices[i])
                    + " written through the segment");
        }
        double viewSum = 0;
        for (double v : before) {
            viewSum += v;
        }
        // Every element positive before: the parent's sum moved by exactly twice the view's, so nothing else changed.
        assertEquals(parentSum - 2 * viewSum, parent.castTo(DataType.DOUBLE).sumNumber().doubleValue());
        assertEquals(view.length(), parent.lt(0).castTo(DataType.INT32).sumNumber().longValue(),
                "exactly the view's elements were written");
    }

    @ParameterizedTest
    @EnumSource(value = DataType.class, names = {"FLOAT", "DOUBLE", "HALF", "BFLOAT16"})
    void wholeArraysAliasBothWaysInRowAndColumnOrder(DataType type) {
        for (char order : new char[] {'c', 'f'}) {
            INDArray array = Elements.counting(type, order, 4, 5, 3);
            assertAliases(array, array);
        }
        INDArray scalar = Elements.counting(type, 'c');
        assertAliases(scalar, scalar);
    }

    @ParameterizedTest
    @EnumSource(value = DataType.class, names = {"FLOAT", "DOUBLE", "HALF", "BFLOAT16"})
    void viewsStartAtTheirOffset(DataType type) {
        INDArray c = Elements.counting(type, 'c', 6, 5);
        assertAliases(c, c.getRow(2));
        assertEquals(10, c.getRow(2).offset(), "a view the trap applies to");
        INDArray c2 = Elements.counting(type, 'c', 6, 5);
        assertAliases(c2, c2.get(interval(1, 4), all()));
        INDArray f = Elements.counting(type, 'f', 5, 6);
        assertAliases(f, f.getColumn(3));
        INDArray f2 = Elements.counting(type, 'f', 5, 6);
        assertAliases(f2, f2.get(all(), interval(2, 5)));
        // DL4J's layout: one flat 'f' row vector, a parameter's range of it reshaped to a column-order matrix.
        INDArray flat = Elements.counting(type, 'f', 1, 100);
        INDArray weights = flat.get(point(0), interval(37, 67)).reshape('f', 5, 6);
        assertEquals(37, weights.offset());
        assertAliases(flat, weights);
        // A view of a view of a view.
        INDArray cube = Elements.counting(type, 'c', 4, 6, 5);
        INDArray deep = cube.get(point(2), all(), all()).get(interval(1, 5), all()).get(interval(2, 4), all());
        assertEquals(2 * 30 + 3 * 5, deep.offset());
        assertAliases(cube, deep);
        // Other orders of the dimensions: a transpose, a permutation.
        INDArray t = Elements.counting(type, 'c', 6, 5);
        assertAliases(t, t.transpose());
        INDArray p = Elements.counting(type, 'c', 3, 4, 5);
        assertAliases(p, p.permute(1, 2, 0));
    }

    /** A clip through segments of DL4J-style views reaches the array, in each of the four types. */
    @ParameterizedTest
    @EnumSource(value = DataType.class, names = {"FLOAT", "DOUBLE", "HALF", "BFLOAT16"})
    void aClipThroughTheSegmentsReachesTheArray(DataType type) {
        INDArray flat = Elements.counting(type, 'f', 1, 60);
        INDArray w = flat.get(point(0), interval(0, 40)).reshape('f', 8, 5);
        INDArray b = flat.get(point(0), interval(40, 60));
        Gradients grads = Gradients.builder()
                .add("W", Nd4jSegments.of(w), Nd4jSegments.dtype(w))
                .add("b", Nd4jSegments.of(b), Nd4jSegments.dtype(b))
                .build();
        double norm = Math.sqrt(60 * 61 * 121 / 6.0); // of 1, 2, ..., 60, exact in every type
        assertEquals(norm, GradClip.clipGradNorm(grads, 1.0), norm * 1e-15);
        // The core's bound per element: the coefficient rounded (to double, then to float for the 32- and
        // 16-bit types) and the product rounded to the type; relative 2^-52, 2^-23, 2^-11 + 2^-23, 2^-8 + 2^-23.
        double bound = switch (type) {
            case DOUBLE -> 0x1p-52;
            case FLOAT -> 0x1p-23;
            case HALF -> 0x1p-11 + 0x1p-23;
            default -> 0x1p-8 + 0x1p-23;
        };
        for (long i = 0; i < 60; i++) {
            double expected = (i + 1) / (norm + 1e-6);
            assertEquals(expected, flat.getDouble(0, i), expected * (bound + 1e-15), type + " element " + i);
        }
    }

    @Test
    void arraysWithGapsOrRepeatsAreRefused() {
        INDArray c = Elements.counting(DataType.FLOAT, 'c', 6, 5);
        INDArray f = Elements.counting(DataType.FLOAT, 'f', 6, 5);
        Map<String, INDArray> refused = Map.of(
                "a column of a row-order matrix", c.getColumn(1),
                "a row of a column-order matrix", f.getRow(1),
                "a block of columns", c.get(all(), interval(1, 3)),
                "a block of rows in column order", f.get(interval(1, 3), all()),
                "a step-2 slice", c.get(interval(0, 2, 6), all()),
                "a step-2 vector", Elements.counting(DataType.FLOAT, 'c', 10).get(interval(0, 2, 10)),
                "a broadcast (stride 0)", Nd4j.create(c.data(), new long[] {4, 5}, new long[] {0, 1}, 0, 'c'));
        refused.forEach((what, array) -> {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Nd4jSegments.of(array), what);
            assertTrue(e.getMessage().contains("do not fill one memory range"), e.getMessage());
            assertTrue(e.getMessage().contains("strides " + java.util.Arrays.toString(array.stride())), e.getMessage());
        });
    }

    @Test
    void emptyArraysGiveEmptySegments() {
        INDArray empty = Nd4j.create(DataType.FLOAT, 0);
        assertTrue(empty.isEmpty());
        MemorySegment segment = Nd4jSegments.of(empty);
        assertEquals(0, segment.byteSize());
        INDArray w = Elements.counting(DataType.FLOAT, 'c', 3);
        Gradients grads = Gradients.of(DType.FLOAT32, List.of(segment, Nd4jSegments.of(w), Nd4jSegments.of(empty)));
        assertEquals(Math.sqrt(1 + 4 + 9), GradClip.totalNorm(grads), 1e-12);
    }

    @Test
    void nullIsNamed() {
        assertEquals("array is null", assertThrows(NullPointerException.class, () -> Nd4jSegments.of(null)).getMessage());
        assertEquals("array is null", assertThrows(NullPointerException.class, () -> Nd4jSegments.dtype(null)).getMessage());
    }

    /** The mapping covers every ND4J data type: the four floating-point ones map, the rest are refused. */
    @Test
    void everyDataTypeMapsOrIsRefused() {
        Map<DataType, DType> supported = Map.of(DataType.FLOAT, DType.FLOAT32, DataType.DOUBLE, DType.FLOAT64,
                DataType.FLOAT16, DType.FLOAT16, DataType.BFLOAT16, DType.BFLOAT16);
        for (DataType type : DataType.values()) {
            assertEquals(supported.get(type), Nd4jSegments.forType(type), type.name());
        }
    }

    /**
     * Real arrays of every data type ND4J can create (all but COMPRESSED and UNKNOWN, which are no
     * element types): the four floating-point ones map, every other one is refused by name; every
     * fixed-size type aliases, UTF8 is refused.
     */
    @ParameterizedTest
    @EnumSource(value = DataType.class, names = {"COMPRESSED", "UNKNOWN"}, mode = EnumSource.Mode.EXCLUDE)
    void everyCreatableDataType(DataType type) {
        Set<DataType> floating = EnumSet.of(DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16);
        if (type == DataType.UTF8) {
            INDArray strings = Nd4j.create("gradient", "clip");
            assertEquals(DataType.UTF8, strings.dataType());
            assertTrue(assertThrows(IllegalArgumentException.class, () -> Nd4jSegments.dtype(strings)).getMessage()
                    .contains("UTF8"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> Nd4jSegments.of(strings)).getMessage()
                    .contains("no fixed element size"));
            return;
        }
        INDArray array = Nd4j.create(type, 3, 4);
        assertEquals(type, array.dataType());
        if (floating.contains(type)) {
            assertNotNull(Nd4jSegments.dtype(array));
        } else {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Nd4jSegments.dtype(array));
            assertTrue(e.getMessage().contains("data type " + type), e.getMessage());
            assertNull(Nd4jSegments.forType(type));
        }
        // Any fixed-size type aliases: one byte written through the segment shows in the array.
        MemorySegment segment = Nd4jSegments.of(array);
        assertEquals(12L * type.width(), segment.byteSize());
        segment.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 5L * type.width(), (byte) 1);
        assertTrue(array.getDouble(1, 1) != 0, type + ": the write reached element (1, 1)");
    }
}
