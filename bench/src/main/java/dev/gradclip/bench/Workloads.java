package dev.gradclip.bench;

import dev.gradclip.demo.ModelShapes;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/** The tensor lengths of each benchmark workload, by its {@code @Param} name. */
public final class Workloads {

    /** Every workload, for the full profile: flat sizes walk L1, L2, LLC and DRAM; then three model-shaped lists. */
    public static final String ALL = "flat-4K,flat-64K,flat-1M,flat-16M,flat-64M,gpt2-small,resnet50,many-small";

    private Workloads() {}

    public static int[] lengths(String workload) {
        return switch (workload) {
            case "flat-4K" -> new int[] {4 << 10};
            case "flat-64K" -> new int[] {64 << 10};
            case "flat-1M" -> new int[] {1 << 20};
            case "flat-16M" -> new int[] {16 << 20};
            case "flat-64M" -> new int[] {64 << 20};
            case "gpt2-small", "resnet50" ->
                ModelShapes.named(workload).stream().mapToInt(ModelShapes.Tensor::elements).toArray();
            case "many-small" -> manySmall();
            case "many-small-200" -> Arrays.copyOf(manySmall(), 200);
            default -> throw new IllegalArgumentException("unknown workload " + workload);
        };
    }

    public static long elements(String workload) {
        long total = 0;
        for (int length : lengths(workload)) {
            total += length;
        }
        return total;
    }

    /** 2,000 tensors of 1K to 8K floats: per-tensor overhead dominates here. */
    private static int[] manySmall() {
        SplittableRandom random = new SplittableRandom(2000);
        int[] lengths = new int[2000];
        for (int i = 0; i < lengths.length; i++) {
            lengths[i] = random.nextInt(1 << 10, (8 << 10) + 1);
        }
        return lengths;
    }

    /** Uniform values in [-1, 1): finite, normal, and the same for every fork. */
    static List<float[]> values(String workload) {
        SplittableRandom random = new SplittableRandom(42);
        List<float[]> tensors = new ArrayList<>();
        for (int length : lengths(workload)) {
            float[] tensor = new float[length];
            for (int i = 0; i < length; i++) {
                tensor[i] = (float) (2 * random.nextDouble() - 1);
            }
            tensors.add(tensor);
        }
        return tensors;
    }
}
