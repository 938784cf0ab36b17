package dev.gradclip.bench;

import dev.gradclip.DType;
import dev.gradclip.GradClip;
import dev.gradclip.Gradients;
import dev.gradclip.demo.ModelShapes;
import dev.gradclip.internal.Clipping;
import dev.gradclip.internal.Engine;
import dev.gradclip.internal.KernelProvider;
import dev.gradclip.internal.NormState;
import dev.gradclip.internal.NormType;
import dev.gradclip.internal.TensorTable;
import dev.gradclip.internal.UnitClipping;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.SplittableRandom;
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
 * Adaptive gradient clipping over GPT-2-small shapes (Hugging Face layout: 148 tensors, 124,439,808
 * elements, 115,891 units) beside the global clip of the same gradients, at 1 and 2 threads, on
 * the same engine. AGC reads the gradients and the parameters (2 reads per element) and scales the
 * units that clip (a read and a write of those); the global clip reads the gradients and scales them
 * (3). So the fair comparison is per byte moved: {@code docs/adaptive.md} divides each time by its
 * bytes.
 *
 * <p>{@code clipping}: {@code none} (no unit reaches its bound: the norm pass alone), {@code half}
 * (every other row of each matrix clips, and no vector: 49.9 % of the elements), {@code all} (every
 * unit clips). The gradients are the parameters times 0.01 (rows that do not clip: times 0.001),
 * and the clip factor starts at 0.0099 and shrinks by 1 % each call, more than bfloat16's rounding
 * can move a unit's norm, so the same units clip on every call; each iteration starts again from a
 * copy of the gradients, made outside the measurement.
 *
 * <pre>java -jar benchmarks.jar --jmh AgcBenchmark -p clipping=none,all</pre>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx6g", "--sun-misc-unsafe-memory-access=allow"})
public class AgcBenchmark {

    /** Each call's clip factor is the previous one times this, so every unit that clipped is above its bound again. */
    static final double SHRINK = 0.99;

    @State(Scope.Benchmark)
    public static class Model {
        @Param({"FLOAT32", "BFLOAT16"})
        public String dtype;

        @Param({"none", "half", "all"})
        public String clipping;

        @Param({"1", "2"})
        public int threads;

        Arena arena;
        MemorySegment[] backup;
        Gradients grads;
        Gradients params;
        TensorTable gradTable;
        UnitClipping.Plan plan;
        Engine engine;
        final NormState state = new NormState();
        double clipFactor;
        double maxNorm = Double.POSITIVE_INFINITY;

        @Setup(Level.Trial)
        public void allocate() {
            DType type = DType.valueOf(dtype);
            List<ModelShapes.Tensor> tensors = ModelShapes.gpt2Small();
            arena = Arena.ofShared();
            Gradients.Builder g = Gradients.builder();
            Gradients.Builder p = Gradients.builder();
            MemorySegment[] gradSegments = new MemorySegment[tensors.size()];
            DType[] types = new DType[tensors.size()];
            String[] names = new String[tensors.size()];
            long[][] shapes = new long[tensors.size()][];
            SplittableRandom random = new SplittableRandom(42);
            for (int t = 0; t < tensors.size(); t++) {
                ModelShapes.Tensor tensor = tensors.get(t);
                long[] shape = gpt2Shape(tensor);
                long rows = shape.length < 2 ? 1 : shape[0];
                long rowLength = tensor.elements() / rows;
                MemorySegment gs = arena.allocate((long) tensor.elements() * type.byteSize(), 64);
                MemorySegment ps = arena.allocate((long) tensor.elements() * type.byteSize(), 64);
                for (long i = 0; i < tensor.elements(); i++) {
                    float w = (float) (2 * random.nextDouble() - 1);
                    boolean clips = switch (clipping) {
                        case "all" -> true;
                        case "half" -> shape.length >= 2 && (i / rowLength) % 2 == 0;
                        case "none" -> false;
                        default -> throw new IllegalArgumentException("clipping must be none, half or all");
                    };
                    set(type, ps, i, w);
                    set(type, gs, i, w * (clips ? 0.01f : 0.001f));
                }
                g.add(tensor.name(), gs, type, shape);
                p.add(tensor.name(), ps, type, shape);
                gradSegments[t] = gs;
                types[t] = type;
                names[t] = tensor.name();
                shapes[t] = shape.length < 2 ? null : shape;
            }
            grads = g.build();
            params = p.build();
            gradTable = TensorTable.of(gradSegments, types, names);
            MemorySegment[] paramSegments = new MemorySegment[tensors.size()];
            for (int t = 0; t < paramSegments.length; t++) {
                paramSegments[t] = params.segment(t);
            }
            plan = UnitClipping.plan(params, gradTable, TensorTable.of(paramSegments, types, names), shapes, k -> "t" + k);
            engine = new Engine(KernelProvider.kernels(), threads, Engine.DEFAULT_MIN_PARALLEL_BYTES);
            backup = new MemorySegment[gradSegments.length];
            for (int t = 0; t < backup.length; t++) {
                backup[t] = arena.allocate(Math.max(1, gradSegments[t].byteSize()), 64).copyFrom(gradSegments[t]);
            }
        }

        /** Each iteration starts from the same gradients and clip factor. */
        @Setup(Level.Iteration)
        public void restore() {
            for (int t = 0; t < backup.length; t++) {
                MemorySegment.copy(backup[t], 0, gradTable.segment(t), 0, gradTable.segment(t).byteSize());
            }
            clipFactor = clipping.equals("none") ? 1e9 : 0.01 * SHRINK;
            maxNorm = Double.POSITIVE_INFINITY;
        }

        @TearDown(Level.Trial)
        public void free() {
            engine.close();
            arena.close();
        }
    }

    /** Hugging Face GPT-2's parameter shapes (Conv1D weights are [in, out]); biases and layer norms are vectors. */
    static long[] gpt2Shape(ModelShapes.Tensor tensor) {
        String name = tensor.name();
        int d = 768;
        if (name.equals("wte.weight")) {
            return new long[] {50257, d};
        } else if (name.equals("wpe.weight")) {
            return new long[] {1024, d};
        } else if (name.endsWith("attn.c_attn.weight")) {
            return new long[] {d, 3 * d};
        } else if (name.endsWith("attn.c_proj.weight")) {
            return new long[] {d, d};
        } else if (name.endsWith("mlp.c_fc.weight")) {
            return new long[] {d, 4 * d};
        } else if (name.endsWith("mlp.c_proj.weight")) {
            return new long[] {4 * d, d};
        }
        return new long[] {tensor.elements()};
    }

    private static void set(DType type, MemorySegment segment, long i, float value) {
        switch (type) {
            case FLOAT32 -> segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, value);
            case BFLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) (Float.floatToRawIntBits(value) >>> 16));
            default -> throw new IllegalArgumentException("dtype " + type);
        }
    }

    /** AGC on the benchmark's engine: one pass over the runs of units, their norms in both sets, their factors, and the units that clip scaled. */
    @Benchmark
    public int agc(Model m) {
        int clipped = UnitClipping.clip(m.engine, m.plan, m.gradTable, m.clipFactor, 1e-3);
        if (!m.clipping.equals("none")) {
            m.clipFactor *= SHRINK;
        }
        return clipped;
    }

    /**
     * The public entry point, on the shared pool of all available processors (so only meaningful at
     * {@code threads=2} on this machine): the same work plus the per-call checks.
     */
    @Benchmark
    public int agcPublic(Model m) {
        int clipped = GradClip.adaptiveGradClip(m.grads, m.params, m.clipFactor, 1e-3);
        if (!m.clipping.equals("none")) {
            m.clipFactor *= SHRINK;
        }
        return clipped;
    }

    /** The global clip of the same gradients, scaling on every call as ClipBenchmark does: norm pass, then scale pass. */
    @Benchmark
    public double globalClip(Model m) {
        m.engine.norm(m.gradTable, NormType.L2, 2, false, false, m.state);
        double norm = m.state.norm();
        if (m.maxNorm == Double.POSITIVE_INFINITY) {
            m.maxNorm = norm * ClipBenchmark.SHRINK;
        }
        double c = Clipping.coefficientFor(m.maxNorm, norm);
        m.engine.scale(m.gradTable, c);
        m.maxNorm = norm * c * ClipBenchmark.SHRINK;
        return norm;
    }
}
