package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Bad input to the 0.2 API: a clear exception naming the argument and the tensor, and nothing modified. */
class GradientsBadInputTest {

    private static void assertMessage(Throwable e, String... parts) {
        for (String part : parts) {
            assertTrue(e.getMessage().contains(part), "\"" + e.getMessage() + "\" lacks \"" + part + "\"");
        }
    }

    @Test
    void buildRejectsNullsSizesOverlapsAndNames() {
        MemorySegment floats = MemorySegment.ofArray(new float[8]);
        assertMessage(assertThrows(NullPointerException.class,
                () -> Gradients.builder().add("a", floats, DType.FLOAT32).add("b", null, DType.FLOAT32).build()),
                "\"b\" (grads[1]) is null");
        assertMessage(assertThrows(NullPointerException.class,
                () -> Gradients.builder().add("a", floats, null).build()), "\"a\" (grads[0]) has a null dtype");
        assertMessage(assertThrows(NullPointerException.class,
                () -> Gradients.builder().add(null, floats, DType.FLOAT32).build()), "name of grads[0] is null");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> Gradients.builder().add("w", floats.asSlice(0, 12), DType.FLOAT64).build()),
                "\"w\" (grads[0]) has 12 bytes, not a multiple of 8 (float64");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> Gradients.builder().add("w", MemorySegment.ofArray(new byte[3]), DType.FLOAT16).build()),
                "not a multiple of 2 (float16");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Gradients.builder()
                        .add("x", floats.asSlice(0, 16), DType.FLOAT32).add("y", floats.asSlice(8, 16), DType.BFLOAT16)
                        .build()),
                "\"x\" (grads[0]) and \"y\" (grads[1]) overlap in memory");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Gradients.builder()
                        .add("same", floats.asSlice(0, 8), DType.FLOAT32).add("same", floats.asSlice(8, 8), DType.FLOAT32)
                        .build()),
                "\"same\" names both grads[0] and grads[1]");
        assertThrows(NullPointerException.class, () -> Gradients.of(null, List.of()));
        assertThrows(NullPointerException.class, () -> Gradients.of(DType.FLOAT32, null));
    }

    @Test
    void normTypesOtherThanTheSupportedOnesAreRejectedWithWhatIsAllowed() {
        Gradients grads = Gradients.of(new float[] {1, 2});
        for (double p : new double[] {0.5, 0, -1, Double.NaN, Double.NEGATIVE_INFINITY}) {
            assertMessage(assertThrows(IllegalArgumentException.class, () -> GradClip.totalNorm(grads, p)),
                    "normType must be 2, 1, any finite p >= 1, or Double.POSITIVE_INFINITY");
        }
    }

    @Test
    void perCallChecksFailBeforeAnythingIsWritten() {
        float[] first = {3, 4};
        MemorySegment readOnly = MemorySegment.ofArray(new float[] {30, 40}).asReadOnly();
        Gradients grads = Gradients.builder().add("first", MemorySegment.ofArray(first), DType.FLOAT32)
                .add("frozen", readOnly, DType.FLOAT32).build();
        assertMessage(assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm(grads, 1)),
                "\"frozen\" (grads[1]) is read-only but has to be scaled");
        assertArrayEquals(new float[] {3, 4}, first);
        assertMessage(assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm(grads, -1)), "maxNorm");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradsWithNorm(grads, Double.NaN, 1)),
                "maxNorm");

        Arena arena = Arena.ofConfined();
        Gradients closed = Gradients.builder().add("gone", arena.allocate(16), DType.FLOAT32).build();
        arena.close();
        assertMessage(assertThrows(IllegalStateException.class, () -> GradClip.totalNorm(closed, 2)),
                "\"gone\" (grads[0]) cannot be read: its arena is closed");
    }

    @Test
    void aSegmentConfinedToAnotherThreadIsRejected() throws Exception {
        try (Arena arena = Arena.ofConfined()) {
            Gradients grads = Gradients.builder().add("mine", arena.allocate(16), DType.FLOAT32).build();
            Throwable[] thrown = new Throwable[1];
            Thread other = new Thread(() -> {
                try {
                    GradClip.totalNorm(grads, 2);
                } catch (Throwable t) {
                    thrown[0] = t;
                }
            });
            other.start();
            other.join();
            assertEquals(WrongThreadException.class, thrown[0].getClass());
            assertMessage(thrown[0], "\"mine\" (grads[0]) is confined to another thread");
        }
    }
}
