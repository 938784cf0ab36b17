package dev.gradclip.bench;

import dev.gradclip.DType;
import dev.gradclip.GradClip;
import dev.gradclip.Gradients;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * What the kernel provider's choice costs on a CPU shape the JVM can emulate: one
 * JVM per flag set, each timing a norm and a clip of one tensor of every dtype with whatever kernels
 * the provider chose, and printing the provider's line on stderr. {@code bench/kernel-choice} runs it
 * under {@code -XX:UseAVX=0/1/2}, {@code -XX:MaxVectorSize=16/32} and {@code -XX:-UseFMA}; alternate
 * two checkouts' jars to compare them (docs/performance.md, section "Kernel choice on other CPUs").
 * Medians of 9 calls after 2 s of warm-up:
 * the gaps this looks for are 3x to 1000x, far above this machine's noise.
 *
 * <pre>java --add-modules=jdk.incubator.vector [flags] -cp benchmarks.jar dev.gradclip.bench.KernelChoice [elements]</pre>
 */
public final class KernelChoice {

    private KernelChoice() {}

    public static void main(String[] args) {
        long n = args.length > 0 ? Long.parseLong(args[0]) : 4_000_000;
        int calls = 9;
        StringBuilder line = new StringBuilder();
        for (DType type : DType.values()) {
            MemorySegment segment = Arena.ofAuto().allocate(n * type.byteSize(), 64);
            Random random = new Random(1);
            for (long i = 0; i < n; i++) {
                float v = (float) random.nextGaussian();
                switch (type) {
                    case FLOAT32 -> segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
                    case FLOAT64 -> segment.setAtIndex(ValueLayout.JAVA_DOUBLE, i, v);
                    case FLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT, i, Float.floatToFloat16(v));
                    case BFLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(v) >>> 16));
                }
            }
            Gradients grads = Gradients.of(type, List.of(segment));
            // Two seconds of the same calls first, so that C2 has compiled the loops whatever the size.
            for (long end = System.nanoTime() + 2_000_000_000L; System.nanoTime() < end; ) {
                GradClip.clipGradNorm(grads, GradClip.totalNorm(grads, 2) * 0.999, 2);
            }
            double[] norm = new double[calls];
            double[] clip = new double[calls];
            for (int k = 0; k < calls; k++) {
                long t0 = System.nanoTime();
                double before = GradClip.totalNorm(grads, 2);
                long t1 = System.nanoTime();
                GradClip.clipGradNorm(grads, before * 0.999, 2); // scales every element
                long t2 = System.nanoTime();
                norm[k] = (t1 - t0) / 1e6;
                clip[k] = (t2 - t1) / 1e6;
            }
            Arrays.sort(norm);
            Arrays.sort(clip);
            line.append(String.format(Locale.ROOT, "%s norm %.1f clip %.1f ms  ", type.name().toLowerCase(Locale.ROOT),
                    norm[calls / 2], clip[calls / 2]));
        }
        System.out.println(line.toString().trim());
    }
}
