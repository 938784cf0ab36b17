package dev.gradclip.bench;

import dev.gradclip.DType;
import dev.gradclip.internal.Clipping;
import dev.gradclip.internal.Engine;
import dev.gradclip.internal.KernelProvider;
import dev.gradclip.internal.NormState;
import dev.gradclip.internal.NormType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
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
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The 0.2 clip of every dtype, at 1 and 2 threads, with and without the per-tensor report, beside a
 * streaming limit over the same bytes and the plain scalar loop for that dtype. The clip is the
 * Clipper's own sequence (the engine's norm pass, the coefficient, the scale pass), driven directly
 * so that every call clips to just below the previous norm and therefore scales.
 *
 * <pre>java -jar benchmarks.jar --jmh ClipperBenchmark -p workload=gpt2-small,many-small</pre>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g", "--sun-misc-unsafe-memory-access=allow"})
public class ClipperBenchmark {

    @State(Scope.Thread)
    public static class Clip {
        @Param({"1", "2"})
        public int threads;

        @Param({"false", "true"})
        public boolean report;

        Engine engine;
        final NormState state = new NormState();
        double maxNorm = Double.POSITIVE_INFINITY;

        @Setup(Level.Trial)
        public void start() {
            engine = new Engine(KernelProvider.kernels(), threads, Engine.DEFAULT_MIN_PARALLEL_BYTES);
        }

        @TearDown(Level.Trial)
        public void stop() {
            engine.close();
        }
    }

    /** Norm (and report) pass, then a scale pass by maxNorm / (norm + 1e-6), as Clipper.clip does. */
    @Benchmark
    public double gradclip(TypedState grads, Clip clip) {
        clip.engine.norm(grads.table, NormType.L2, 2, clip.report, clip.report, clip.state);
        double norm = clip.state.norm();
        if (clip.maxNorm == Double.POSITIVE_INFINITY) {
            clip.maxNorm = norm;
        }
        double c = Clipping.coefficientFor(clip.maxNorm, norm);
        clip.engine.scale(grads.table, c);
        clip.maxNorm = norm * c * ClipBenchmark.SHRINK; // the next call scales too
        return norm;
    }

    /** What a user writes: widen each element with the JDK's conversions, a double sum, then a scale loop. */
    @Benchmark
    public double plain(TypedState grads) {
        double sum = 0;
        for (MemorySegment g : grads.segments) {
            long n = g.byteSize() / grads.type.byteSize();
            for (long i = 0; i < n; i++) {
                double x = load(grads.type, g, i);
                sum += x * x;
            }
        }
        double norm = Math.sqrt(sum);
        double c = ClipBenchmark.SHRINK; // just below 1: every call writes, the values stay alive
        for (MemorySegment g : grads.segments) {
            long n = g.byteSize() / grads.type.byteSize();
            for (long i = 0; i < n; i++) {
                store(grads.type, g, i, load(grads.type, g, i) * c);
            }
        }
        return norm;
    }

    /** One read pass and one read+write pass over the same bytes: what a clip of this dtype cannot beat. */
    @Benchmark
    public float limit(TypedState grads) {
        float sum = StreamLimit.read(grads.segments);
        StreamLimit.readWrite(grads.segments, 1f);
        return sum;
    }

    private static double load(DType type, MemorySegment g, long i) {
        return switch (type) {
            case FLOAT32 -> g.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            case FLOAT64 -> g.getAtIndex(ValueLayout.JAVA_DOUBLE, i);
            case FLOAT16 -> Float.float16ToFloat(g.getAtIndex(ValueLayout.JAVA_SHORT, i));
            case BFLOAT16 -> Float.intBitsToFloat(g.getAtIndex(ValueLayout.JAVA_SHORT, i) << 16);
        };
    }

    private static void store(DType type, MemorySegment g, long i, double value) {
        switch (type) {
            case FLOAT32 -> g.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) value);
            case FLOAT64 -> g.setAtIndex(ValueLayout.JAVA_DOUBLE, i, value);
            case FLOAT16 -> g.setAtIndex(ValueLayout.JAVA_SHORT, i, Float.floatToFloat16((float) value));
            case BFLOAT16 -> g.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits((float) value) >>> 16));
        }
    }
}
