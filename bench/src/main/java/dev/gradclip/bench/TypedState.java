package dev.gradclip.bench;

import dev.gradclip.DType;
import dev.gradclip.internal.TensorTable;
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

/** One workload's gradients in one dtype, off-heap in a shared arena (so worker threads may touch them). */
@State(Scope.Benchmark)
public class TypedState {

    @Param({"gpt2-small"})
    public String workload;

    @Param({"FLOAT32", "FLOAT64", "FLOAT16", "BFLOAT16"})
    public String dtype;

    public DType type;
    public List<MemorySegment> segments;
    public TensorTable table;
    private Arena arena;

    @Setup(Level.Trial)
    public void allocate() {
        type = DType.valueOf(dtype);
        arena = Arena.ofShared();
        List<float[]> values = Workloads.values(workload);
        segments = new ArrayList<>(values.size());
        for (float[] tensor : values) {
            MemorySegment segment = arena.allocate((long) tensor.length * type.byteSize(), 64);
            for (int i = 0; i < tensor.length; i++) {
                switch (type) {
                    case FLOAT32 -> segment.setAtIndex(ValueLayout.JAVA_FLOAT, i, tensor[i]);
                    case FLOAT64 -> segment.setAtIndex(ValueLayout.JAVA_DOUBLE, i, tensor[i]);
                    case FLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT, i, Float.floatToFloat16(tensor[i]));
                    case BFLOAT16 -> segment.setAtIndex(ValueLayout.JAVA_SHORT, i,
                            (short) (Float.floatToRawIntBits(tensor[i]) >>> 16));
                }
            }
            segments.add(segment);
        }
        MemorySegment[] array = segments.toArray(MemorySegment[]::new);
        DType[] types = new DType[array.length];
        String[] names = new String[array.length];
        for (int i = 0; i < array.length; i++) {
            types[i] = type;
            names[i] = "t" + i;
        }
        table = TensorTable.of(array, types, names);
    }

    @TearDown(Level.Trial)
    public void free() {
        arena.close();
    }
}
