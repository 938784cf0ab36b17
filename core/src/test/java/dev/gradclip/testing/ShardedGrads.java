package dev.gradclip.testing;

import dev.gradclip.DType;
import dev.gradclip.Gradients;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A reproducible mixed-dtype gradient set and its splits at tensor boundaries, for the sharded-clip
 * tests: the in-process ones and the MPI job ({@code dev.gradclip.mpi.MpiClipCheck}), which build the
 * same set from the same seed on every rank.
 */
public final class ShardedGrads {

    /** Sizes around the 4096-element block and the 32-lane row, and a few multi-block tensors. */
    private static final int[] SIZES = {0, 1, 7, 31, 32, 33, 100, 4095, 4096, 4097, 8192, 12_289, 40_000};

    /** One tensor: its name, dtype and the bytes it starts from. */
    public record Tensor(String name, DType type, byte[] bytes) {
        public long elements() {
            return bytes.length / type.byteSize();
        }
    }

    private ShardedGrads() {}

    /** {@code count} tensors of mixed dtypes and sizes; magnitudes spread over 6 decades, within float16's range. */
    public static List<Tensor> tensors(long seed, int count) {
        SplittableRandom random = new SplittableRandom(seed);
        DType[] types = DType.values();
        List<Tensor> tensors = new ArrayList<>();
        for (int t = 0; t < count; t++) {
            DType type = types[random.nextInt(types.length)];
            int n = SIZES[random.nextInt(SIZES.length)];
            double scale = Math.pow(10, random.nextDouble(-4, 2));
            MemorySegment bytes = MemorySegment.ofArray(new byte[n * type.byteSize()]);
            for (int i = 0; i < n; i++) {
                set(bytes, type, i, scale * random.nextGaussian());
            }
            tensors.add(new Tensor("t" + t + "." + type.name().toLowerCase(java.util.Locale.ROOT), type,
                    bytes.toArray(ValueLayout.JAVA_BYTE)));
        }
        return tensors;
    }

    /** Element {@code i} of a buffer of {@code type}, set to {@code value} rounded to the type. */
    public static void set(MemorySegment segment, DType type, long i, double value) {
        switch (type) {
            case FLOAT32 -> segment.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) value);
            case FLOAT64 -> segment.setAtIndex(ValueLayout.JAVA_DOUBLE_UNALIGNED, i, value);
            case FLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16((float) value));
            // Truncation is fine here: every 16-bit pattern is a bfloat16.
            case BFLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i,
                    (short) (Float.floatToRawIntBits((float) value) >>> 16));
        }
    }

    /** For each tensor, the participant that holds it: uniform, so some participants may hold none. */
    public static int[] split(long seed, int tensors, int participants) {
        SplittableRandom random = new SplittableRandom(seed ^ 0x5DEECE66DL);
        int[] owner = new int[tensors];
        for (int t = 0; t < tensors; t++) {
            owner[t] = random.nextInt(participants);
        }
        return owner;
    }

    /** The indices of the tensors {@code participant} holds, in a shuffled order (order must not matter). */
    public static List<Integer> shardOf(int[] owner, int participant, long seed) {
        List<Integer> mine = new ArrayList<>();
        for (int t = 0; t < owner.length; t++) {
            if (owner[t] == participant) {
                mine.add(t);
            }
        }
        Collections.shuffle(mine, new java.util.Random(seed + participant));
        return mine;
    }

    /** Fresh native copies of the tensors {@code which}, in {@code arena}. */
    public static List<MemorySegment> copies(Arena arena, List<Tensor> tensors, List<Integer> which) {
        List<MemorySegment> segments = new ArrayList<>();
        for (int t : which) {
            byte[] bytes = tensors.get(t).bytes();
            MemorySegment segment = arena.allocate(Math.max(1, bytes.length), 8).asSlice(0, bytes.length);
            segment.copyFrom(MemorySegment.ofArray(bytes));
            segments.add(segment);
        }
        return segments;
    }

    /** Gradients over {@code segments}, which hold the tensors {@code which} in that order. */
    public static Gradients gradients(List<Tensor> tensors, List<Integer> which, List<MemorySegment> segments) {
        Gradients.Builder builder = Gradients.builder();
        for (int k = 0; k < which.size(); k++) {
            Tensor tensor = tensors.get(which.get(k));
            builder.add(tensor.name(), segments.get(k), tensor.type());
        }
        return builder.build();
    }

    /** All tensor indices, in order. */
    public static List<Integer> all(int count) {
        List<Integer> all = new ArrayList<>();
        for (int t = 0; t < count; t++) {
            all.add(t);
        }
        return all;
    }
}
