package dev.gradclip.bench;

import dev.gradclip.DType;
import dev.gradclip.internal.Clipping;
import dev.gradclip.internal.Engine;
import dev.gradclip.internal.ExactSum;
import dev.gradclip.internal.KernelProvider;
import dev.gradclip.internal.Kernels;
import dev.gradclip.internal.NormState;
import dev.gradclip.internal.NormType;
import dev.gradclip.internal.TensorTable;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;
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
 * What does one summation order on every CPU cost (docs/performance.md, section "The fixed summation
 * order")? The shipped float32 norm (32 fixed lanes: 8 rotating accumulators of 4 doubles, fma, exact
 * block sums) beside two width-dependent orders: {@code v01}, gradclip 0.1's kernel as it shipped (4
 * accumulators of the preferred width, multiply then add, a Neumaier sum of the blocks), and
 * {@code widthFma}, the same with fma and the exact block sums (the fastest width-dependent kernel
 * measured). The clip adds the shipped scale pass to each. Float32, one thread.
 *
 * <pre>java -jar benchmarks.jar --jmh OrderBenchmark -p workload=flat-4K,flat-16M,gpt2-small -p memory=native</pre>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "-Xmx4g", "--sun-misc-unsafe-memory-access=allow"})
public class OrderBenchmark {

    static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_PREFERRED;
    static final VectorSpecies<Float> HALF_FLOATS =
            VectorSpecies.of(float.class, VectorShape.forBitSize(DOUBLES.vectorBitSize() / 2));
    static final int W = DOUBLES.length();
    static final ByteOrder ORDER = ByteOrder.nativeOrder();

    @State(Scope.Thread)
    public static class Order {
        @Param({"shipped", "v01", "widthFma"})
        public String order;

        Engine engine;
        TensorTable table;
        final NormState state = new NormState();
        final ExactSum exact = new ExactSum();

        @Setup(Level.Trial)
        public void start(GradState grads) {
            engine = new Engine(KernelProvider.kernels(), 1, Long.MAX_VALUE);
            MemorySegment[] segments = grads.segments.toArray(MemorySegment[]::new);
            DType[] types = new DType[segments.length];
            String[] names = new String[segments.length];
            for (int i = 0; i < segments.length; i++) {
                types[i] = DType.FLOAT32;
                names[i] = "t" + i;
            }
            table = TensorTable.of(segments, types, names);
        }

        double norm() {
            return switch (order) {
                case "shipped" -> {
                    engine.norm(table, NormType.L2, 2, false, false, state);
                    yield state.norm();
                }
                case "v01" -> v01Norm(table);
                case "widthFma" -> widthFmaNorm(table, exact);
                default -> throw new IllegalArgumentException(order);
            };
        }
    }

    @Benchmark
    public double norm(Order order) {
        return order.norm();
    }

    @Benchmark
    public double clip(Order order, ClipBenchmark.Target target) {
        double norm = order.norm();
        double c = Clipping.coefficientFor(target.maxNorm, norm);
        order.engine.scale(order.table, c);
        return target.after(norm, c);
    }

    private static DoubleVector widen(MemorySegment m, long byteOffset) {
        return (DoubleVector) FloatVector.fromMemorySegment(HALF_FLOATS, m, byteOffset, ORDER)
                .convertShape(VectorOperators.F2D, DOUBLES, 0);
    }

    private static double tail(MemorySegment m, long from, long end) {
        double tail = 0;
        for (long i = from; i < end; i++) {
            double x = m.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
            tail += x * x;
        }
        return tail;
    }

    private static double fold(DoubleVector v) {
        double s = 0;
        for (int i = 0; i < W; i++) {
            s += v.lane(i);
        }
        return s;
    }

    /** 0.1: 4 accumulators of the preferred width, multiply and add; blocks into a Neumaier sum. */
    static double v01Norm(TensorTable table) {
        double sum = 0;
        double compensation = 0;
        for (int t = 0; t < table.size(); t++) {
            MemorySegment m = table.segment(t);
            long n = table.elements(t);
            for (long from = 0; from < n; from += Kernels.BLOCK) {
                int count = (int) Math.min(Kernels.BLOCK, n - from);
                int full = count - count % (4 * W);
                DoubleVector a0 = DoubleVector.zero(DOUBLES), a1 = a0, a2 = a0, a3 = a0;
                for (int k = 0; k < full; k += 4 * W) {
                    long at = (from + k) * Float.BYTES;
                    DoubleVector x0 = widen(m, at);
                    DoubleVector x1 = widen(m, at + 4L * W);
                    DoubleVector x2 = widen(m, at + 8L * W);
                    DoubleVector x3 = widen(m, at + 12L * W);
                    a0 = a0.add(x0.mul(x0));
                    a1 = a1.add(x1.mul(x1));
                    a2 = a2.add(x2.mul(x2));
                    a3 = a3.add(x3.mul(x3));
                }
                double block = fold(a0.add(a2).add(a1.add(a3))) + tail(m, from + full, from + count);
                double s = sum + block;
                compensation += sum >= block ? (sum - s) + block : (block - s) + sum;
                sum = s;
            }
        }
        return Math.sqrt(sum + compensation);
    }

    /**
     * 4 accumulators of the preferred width with fma; blocks into the exact sum. A copy of
     * {@link #v01Norm}'s loop with two lines changed, not a flag: a flag choosing between vector
     * expressions in the loop makes C2 box the vectors (docs/performance.md, section "One loop per dtype").
     */
    static double widthFmaNorm(TensorTable table, ExactSum exact) {
        exact.clear();
        for (int t = 0; t < table.size(); t++) {
            MemorySegment m = table.segment(t);
            long n = table.elements(t);
            for (long from = 0; from < n; from += Kernels.BLOCK) {
                int count = (int) Math.min(Kernels.BLOCK, n - from);
                int full = count - count % (4 * W);
                DoubleVector a0 = DoubleVector.zero(DOUBLES), a1 = a0, a2 = a0, a3 = a0;
                for (int k = 0; k < full; k += 4 * W) {
                    long at = (from + k) * Float.BYTES;
                    DoubleVector x0 = widen(m, at);
                    DoubleVector x1 = widen(m, at + 4L * W);
                    DoubleVector x2 = widen(m, at + 8L * W);
                    DoubleVector x3 = widen(m, at + 12L * W);
                    a0 = x0.fma(x0, a0);
                    a1 = x1.fma(x1, a1);
                    a2 = x2.fma(x2, a2);
                    a3 = x3.fma(x3, a3);
                }
                exact.add(fold(a0.add(a2).add(a1.add(a3))) + tail(m, from + full, from + count), 0);
            }
        }
        return exact.sqrt();
    }
}
