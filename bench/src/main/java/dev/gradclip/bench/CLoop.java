package dev.gradclip.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;

/**
 * The C baseline of bench/c/clip_loop.c (gcc, OpenMP), loaded into this JVM as a shared library
 * ({@code bench/c/run.sh lib}), so that {@link Interleaved} can run it round by round beside gradclip:
 * the machine's load then hits both alike, where two processes run minutes apart may land in
 * different states of this shared machine. It clips one flat float32 buffer of the same element count
 * and values as the workload (one buffer, as the stand-alone C baseline does).
 */
final class CLoop implements AutoCloseable {

    private final Arena arena = Arena.ofShared();
    private final MethodHandle clip;
    private final MemorySegment flat;
    private final long elements;
    private double maxNorm = Double.POSITIVE_INFINITY;

    CLoop(Path library, String workload) {
        Linker linker = Linker.nativeLinker();
        SymbolLookup lookup = SymbolLookup.libraryLookup(library, arena);
        clip = linker.downcallHandle(lookup.find("clip_loop").orElseThrow(),
                FunctionDescriptor.of(ValueLayout.JAVA_DOUBLE, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                        ValueLayout.JAVA_DOUBLE, ValueLayout.JAVA_INT));
        elements = Workloads.elements(workload);
        flat = arena.allocate(elements * Float.BYTES, 64);
        long at = 0;
        for (float[] tensor : Workloads.values(workload)) {
            MemorySegment.copy(tensor, 0, flat, ValueLayout.JAVA_FLOAT, at * Float.BYTES, tensor.length);
            at += tensor.length;
        }
    }

    /**
     * One C clip at {@code threads} OpenMP threads. The first call only finds the norm (the bound starts
     * at infinity); from the second on every call scales, as the Java contenders do (warm-up covers the first).
     */
    double clip(int threads) {
        try {
            double norm = (double) clip.invokeExact(flat, elements, maxNorm, threads);
            double c = (float) (Math.min(maxNorm, norm) / (norm + 1e-6));
            maxNorm = norm * c * ClipBenchmark.SHRINK;
            return norm;
        } catch (Throwable e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}
