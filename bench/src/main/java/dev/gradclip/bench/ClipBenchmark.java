package dev.gradclip.bench;

import dev.gradclip.GradClip;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * A full clip that scales on every call: norm pass plus scale pass, 12 bytes per element. Each call
 * clips to just below the norm the previous call left, so every call scales, and the values shrink
 * by well under 1e-6 per call: they stay finite and far from subnormal for the whole fork.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g", "--sun-misc-unsafe-memory-access=allow"})
public class ClipBenchmark {

    /** Below 1 by more than float32 rounding (2^-24), so the next call always has to scale. */
    static final double SHRINK = 1 - 0x1p-22;

    /** The next clip target: just below the norm that the previous call left. */
    @State(Scope.Thread)
    public static class Target {
        double maxNorm;

        @Setup(Level.Trial)
        public void start(GradState grads) {
            maxNorm = SHRINK * (grads.heap() ? PlainLoops.normDouble(grads.arrays) : PlainLoops.normDouble(grads.segments));
        }

        /** After a clip of {@code norm} by {@code c}, the norm is {@code norm * c} up to float rounding. */
        double after(double norm, double c) {
            maxNorm = norm * c * SHRINK;
            return norm;
        }
    }

    @Benchmark
    public double gradclipVector(GradState grads, Target target) {
        double norm = GradClip.clipGradNorm(grads.segments, target.maxNorm);
        return target.after(norm, GradClip.clipCoefficient(norm, target.maxNorm));
    }

    @Benchmark
    @Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g",
        "--sun-misc-unsafe-memory-access=allow", "-Dgradclip.kernels=scalar"})
    public double gradclipScalar(GradState grads, Target target) {
        double norm = GradClip.clipGradNorm(grads.segments, target.maxNorm);
        return target.after(norm, GradClip.clipCoefficient(norm, target.maxNorm));
    }

    @Benchmark
    public double plainDouble(GradState grads, Target target) {
        double norm = grads.heap() ? PlainLoops.normDouble(grads.arrays) : PlainLoops.normDouble(grads.segments);
        return plainScale(grads, target, norm);
    }

    @Benchmark
    public double plainFloat(GradState grads, Target target) {
        double norm = grads.heap() ? PlainLoops.normFloat(grads.arrays) : PlainLoops.normFloat(grads.segments);
        return plainScale(grads, target, norm);
    }

    private static double plainScale(GradState grads, Target target, double norm) {
        float c = PlainLoops.coefficient(norm, target.maxNorm);
        if (norm > target.maxNorm) {
            if (grads.heap()) {
                PlainLoops.scale(grads.arrays, c);
            } else {
                PlainLoops.scale(grads.segments, c);
            }
        }
        return target.after(norm, c);
    }

    /** One read pass and one read+write pass over the same bytes: what a clip cannot beat. */
    @Benchmark
    public float limit(GradState grads) {
        float sum = grads.heap() ? StreamLimit.read(grads.arrays) : StreamLimit.read(grads.segments);
        if (grads.heap()) {
            StreamLimit.readWrite(grads.arrays, (float) SHRINK);
        } else {
            StreamLimit.readWrite(grads.segments, (float) SHRINK);
        }
        return sum;
    }
}
