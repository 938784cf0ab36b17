package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Heap, native, unaligned and mapped segments hold the same values and give the same bits. */
class SegmentKindsTest {

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int[] LENGTHS = {0, 1, 3, 17, 64, 1000, 4095, 4096, 4097, 10_001};

    private static float[][] grads() {
        SplittableRandom random = new SplittableRandom(11);
        float[][] grads = new float[LENGTHS.length][];
        for (int t = 0; t < LENGTHS.length; t++) {
            grads[t] = new float[LENGTHS[t]];
            for (int i = 0; i < LENGTHS[t]; i++) {
                grads[t][i] = (float) (random.nextGaussian() * Math.pow(10, random.nextInt(-8, 9)));
            }
        }
        return grads;
    }

    /** Norm before, and the arrays after clipping to a tenth of it. */
    private static void assertSameAsHeapArrays(List<MemorySegment> segments) {
        float[][] expected = grads();
        double expectedNorm = GradClip.clipGradNorm(expected, GradClip.totalNorm(expected) / 10);
        double norm = GradClip.clipGradNorm(segments, expectedNorm / 10);
        assertEquals(Double.doubleToRawLongBits(expectedNorm), Double.doubleToRawLongBits(norm));
        float[][] actual = Buffers.toArrays(segments);
        for (int t = 0; t < expected.length; t++) {
            assertArrayEquals(expected[t], actual[t], "tensor " + t);
        }
    }

    @Test
    void heapSegmentsOfFloatArrays() {
        List<MemorySegment> segments = new ArrayList<>();
        for (float[] tensor : grads()) {
            segments.add(MemorySegment.ofArray(tensor));
        }
        assertSameAsHeapArrays(segments);
    }

    @Test
    void heapSegmentsOfByteArraysAtOddOffsets() {
        List<MemorySegment> segments = new ArrayList<>();
        for (float[] tensor : grads()) {
            MemorySegment bytes = MemorySegment.ofArray(new byte[tensor.length * Float.BYTES + 3]).asSlice(3);
            MemorySegment.copy(tensor, 0, bytes, FLOAT, 0, tensor.length);
            segments.add(bytes);
        }
        assertSameAsHeapArrays(segments);
    }

    @Test
    void nativeSegmentsAlignedAndAtEveryMisalignment() {
        for (int misalign = 0; misalign < 4; misalign++) {
            try (Arena arena = Arena.ofConfined()) {
                assertSameAsHeapArrays(Buffers.nativeCopy(arena, grads(), misalign));
            }
        }
    }

    @Test
    void nativeSegmentsOfASharedArenaAndAutomaticArena() {
        try (Arena arena = Arena.ofShared()) {
            assertSameAsHeapArrays(Buffers.nativeCopy(arena, grads(), 0));
        }
        assertSameAsHeapArrays(Buffers.nativeCopy(Arena.ofAuto(), grads(), 2));
    }

    @Test
    void memoryMappedFileSegments(@TempDir Path dir) throws IOException {
        float[][] grads = grads();
        long total = 0;
        for (float[] tensor : grads) {
            total += (long) tensor.length * Float.BYTES;
        }
        Path file = dir.resolve("grads.bin");
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.READ, StandardOpenOption.WRITE);
                Arena arena = Arena.ofConfined()) {
            // One extra byte up front, so the tensors are unaligned in the mapping too.
            MemorySegment mapped = channel.map(FileChannel.MapMode.READ_WRITE, 0, total + 1, arena);
            List<MemorySegment> segments = new ArrayList<>();
            long offset = 1;
            for (float[] tensor : grads) {
                MemorySegment slice = mapped.asSlice(offset, (long) tensor.length * Float.BYTES);
                MemorySegment.copy(tensor, 0, slice, FLOAT, 0, tensor.length);
                segments.add(slice);
                offset += slice.byteSize();
            }
            assertSameAsHeapArrays(segments);
            mapped.force();
        }
        assertEquals(total + 1, Files.size(file));
    }

    @Test
    void concurrentCallsOnDistinctBuffersGiveTheSequentialResults() throws Exception {
        float[][] expected = grads();
        double expectedNorm = GradClip.clipGradNorm(expected, 1e-3);
        try (ExecutorService pool = Executors.newFixedThreadPool(4)) {
            List<Future<float[][]>> results = new ArrayList<>();
            for (int task = 0; task < 16; task++) {
                results.add(pool.submit(() -> {
                    float[][] grads = grads();
                    for (int i = 0; i < 20; i++) {
                        assertEquals(expectedNorm, GradClip.totalNorm(grads));
                    }
                    assertEquals(expectedNorm, GradClip.clipGradNorm(grads, 1e-3));
                    return grads;
                }));
            }
            for (Future<float[][]> result : results) {
                float[][] actual = result.get();
                for (int t = 0; t < expected.length; t++) {
                    assertArrayEquals(expected[t], actual[t]);
                }
            }
        }
    }
}
