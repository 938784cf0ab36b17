package dev.gradclip.mpi;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * Open MPI's C entry points and predefined handles, bound through the FFM API. Open MPI's handles
 * ({@code MPI_COMM_WORLD}, {@code MPI_LONG}, {@code MPI_SUM}, ...) are the addresses of exported
 * globals such as {@code ompi_mpi_comm_world}; MPICH and its derivatives define them as integer
 * constants in mpi.h instead, so this binding is for Open MPI's ABI only.
 *
 * <p>Binding native code is what this class is for, so javac's "restricted method" lint is off here;
 * the JVM still asks users for {@code --enable-native-access}.
 */
@SuppressWarnings("restricted")
final class OpenMpiLibrary {

    /** Open MPI 3, 4 and 5 all ship this soname; MPICH's is libmpi.so.12. */
    static final String DEFAULT_LIBRARY = "libmpi.so.40";

    // <dlfcn.h> on Linux (glibc and musl).
    private static final int RTLD_NOW = 0x2;
    private static final int RTLD_GLOBAL = 0x100;

    /** {@code MPI_IN_PLACE} is {@code ((void *) 1)} in Open MPI's mpi.h. */
    static final MemorySegment IN_PLACE = MemorySegment.ofAddress(1);
    /**
     * {@code MPI_STATUS_IGNORE} is {@code ((MPI_Status *) 0)} in Open MPI's mpi.h; an
     * {@code MPI_Request} is a pointer ({@code struct ompi_request_t *}), held in native memory.
     */
    static final MemorySegment STATUS_IGNORE = MemorySegment.NULL;
    static final int MPI_SUCCESS = 0;
    /** The third value of the {@code MPI_THREAD_*} enum in Open MPI's mpi.h. */
    static final int MPI_THREAD_SERIALIZED = 2;
    /** {@code MPI_MAX_ERROR_STRING}, {@code MPI_MAX_LIBRARY_VERSION_STRING}: 256 in Open MPI 4. */
    static final int MAX_STRING = 256;

    final String library;
    final MemorySegment commWorld;
    final MemorySegment longType;
    final MemorySegment opSum;
    final MemorySegment opMax;
    final MemorySegment errorsReturn;

    final MethodHandle initialized;      // int MPI_Initialized(int *flag)
    final MethodHandle finalized;        // int MPI_Finalized(int *flag)
    final MethodHandle initThread;       // int MPI_Init_thread(int *argc, char ***argv, int required, int *provided)
    final MethodHandle commRank;         // int MPI_Comm_rank(MPI_Comm, int *)
    final MethodHandle commSize;         // int MPI_Comm_size(MPI_Comm, int *)
    final MethodHandle setErrhandler;    // int MPI_Comm_set_errhandler(MPI_Comm, MPI_Errhandler)
    final MethodHandle iallreduce;       // int MPI_Iallreduce(const void *, void *, int, MPI_Datatype, MPI_Op, MPI_Comm, MPI_Request *)
    final MethodHandle test;             // int MPI_Test(MPI_Request *, int *flag, MPI_Status *)
    final MethodHandle finalizeCall;     // int MPI_Finalize(void)
    final MethodHandle errorString;      // int MPI_Error_string(int, char *, int *)
    final MethodHandle libraryVersion;   // int MPI_Get_library_version(char *, int *)

    private OpenMpiLibrary(String library, SymbolFinder symbols) {
        this.library = library;
        Linker linker = Linker.nativeLinker();
        commWorld = symbols.find("ompi_mpi_comm_world");
        longType = symbols.find("ompi_mpi_long");
        opSum = symbols.find("ompi_mpi_op_sum");
        opMax = symbols.find("ompi_mpi_op_max");
        errorsReturn = symbols.find("ompi_mpi_errors_return");
        initialized = linker.downcallHandle(symbols.find("MPI_Initialized"), FunctionDescriptor.of(JAVA_INT, ADDRESS));
        finalized = linker.downcallHandle(symbols.find("MPI_Finalized"), FunctionDescriptor.of(JAVA_INT, ADDRESS));
        initThread = linker.downcallHandle(symbols.find("MPI_Init_thread"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS));
        commRank = linker.downcallHandle(symbols.find("MPI_Comm_rank"), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        commSize = linker.downcallHandle(symbols.find("MPI_Comm_size"), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        setErrhandler = linker.downcallHandle(symbols.find("MPI_Comm_set_errhandler"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        iallreduce = linker.downcallHandle(symbols.find("MPI_Iallreduce"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        test = linker.downcallHandle(symbols.find("MPI_Test"), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        finalizeCall = linker.downcallHandle(symbols.find("MPI_Finalize"), FunctionDescriptor.of(JAVA_INT));
        errorString = linker.downcallHandle(symbols.find("MPI_Error_string"),
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
        libraryVersion = linker.downcallHandle(symbols.find("MPI_Get_library_version"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    }

    /**
     * Loads {@code library} (a soname or a path) with {@code RTLD_NOW | RTLD_GLOBAL} and binds it.
     * The global scope matters: Open MPI's plugins (mca_*.so) resolve libmpi's symbols there, and
     * {@link SymbolLookup#libraryLookup} would load it with {@code RTLD_LOCAL}; Open MPI's own Java
     * bindings preload it the same way.
     *
     * @throws MpiException if the library cannot be loaded or does not have Open MPI's symbols
     */
    static OpenMpiLibrary load(String library) {
        MemoryLayout cLong = Linker.nativeLinker().canonicalLayouts().get("long");
        if (cLong == null || cLong.byteSize() != Long.BYTES) {
            // MPI_LONG must be the int64 the words are; true on every LP64 platform Open MPI runs on.
            throw new MpiException("MPI_LONG is not 64 bits on this platform (C long is "
                    + (cLong == null ? "unknown" : cLong.byteSize() * 8 + " bits") + "); gradclip's words are int64");
        }
        Linker linker = Linker.nativeLinker();
        SymbolLookup libc = linker.defaultLookup();
        MethodHandle dlopen = linker.downcallHandle(libcSymbol(libc, "dlopen"), FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_INT));
        MethodHandle dlsym = linker.downcallHandle(libcSymbol(libc, "dlsym"), FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS));
        MethodHandle dlerror = linker.downcallHandle(libcSymbol(libc, "dlerror"), FunctionDescriptor.of(ADDRESS));
        MemorySegment handle;
        try (Arena arena = Arena.ofConfined()) {
            handle = (MemorySegment) dlopen.invokeExact(arena.allocateFrom(library), RTLD_NOW | RTLD_GLOBAL);
            if (handle.equals(MemorySegment.NULL)) {
                throw new MpiException("cannot load " + library + " (Open MPI's libmpi): " + dlerrorText(dlerror)
                        + ". Install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev), or point "
                        + Mpi.LIBRARY_PROPERTY + " at its libmpi.so.40");
            }
        } catch (MpiException e) {
            throw e;
        } catch (Throwable t) {
            throw new MpiException("cannot call dlopen for " + library + ": " + t);
        }
        MemorySegment libraryHandle = handle;
        SymbolFinder symbols = name -> {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment address = (MemorySegment) dlsym.invokeExact(libraryHandle, arena.allocateFrom(name));
                if (address.equals(MemorySegment.NULL)) {
                    throw new MpiException(library + " is not Open MPI: it has no symbol " + name + ". gradclip's MPI"
                            + " adapter uses Open MPI's ABI, where MPI_COMM_WORLD, MPI_LONG and MPI_SUM are addresses"
                            + " of exported globals; MPICH, Intel MPI and MVAPICH define them differently and are not"
                            + " supported. Install Open MPI (apt-get install openmpi-bin libopenmpi-dev)");
                }
                return address;
            } catch (MpiException e) {
                throw e;
            } catch (Throwable t) {
                throw new MpiException("cannot call dlsym for " + name + " in " + library + ": " + t);
            }
        };
        // Checked first so that another MPI fails on the symbol that tells it apart.
        symbols.find("ompi_mpi_comm_world");
        return new OpenMpiLibrary(library, symbols);
    }

    private static MemorySegment libcSymbol(SymbolLookup libc, String name) {
        return libc.find(name).orElseThrow(() -> new MpiException(
                "the C library has no " + name + "; gradclip's MPI adapter needs Linux (glibc or musl)"));
    }

    private static String dlerrorText(MethodHandle dlerror) throws Throwable {
        MemorySegment text = (MemorySegment) dlerror.invokeExact();
        return text.equals(MemorySegment.NULL) ? "no reason given" : text.reinterpret(Integer.MAX_VALUE).getString(0);
    }

    /** Open MPI's text for an error code, e.g. "MPI_ERR_TRUNCATE: message truncated". */
    String errorText(int code) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment text = arena.allocate(MAX_STRING + 1);
            MemorySegment length = arena.allocate(JAVA_INT);
            int rc = (int) errorString.invokeExact(code, text, length);
            return rc == MPI_SUCCESS ? text.getString(0) : "unknown MPI error code";
        } catch (Throwable t) {
            return "unknown MPI error code (" + t + ")";
        }
    }

    @FunctionalInterface
    private interface SymbolFinder {
        MemorySegment find(String name);
    }
}
