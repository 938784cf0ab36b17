package dev.gradclip.demo;

import dev.gradclip.Clipper;
import dev.gradclip.DType;
import dev.gradclip.GradReport;
import dev.gradclip.Gradients;
import dev.gradclip.NonFinite;
import dev.gradclip.internal.KernelProvider;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The main job: model-shaped float32 gradients off-heap with a spike in one layer, clipped by a
 * {@link Clipper} that fills a {@link GradReport}; the per-tensor table a user would log; then the
 * time of a clip at one thread and at all, with and without the report.
 *
 * <pre>./mvnw -q compile exec:exec [-Dshapes=gpt2-small|resnet50] [-DmaxNorm=1.0] [-Dnan=true -Dpolicy=SKIP]</pre>
 */
public final class ClipDemo {

    private static final int RUNS = 7;

    private ClipDemo() {}

    public static void main(String[] args) {
        String shapes = "gpt2-small";
        double maxNorm = 1.0;
        boolean nan = false;
        NonFinite policy = NonFinite.PROPAGATE;
        for (String arg : args) {
            if (arg.startsWith("--shapes=")) {
                shapes = arg.substring("--shapes=".length());
            } else if (arg.startsWith("--max-norm=")) {
                maxNorm = Double.parseDouble(arg.substring("--max-norm=".length()));
            } else if (arg.startsWith("--nan=")) {
                nan = Boolean.parseBoolean(arg.substring("--nan=".length()));
            } else if (arg.startsWith("--policy=")) {
                policy = NonFinite.valueOf(arg.substring("--policy=".length()).toUpperCase(Locale.ROOT));
            } else {
                System.err.println("usage: ClipDemo [--shapes=gpt2-small|resnet50] [--max-norm=1.0] [--nan=true]"
                        + " [--policy=propagate|error|skip]");
                System.exit(2);
            }
        }
        List<ModelShapes.Tensor> tensors = ModelShapes.named(shapes);
        // A shared arena: the Clipper's worker threads may read and write it.
        try (Arena arena = Arena.ofShared()) {
            run(arena, shapes, tensors, maxNorm, nan, policy);
        }
    }

    private static void run(Arena arena, String shapes, List<ModelShapes.Tensor> tensors, double maxNorm,
                            boolean nan, NonFinite policy) {
        long elements = ModelShapes.totalElements(tensors);
        int spike = ModelShapes.spikeIndex(tensors);
        System.out.printf(Locale.ROOT, "gradclip main job: %s, %d tensors, %,d float32 gradients (%.0f MB off-heap)%n",
                shapes, tensors.size(), elements, elements * 4 / 1e6);
        Gradients grads = allocate(arena, tensors, spike);
        if (nan) {
            int victim = tensors.size() / 3;
            grads.segment(victim).setAtIndex(ValueLayout.JAVA_FLOAT, grads.numel(victim) / 2, Float.NaN);
            System.out.printf(Locale.ROOT, "injected one NaN into %s; policy %s%n", grads.name(victim), policy);
        }
        MemorySegment[] original = copy(arena, grads);
        try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).nonFinite(policy).build()) {
            System.out.printf(Locale.ROOT, "%s; spike in %s%n%n", clipper, tensors.get(spike).name());
            GradReport report = new GradReport(grads);
            double norm;
            try {
                norm = clipper.clip(grads, report);
            } catch (ArithmeticException e) {
                System.out.println("clip threw ArithmeticException (policy ERROR): " + e.getMessage());
                return;
            }
            System.out.println("report: " + report + "\n");
            System.out.printf(Locale.ROOT, "global norm before  %.9g%n", norm);
            System.out.printf(Locale.ROOT, "max_norm            %.9g%n", maxNorm);
            System.out.printf(Locale.ROOT, "coefficient         %.9g%s%n", report.coefficient(),
                    report.clipped() ? "" : " (nothing written)");
            try (Clipper measure = Clipper.builder().maxNorm(Double.POSITIVE_INFINITY).build()) {
                GradReport after = new GradReport(grads);
                measure.clip(grads, after);
                System.out.printf(Locale.ROOT, "global norm after   %.9g%n%n", after.totalNorm());
                table(report, after);
            }
            if (Double.isFinite(norm) && report.clipped()) {
                timing(grads, original, maxNorm, elements);
            }
        }
    }

    /** The report's per-tensor table: the five largest norms, and every tensor with non-finite values. */
    private static void table(GradReport before, GradReport after) {
        System.out.println("largest per-tensor norms          before          after    after/before      max|g|");
        for (int i : before.largest(5)) {
            System.out.printf(Locale.ROOT, "  %-28s %12.6g   %12.6g    %.9f %12.4g%n", before.name(i), before.norm(i),
                    after.norm(i), after.norm(i) / before.norm(i), before.maxAbs(i));
        }
        for (int i = 0; i < before.size(); i++) {
            if (before.nonFiniteCount(i) > 0) {
                System.out.printf(Locale.ROOT, "  non-finite: %s holds %d NaN/inf value(s)%n", before.name(i),
                        before.nonFiniteCount(i));
            }
        }
        if (before.clipped()) {
            double worst = 0;
            for (int i = 0; i < before.size(); i++) {
                if (before.norm(i) > 0) {
                    worst = Math.max(worst, Math.abs(after.norm(i) / before.norm(i) / before.coefficient() - 1));
                }
            }
            System.out.printf(Locale.ROOT, "%ndirection check: every tensor's after/before ratio equals the coefficient"
                    + " to within %.2g (float32 rounding is 6e-8): %s%n", worst,
                    worst < 1e-6 ? "direction kept" : "DIRECTION CHANGED");
        }
    }

    private static MemorySegment[] copy(Arena arena, Gradients grads) {
        MemorySegment[] copy = new MemorySegment[grads.size()];
        for (int i = 0; i < copy.length; i++) {
            copy[i] = arena.allocate(grads.segment(i).byteSize(), 64).copyFrom(grads.segment(i));
        }
        return copy;
    }

    private static Gradients allocate(Arena arena, List<ModelShapes.Tensor> tensors, int spike) {
        Gradients.Builder builder = Gradients.builder();
        for (int t = 0; t < tensors.size(); t++) {
            MemorySegment segment = arena.allocate(ValueLayout.JAVA_FLOAT, tensors.get(t).elements());
            ModelShapes.fillGradient(segment, t, spike);
            builder.add(tensors.get(t).name(), segment, DType.FLOAT32);
        }
        return builder.build();
    }

    /**
     * The clip of the spiked gradients, which scales every element (12 bytes moved per element), at one
     * thread and at all, with and without the report. Each run starts from a copy of the gradients
     * (restored untimed), so every run does the same work.
     */
    private static void timing(Gradients grads, MemorySegment[] backup, double maxNorm, long elements) {
        int cores = Runtime.getRuntime().availableProcessors();
        System.out.printf(Locale.ROOT, "%ntime of the clip (median of %d runs)      ms      GB/s%n", RUNS);
        for (int threads : cores > 1 ? new int[] {1, cores} : new int[] {1}) {
            try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).threads(threads).build()) {
                for (boolean withReport : new boolean[] {false, true}) {
                    GradReport report = new GradReport(grads);
                    double[] millis = new double[RUNS + 1]; // the first run warms up
                    for (int r = 0; r < millis.length; r++) {
                        for (int i = 0; i < backup.length; i++) {
                            grads.segment(i).copyFrom(backup[i]);
                        }
                        long start = System.nanoTime();
                        double norm = withReport ? clipper.clip(grads, report) : clipper.clip(grads);
                        millis[r] = (System.nanoTime() - start) / 1e6;
                        if (!(norm > maxNorm)) {
                            throw new AssertionError("the timed clip did not scale");
                        }
                    }
                    double[] measured = Arrays.copyOfRange(millis, 1, millis.length);
                    Arrays.sort(measured);
                    double median = measured[RUNS / 2];
                    System.out.printf(Locale.ROOT, "  %d thread(s)%-22s %8.1f %8.2f%n", threads,
                            withReport ? ", with report" : "", median, 12.0 * elements / median / 1e6);
                }
            }
        }
        System.out.println("  kernels: " + KernelProvider.kernels().description());
    }
}
