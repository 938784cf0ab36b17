package dev.gradclip.bench;

import dev.gradclip.GradClip;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The global norm alone: gradclip's vector kernels, its scalar fallback, the plain loops a user
 * would write, and the read-only streaming limit, on the same gradients. Moves 4 bytes per element.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g", "--sun-misc-unsafe-memory-access=allow"})
public class NormBenchmark {

    @Benchmark
    public double gradclipVector(GradState grads) {
        return GradClip.totalNorm(grads.segments);
    }

    /** The fallback as a user without the flag gets it: forced by the system property, through the public API. */
    @Benchmark
    @Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g",
        "--sun-misc-unsafe-memory-access=allow", "-Dgradclip.kernels=scalar"})
    public double gradclipScalar(GradState grads) {
        return GradClip.totalNorm(grads.segments);
    }

    /**
     * normType 3: two passes (the maxima, then the powers relative to them), one StrictMath exp and log
     * per element. What a p other than 1, 2 and +Infinity costs beside {@link #gradclipVector}.
     */
    @Benchmark
    public double gradclipP3(GradState grads) {
        return GradClip.totalNorm(grads.gradients, 3);
    }

    @Benchmark
    public double plainDouble(GradState grads) {
        return grads.heap() ? PlainLoops.normDouble(grads.arrays) : PlainLoops.normDouble(grads.segments);
    }

    @Benchmark
    public double plainFloat(GradState grads) {
        return grads.heap() ? PlainLoops.normFloat(grads.arrays) : PlainLoops.normFloat(grads.segments);
    }

    @Benchmark
    public float limit(GradState grads) {
        return grads.heap() ? StreamLimit.read(grads.arrays) : StreamLimit.read(grads.segments);
    }
}
