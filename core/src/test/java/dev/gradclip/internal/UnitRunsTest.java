package dev.gradclip.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.gradclip.DType;
import dev.gradclip.GradClip;
import dev.gradclip.Gradients;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The norm pass of adaptive clipping in runs ({@link UnitRuns}) gives every unit, to the bit, the
 * norm of its slice as a tensor of its own, on 1 to 3 threads: tensors of many runs
 * ({@link UnitRuns#RUN_ELEMENTS}), units longer than a block, and units of NaN, infinities and
 * (float64) magnitudes that the engine sums rescaled.
 */
class UnitRunsTest {

    /** 300 units of 250 split into two runs; units of 5,000 and 9,000 elements span blocks; 768 is a GPT-2 row. */
    private static final long[][] SHAPES = {{300, 250}, {3, 5000}, {2, 9000}, {5, 768}, {1, 1}, {7}};

    private static void fill(MemorySegment segment, DType type, long units, long length, SplittableRandom random) {
        for (long u = 0; u < units; u++) {
            for (long k = 0; k < length; k++) {
                double x = random.nextDouble(-1, 1);
                double value = switch ((int) (u % 5)) {
                    case 1 -> type == DType.FLOAT64 ? x * 0x1p700 : x * 3e4;
                    case 2 -> type == DType.FLOAT64 ? x * 0x1p-700 : x * 1e-6;
                    case 3 -> k == length - 1 ? Double.NaN : x;
                    case 4 -> k == length / 3 ? Double.POSITIVE_INFINITY : x;
                    default -> x;
                };
                KernelsTest.setElement(segment, type, u * length + k, value);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void everyUnitsNormIsItsSlicesNormOnAnyThreadCount(DType type) {
        int tensors = SHAPES.length;
        MemorySegment[] grads = new MemorySegment[tensors];
        MemorySegment[] params = new MemorySegment[tensors];
        DType[] types = new DType[tensors];
        String[] names = new String[tensors];
        SplittableRandom random = new SplittableRandom(7);
        try (Arena arena = Arena.ofShared()) {
            for (int t = 0; t < tensors; t++) {
                long[] shape = SHAPES[t];
                long elements = shape.length < 2 ? shape[0] : shape[0] * shape[1];
                long units = shape.length < 2 ? 1 : shape[0];
                grads[t] = arena.allocate(elements * type.byteSize(), 8);
                params[t] = arena.allocate(elements * type.byteSize(), 8);
                fill(grads[t], type, units, elements / units, random);
                fill(params[t], type, units, elements / units, random);
                types[t] = type;
                names[t] = "t" + t;
            }
            TensorTable gradTable = TensorTable.of(grads, types, names);
            UnitClipping.Plan plan = UnitClipping.plan(params, gradTable, TensorTable.of(params, types, names), SHAPES,
                    i -> "t" + i);
            for (int threads = 1; threads <= 3; threads++) {
                try (Engine engine = new Engine(KernelProvider.kernels(), threads, 0)) {
                    assertEquals(0, UnitClipping.clip(engine, plan, gradTable, 1e30, 1e-3), "nothing clips");
                    int entry = 0;
                    for (int t = 0; t < tensors; t++) {
                        long units = SHAPES[t].length < 2 ? 1 : SHAPES[t][0];
                        for (MemorySegment set : new MemorySegment[] {grads[t], params[t]}) {
                            long bytes = set.byteSize() / units;
                            for (long u = 0; u < units; u++, entry++) {
                                double alone = GradClip.totalNorm(Gradients.of(type, List.of(set.asSlice(u * bytes, bytes))));
                                assertEquals(Double.doubleToRawLongBits(alone), Double.doubleToRawLongBits(plan.norm(entry)),
                                        type + " on " + threads + " threads, tensor " + t + " unit " + u + ": " + alone
                                                + " vs " + plan.norm(entry));
                            }
                        }
                    }
                    assertEquals(2 * plan.units(), entry);
                }
            }
        }
    }
}
