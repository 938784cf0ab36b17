package dev.gradclip;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/** Test data as segments of each kind, and back to arrays. */
final class Buffers {

    private Buffers() {}

    static float[][] copy(float[][] grads) {
        float[][] copy = new float[grads.length][];
        for (int i = 0; i < grads.length; i++) {
            copy[i] = grads[i].clone();
        }
        return copy;
    }

    /** Each tensor in its own native segment of {@code arena}, shifted by {@code misalignBytes}. */
    static List<MemorySegment> nativeCopy(Arena arena, float[][] grads, int misalignBytes) {
        List<MemorySegment> segments = new ArrayList<>();
        for (float[] tensor : grads) {
            long bytes = (long) tensor.length * Float.BYTES;
            MemorySegment segment = arena.allocate(bytes + misalignBytes, 64).asSlice(misalignBytes, bytes);
            MemorySegment.copy(tensor, 0, segment, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, tensor.length);
            segments.add(segment);
        }
        return segments;
    }

    static float[][] toArrays(List<MemorySegment> segments) {
        float[][] arrays = new float[segments.size()][];
        for (int i = 0; i < arrays.length; i++) {
            arrays[i] = segments.get(i).toArray(ValueLayout.JAVA_FLOAT_UNALIGNED);
        }
        return arrays;
    }

    static float[] filled(int length, float value) {
        float[] tensor = new float[length];
        java.util.Arrays.fill(tensor, value);
        return tensor;
    }
}
