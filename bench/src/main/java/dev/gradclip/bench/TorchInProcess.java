package dev.gradclip.bench;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.function.DoubleSupplier;

/**
 * torch 1.13's {@code clip_grad_norm_} inside this JVM: CPython is embedded through FFM and runs
 * bench/torch/clip_bench.py's {@code clipper}, so that {@link Interleaved} can time torch round by round
 * beside gradclip, as it does the C loop ({@link CLoop}). Run as a separate process minutes apart,
 * torch and gradclip can land in different states of this shared machine.
 *
 * <p>Python is started once, on the thread that calls every method here (it keeps the GIL), without
 * its signal handlers ({@code Py_InitializeEx(0)}), which would take the JVM's. Timing from Java includes
 * parsing a one-line statement, a few microseconds against the tens of milliseconds of a clip.
 */
final class TorchInProcess {

    /** Debian 12's CPython, the one python3-torch is built for. */
    static final String LIBRARY = "libpython3.11.so.1";
    private static final int RTLD_NOW = 2;
    private static final int RTLD_GLOBAL = 0x100;

    private final Arena arena = Arena.ofAuto();
    private final MethodHandle run;

    private TorchInProcess(MethodHandle run) {
        this.run = run;
    }

    /**
     * Loads CPython with {@code RTLD_GLOBAL} (torch's extension modules resolve the interpreter's symbols
     * in the global scope, which {@link SymbolLookup#libraryLookup}'s {@code RTLD_LOCAL} would hide),
     * starts it and imports torch and bench/torch/clip_bench.py from {@code benchTorch}.
     */
    static TorchInProcess start(String benchTorch) {
        Linker linker = Linker.nativeLinker();
        SymbolLookup libc = linker.defaultLookup();
        try (Arena names = Arena.ofConfined()) {
            MethodHandle dlopen = linker.downcallHandle(libc.find("dlopen").orElseThrow(),
                    FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT));
            MethodHandle dlsym = linker.downcallHandle(libc.find("dlsym").orElseThrow(),
                    FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS));
            MemorySegment handle = (MemorySegment) dlopen.invokeExact(names.allocateFrom(LIBRARY), RTLD_NOW | RTLD_GLOBAL);
            if (handle.equals(MemorySegment.NULL)) {
                throw new IllegalStateException("cannot load " + LIBRARY + " (Debian: apt-get install libpython3.11)");
            }
            MemorySegment initialize = (MemorySegment) dlsym.invokeExact(handle, names.allocateFrom("Py_InitializeEx"));
            MemorySegment simpleString = (MemorySegment) dlsym.invokeExact(handle, names.allocateFrom("PyRun_SimpleString"));
            linker.downcallHandle(initialize, FunctionDescriptor.ofVoid(JAVA_INT)).invokeExact(0);
            TorchInProcess torch = new TorchInProcess(
                    linker.downcallHandle(simpleString, FunctionDescriptor.of(JAVA_INT, ADDRESS)));
            torch.exec("import sys, torch\nsys.path.insert(0, '" + benchTorch + "')\nimport clip_bench\nclips = {}");
            return torch;
        } catch (IllegalStateException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cannot start CPython through " + LIBRARY + ": " + t, t);
        }
    }

    /**
     * A clip of {@code workload}'s gradients in {@code dtype} (torch's name, e.g. "bfloat16") at
     * {@code threads} threads, as an {@link Interleaved} contender (its value is 0: the norm stays in
     * Python); the gradients are built on the first call for the pair, and shared.
     */
    DoubleSupplier clipper(String workload, String dtype, int threads) {
        String key = workload + "/" + dtype;
        exec("if '" + key + "' not in clips:\n    clips['" + key + "'] = clip_bench.clipper('" + dtype + "', clip_bench."
                + workload.replace('-', '_') + "())[1]");
        MemorySegment statement = arena.allocateFrom("torch.set_num_threads(" + threads + "); clips['" + key + "']()");
        return () -> {
            exec(statement);
            return 0;
        };
    }

    private void exec(String code) {
        exec(arena.allocateFrom(code));
    }

    private void exec(MemorySegment code) {
        int status;
        try {
            status = (int) run.invokeExact(code);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (status != 0) {
            throw new IllegalStateException("Python failed (its traceback is on stderr): " + code.getString(0));
        }
    }
}
