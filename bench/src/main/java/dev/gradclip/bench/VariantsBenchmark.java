package dev.gradclip.bench;

import dev.gradclip.internal.GlobalNorm;
import dev.gradclip.internal.Kernels;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The kernel alternatives of {@link KernelVariants} beside the shipped kernels, norm and clip, on
 * native memory. Not in either profile: run with
 * {@code java -jar benchmarks.jar --jmh VariantsBenchmark -p workload=flat-4K,flat-16M -p memory=native}.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g", "--sun-misc-unsafe-memory-access=allow"})
public class VariantsBenchmark {

    @State(Scope.Benchmark)
    public static class Variant {
        @Param({"shipped", "fma", "acc8", "fullWidthLoad", "doubleScale"})
        public String variant;

        Kernels kernels;

        @Setup(Level.Trial)
        public void pick() {
            kernels = KernelVariants.named(variant);
        }
    }

    @Benchmark
    public double norm(GradState grads, Variant variant) {
        return GlobalNorm.totalNorm(variant.kernels, grads.segments);
    }

    @Benchmark
    public double clip(GradState grads, Variant variant, ClipBenchmark.Target target) {
        double norm = GlobalNorm.clipGradNorm(variant.kernels, grads.segments, target.maxNorm);
        return target.after(norm, GlobalNorm.clipCoefficient(norm, target.maxNorm));
    }
}
