package dev.gradclip.bench;

import dev.gradclip.DType;
import dev.gradclip.Gradients;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * One workload's gradients, either off-heap (one native segment per tensor) or on the heap
 * ({@code float[]} per tensor, also wrapped as heap segments for the gradclip kernels). Each
 * combination runs in its own fork, so heap and native never share a profile: mixing them in one
 * call site would pollute the JIT's type profile, a cost the numbers should show, not hide.
 */
@State(Scope.Benchmark)
public class GradState {

    @Param({"flat-4K", "flat-64K", "flat-1M", "flat-16M", "flat-64M", "gpt2-small", "resnet50", "many-small"})
    public String workload;

    @Param({"native", "heap"})
    public String memory;

    /** Native or heap segments, one per tensor. */
    public List<MemorySegment> segments;

    /** The arrays behind heap segments; null for native. */
    public float[][] arrays;

    /** The same segments as float32 {@link Gradients}, for the entry points that take them. */
    public Gradients gradients;

    private Arena arena;

    @Setup(Level.Trial)
    public void allocate() {
        List<float[]> values = Workloads.values(workload);
        segments = new ArrayList<>(values.size());
        if (memory.equals("heap")) {
            arrays = values.toArray(float[][]::new);
            for (float[] array : arrays) {
                segments.add(MemorySegment.ofArray(array));
            }
        } else if (memory.equals("native")) {
            arena = Arena.ofShared();
            for (float[] tensor : values) {
                MemorySegment segment = arena.allocate(ValueLayout.JAVA_FLOAT, tensor.length);
                MemorySegment.copy(tensor, 0, segment, ValueLayout.JAVA_FLOAT, 0, tensor.length);
                segments.add(segment);
            }
        } else {
            throw new IllegalArgumentException("memory must be native or heap, was " + memory);
        }
        gradients = Gradients.of(DType.FLOAT32, segments);
    }

    public boolean heap() {
        return arrays != null;
    }

    @TearDown(Level.Trial)
    public void free() {
        if (arena != null) {
            arena.close();
        }
    }
}
