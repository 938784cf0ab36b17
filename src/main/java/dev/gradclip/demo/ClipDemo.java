package dev.gradclip.demo;

import dev.gradclip.GradClip;
import dev.gradclip.internal.GlobalNorm;
import dev.gradclip.internal.KernelProvider;
import dev.gradclip.internal.Kernels;
import dev.gradclip.internal.ScalarKernels;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.DoubleSupplier;

/**
 * The main job: model-shaped gradients off-heap with a spike in one layer, clipped to a global
 * norm, with the numbers a user would check and the time beside the scalar reference.
 *
 * <pre>./mvnw -q compile exec:exec [-Dshapes=gpt2-small|resnet50] [-DmaxNorm=1.0]</pre>
 */
public final class ClipDemo {

    /** Typical gradient entries are around 1e-4; the spiking layer's are 1000x larger. */
    private static final float BASE_SCALE = 1e-4f;
    private static final float SPIKE_SCALE = 1e-1f;
    private static final int NORM_RUNS = 5;
    private static final int SCALAR_RUNS = 3;

    private ClipDemo() {}

    public static void main(String[] args) {
        String shapes = "gpt2-small";
        double maxNorm = 1.0;
        for (String arg : args) {
            if (arg.startsWith("--shapes=")) {
                shapes = arg.substring("--shapes=".length());
            } else if (arg.startsWith("--max-norm=")) {
                maxNorm = Double.parseDouble(arg.substring("--max-norm=".length()));
            } else {
                System.err.println("usage: ClipDemo [--shapes=gpt2-small|resnet50] [--max-norm=1.0]");
                System.exit(2);
            }
        }
        List<ModelShapes.Tensor> tensors = ModelShapes.named(shapes);
        try (Arena arena = Arena.ofConfined()) {
            run(arena, shapes, tensors, maxNorm);
        }
    }

    private static void run(Arena arena, String shapes, List<ModelShapes.Tensor> tensors, double maxNorm) {
        long elements = ModelShapes.totalElements(tensors);
        int spike = spikeIndex(tensors);
        System.out.printf(Locale.ROOT, "gradclip main job: %s, %d tensors, %,d float32 gradients (%.0f MB off-heap)%n",
                shapes, tensors.size(), elements, elements * 4 / 1e6);
        System.out.printf(Locale.ROOT, "kernels: %s; spike in %s%n%n", KernelProvider.kernels().description(),
                tensors.get(spike).name());

        List<MemorySegment> grads = allocate(arena, tensors, spike);
        double[] before = tensorNorms(grads);
        double norm = GradClip.clipGradNorm(grads, maxNorm);
        double c = GradClip.clipCoefficient(norm, maxNorm);
        double[] after = tensorNorms(grads);

        System.out.printf(Locale.ROOT, "global norm before  %.9g%n", norm);
        System.out.printf(Locale.ROOT, "max_norm            %.9g%n", maxNorm);
        System.out.printf(Locale.ROOT, "coefficient         %.9g%s%n", c, c == 1.0 ? " (no clipping needed)" : "");
        System.out.printf(Locale.ROOT, "global norm after   %.9g%n%n", GradClip.totalNorm(grads));

        Integer[] order = new Integer[before.length];
        Arrays.setAll(order, i -> i);
        Arrays.sort(order, Comparator.comparingDouble((Integer i) -> before[i]).reversed());
        System.out.println("largest per-tensor norms          before          after    after/before");
        for (int k = 0; k < Math.min(5, order.length); k++) {
            int i = order[k];
            System.out.printf(Locale.ROOT, "  %-28s %12.6g   %12.6g    %.9f%n", tensors.get(i).name(), before[i], after[i],
                    after[i] / before[i]);
        }
        directionCheck(before, after, c);
        timing(grads, elements);
    }

    /** The spike goes into the largest tensor of the middle of the list, where a bad layer would be. */
    private static int spikeIndex(List<ModelShapes.Tensor> tensors) {
        int spike = tensors.size() / 2;
        for (int i = tensors.size() / 2; i < tensors.size() * 3 / 4; i++) {
            if (tensors.get(i).elements() > tensors.get(spike).elements()) {
                spike = i;
            }
        }
        return spike;
    }

    private static List<MemorySegment> allocate(Arena arena, List<ModelShapes.Tensor> tensors, int spike) {
        SplittableRandom random = new SplittableRandom(20261122);
        List<MemorySegment> grads = new ArrayList<>(tensors.size());
        for (int t = 0; t < tensors.size(); t++) {
            MemorySegment segment = arena.allocate(ValueLayout.JAVA_FLOAT, tensors.get(t).elements());
            float scale = t == spike ? SPIKE_SCALE : BASE_SCALE;
            for (long i = 0, n = tensors.get(t).elements(); i < n; i++) {
                segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, scale * (2 * (float) random.nextDouble() - 1));
            }
            grads.add(segment);
        }
        return grads;
    }

    private static double[] tensorNorms(List<MemorySegment> grads) {
        double[] norms = new double[grads.size()];
        for (int i = 0; i < norms.length; i++) {
            norms[i] = GradClip.totalNorm(List.of(grads.get(i)));
        }
        return norms;
    }

    /** Global clipping keeps every tensor's share of the norm: each after/before ratio is c. */
    private static void directionCheck(double[] before, double[] after, double c) {
        double worst = 0;
        for (int i = 0; i < before.length; i++) {
            if (before[i] > 0) {
                worst = Math.max(worst, Math.abs(after[i] / before[i] / c - 1));
            }
        }
        System.out.printf(Locale.ROOT, "%ndirection check: every tensor's after/before ratio equals the coefficient "
                + "to within %.2g (float32 rounding is 6e-8): %s%n%n", worst, worst < 1e-6 ? "direction kept" : "DIRECTION CHANGED");
    }

    private static void timing(List<MemorySegment> grads, long elements) {
        Kernels active = KernelProvider.kernels();
        Kernels reference = new ScalarKernels();
        double[] target = {GradClip.totalNorm(grads)};
        // Each timed clip scales (to 0.9 of the current norm), so every run moves 12 bytes per element.
        DoubleSupplier activeClip = () -> target[0] = 0.9 * GlobalNorm.clipGradNorm(active, grads, 0.9 * target[0]);
        DoubleSupplier referenceClip = () -> target[0] = 0.9 * GlobalNorm.clipGradNorm(reference, grads, 0.9 * target[0]);

        System.out.printf(Locale.ROOT, "time (median of %d, scalar reference %d)    ms      GB/s   speed-up%n", NORM_RUNS, SCALAR_RUNS);
        double activeNorm = medianMillis(NORM_RUNS, () -> GlobalNorm.totalNorm(active, grads));
        double referenceNorm = medianMillis(SCALAR_RUNS, () -> GlobalNorm.totalNorm(reference, grads));
        double activeClipTime = medianMillis(NORM_RUNS, activeClip);
        double referenceClipTime = medianMillis(SCALAR_RUNS, referenceClip);
        row("norm, " + name(active), activeNorm, 4 * elements, referenceNorm);
        row("norm, scalar reference", referenceNorm, 4 * elements, referenceNorm);
        row("clip, " + name(active), activeClipTime, 12 * elements, referenceClipTime);
        row("clip, scalar reference", referenceClipTime, 12 * elements, referenceClipTime);
    }

    private static String name(Kernels kernels) {
        return kernels.description().startsWith("vector") ? "vector kernels" : "active kernels";
    }

    private static void row(String what, double millis, long bytes, double referenceMillis) {
        System.out.printf(Locale.ROOT, "  %-34s %8.1f %8.2f %8.2fx%n", what, millis, bytes / millis / 1e6, referenceMillis / millis);
    }

    /** One untimed warm-up run, then the median wall time of {@code runs} runs. */
    private static double medianMillis(int runs, DoubleSupplier work) {
        double sink = work.getAsDouble();
        double[] millis = new double[runs];
        for (int r = 0; r < runs; r++) {
            long start = System.nanoTime();
            sink += work.getAsDouble();
            millis[r] = (System.nanoTime() - start) / 1e6;
        }
        if (Double.isNaN(sink)) {
            throw new AssertionError("NaN norm");
        }
        Arrays.sort(millis);
        return millis[runs / 2];
    }
}
