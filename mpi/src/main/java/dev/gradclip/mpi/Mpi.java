package dev.gradclip.mpi;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.gradclip.AllReduce;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Open MPI's {@code MPI_COMM_WORLD}, through the FFM API: no JNI, no jar beyond gradclip's, only
 * Open MPI's {@code libmpi.so.40} at run time. Every rank of an {@code mpirun} job calls
 * {@link #init()} once, hands the instance to a {@code Clipper} as its all-reduce hook, and closes it
 * at the end:
 *
 * <pre>{@code
 * try (Mpi mpi = Mpi.init()) {
 *     Clipper clipper = Clipper.builder().maxNorm(1.0).allReduce(mpi).build();
 *     ... clipper.clip(localShards) on every rank, every step ...
 * }
 * }</pre>
 *
 * Run the JVMs with {@code --enable-native-access=ALL-UNNAMED} (or the module's name), e.g.
 * {@code mpirun -np 4 java --enable-native-access=ALL-UNNAMED -cp ... Main}; without it the JDK
 * prints a warning on the first native call.
 *
 * <p><b>Open MPI only.</b> Open MPI's handles are addresses of exported globals
 * ({@code ompi_mpi_comm_world}, ...); MPICH, Intel MPI and MVAPICH use integer handles, another ABI.
 * {@code init()} fails with an {@link MpiException} that says so, and one that says how to install
 * Open MPI when the library is missing. System property {@value #LIBRARY_PROPERTY} names another
 * libmpi (a path), e.g. an Open MPI under /opt.
 *
 * <p><b>Calls.</b> {@link #sum} and {@link #max} are {@code MPI_Allreduce(MPI_IN_PLACE, ..., MPI_LONG,
 * MPI_SUM or MPI_MAX, MPI_COMM_WORLD)}. As for every collective, every rank must make the same
 * sequence of calls with the same word count. The count is checked by default (see
 * {@link #checkLengths(boolean)}), so that ranks passing different counts get an
 * {@link IllegalArgumentException} instead of MPI's undefined behaviour (a hang, a truncation, or
 * wrong words). MPI errors come back as {@link MpiException}s: the communicator's error handler is
 * set to {@code MPI_ERRORS_RETURN}. Calls are serialized on this instance and may come from any
 * thread ({@code MPI_THREAD_SERIALIZED} is requested). After warm-up they allocate nothing on the
 * Java heap: the words go through one native buffer that grows to the largest count seen.
 */
public final class Mpi implements AllReduce, AutoCloseable {

    /** System property: the libmpi to load, a soname or a path; default {@code libmpi.so.40}. */
    public static final String LIBRARY_PROPERTY = "gradclip.mpi.library";

    /** MPI can be initialized once per process; guarded by the class lock. */
    private static Mpi open;
    private static boolean finalizedByUs;

    private final OpenMpiLibrary lib;
    private final boolean ownsMpi;
    private final int rank;
    private final int size;
    private final String libraryVersion;
    /** The words' native buffer; replaced (and the old arena closed) when a longer array comes. */
    private Arena bufferArena;
    private MemorySegment buffer;
    /** Two words for the length check: {@code n} and {@code -n}, reduced with MAX. */
    private final MemorySegment lengths;
    private final Arena lengthsArena;
    private boolean checkLengths = true;
    private boolean closed;

    private Mpi(OpenMpiLibrary lib, boolean ownsMpi) {
        this.lib = lib;
        this.ownsMpi = ownsMpi;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            check((int) lib.setErrhandler.invokeExact(lib.commWorld, lib.errorsReturn), "MPI_Comm_set_errhandler");
            check((int) lib.commRank.invokeExact(lib.commWorld, out), "MPI_Comm_rank");
            rank = out.get(JAVA_INT, 0);
            check((int) lib.commSize.invokeExact(lib.commWorld, out), "MPI_Comm_size");
            size = out.get(JAVA_INT, 0);
            MemorySegment version = arena.allocate(OpenMpiLibrary.MAX_STRING + 1);
            check((int) lib.libraryVersion.invokeExact(version, out), "MPI_Get_library_version");
            libraryVersion = version.getString(0).strip();
        } catch (MpiException e) {
            throw e;
        } catch (Throwable t) {
            throw new MpiException("MPI call failed: " + t);
        }
        lengthsArena = Arena.ofShared();
        lengths = lengthsArena.allocate(JAVA_LONG, 2);
        bufferArena = Arena.ofShared();
        buffer = bufferArena.allocate(JAVA_LONG, 64);
    }

    /**
     * Loads Open MPI, calls {@code MPI_Init_thread} (asking for {@code MPI_THREAD_SERIALIZED}) and
     * returns {@code MPI_COMM_WORLD}. If MPI was already initialized by other code in this process,
     * the instance uses it and {@link #close()} leaves finalizing to that code.
     *
     * @throws MpiException if libmpi is missing, is not Open MPI, or MPI fails to initialize
     * @throws IllegalStateException if this process already holds an open {@code Mpi}, or MPI was
     *     finalized (MPI cannot be initialized twice in one process)
     */
    public static synchronized Mpi init() {
        if (open != null) {
            throw new IllegalStateException("MPI is already initialized in this process: use the Mpi instance that"
                    + " the first Mpi.init() returned (MPI can be initialized once per process)");
        }
        if (finalizedByUs) {
            throw new IllegalStateException("MPI was finalized in this process (Mpi.close()); MPI cannot be"
                    + " initialized again in the same process");
        }
        OpenMpiLibrary lib = OpenMpiLibrary.load(System.getProperty(LIBRARY_PROPERTY, OpenMpiLibrary.DEFAULT_LIBRARY));
        boolean owns;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment flag = arena.allocate(JAVA_INT);
            check(lib, (int) lib.finalized.invokeExact(flag), "MPI_Finalized");
            if (flag.get(JAVA_INT, 0) != 0) {
                throw new IllegalStateException("MPI was already finalized in this process; it cannot be initialized again");
            }
            check(lib, (int) lib.initialized.invokeExact(flag), "MPI_Initialized");
            owns = flag.get(JAVA_INT, 0) == 0;
            if (owns) {
                MemorySegment provided = arena.allocate(JAVA_INT);
                check(lib, (int) lib.initThread.invokeExact(MemorySegment.NULL, MemorySegment.NULL,
                        OpenMpiLibrary.MPI_THREAD_SERIALIZED, provided), "MPI_Init_thread");
            }
        } catch (MpiException | IllegalStateException e) {
            throw e;
        } catch (Throwable t) {
            throw new MpiException("MPI initialization failed: " + t);
        }
        open = new Mpi(lib, owns);
        return open;
    }

    /** This process's rank in {@code MPI_COMM_WORLD}, from 0 to {@code size() - 1}. */
    public int rank() {
        return rank;
    }

    /** The number of ranks in {@code MPI_COMM_WORLD}. */
    public int size() {
        return size;
    }

    /** Open MPI's {@code MPI_Get_library_version} text, e.g. "Open MPI v4.1.4, package: ...". */
    public String libraryVersion() {
        return libraryVersion;
    }

    /**
     * Whether each {@link #sum}/{@link #max} first checks that every rank passes the same word count
     * (default true). The check is one extra all-reduce of two words (the count and its negation,
     * with MAX: every rank sees the largest and the smallest count), so it about doubles the latency
     * of a small all-reduce: 2.9 to 5.9 µs per call at -np 2 on the machine of docs/sharding.md,
     * section "What the hook costs", small beside a clip of a model worth sharding. Turn it off only
     * on every rank alike: the setting changes the call sequence, and ranks that disagree on it hang.
     *
     * @return this instance
     */
    public synchronized Mpi checkLengths(boolean check) {
        checkLengths = check;
        return this;
    }

    /** Element-wise int64 sum over every rank, in place: {@code MPI_Allreduce} with {@code MPI_SUM}. */
    @Override
    public synchronized void sum(long[] words) {
        allReduce(words, lib.opSum, "MPI_SUM");
    }

    /** Element-wise int64 maximum over every rank, in place: {@code MPI_Allreduce} with {@code MPI_MAX}. */
    @Override
    public synchronized void max(long[] words) {
        allReduce(words, lib.opMax, "MPI_MAX");
    }

    private void allReduce(long[] words, MemorySegment op, String opName) {
        Objects.requireNonNull(words, "words");
        if (closed) {
            throw new IllegalStateException("this Mpi is closed (MPI_Finalize was called)");
        }
        int count = words.length;
        if (checkLengths) {
            agreeOnLength(count);
        }
        if (buffer.byteSize() < (long) count * Long.BYTES) {
            grow(count);
        }
        // Through a native buffer rather than the heap array: a critical downcall could pass the array
        // itself, but it would hold off GC for as long as the slowest rank keeps this one waiting.
        MemorySegment.copy(words, 0, buffer, JAVA_LONG, 0, count);
        int rc;
        try {
            rc = (int) lib.allreduce.invokeExact(OpenMpiLibrary.IN_PLACE, buffer, count, lib.longType, op, lib.commWorld);
        } catch (Throwable t) {
            throw new MpiException("MPI_Allreduce(" + opName + ") failed: " + t);
        }
        if (rc != OpenMpiLibrary.MPI_SUCCESS) { // the message is built only on failure: no garbage per call
            check(rc, "MPI_Allreduce(" + opName + ", " + count + " words)");
        }
        MemorySegment.copy(buffer, JAVA_LONG, 0, words, 0, count);
    }

    /** Every rank learns the largest and smallest count, so every rank detects a mismatch. */
    private void agreeOnLength(int count) {
        lengths.setAtIndex(JAVA_LONG, 0, count);
        lengths.setAtIndex(JAVA_LONG, 1, -(long) count);
        int rc;
        try {
            rc = (int) lib.allreduce.invokeExact(OpenMpiLibrary.IN_PLACE, lengths, 2, lib.longType, lib.opMax, lib.commWorld);
        } catch (Throwable t) {
            throw new MpiException("MPI_Allreduce (length check) failed: " + t);
        }
        check(rc, "MPI_Allreduce (length check)");
        long largest = lengths.getAtIndex(JAVA_LONG, 0);
        long smallest = -lengths.getAtIndex(JAVA_LONG, 1);
        if (largest != count || smallest != count) {
            throw new IllegalArgumentException("words has " + count + " elements on rank " + rank
                    + ", but other ranks pass between " + smallest + " and " + largest
                    + ": every rank must pass the same word count (the same call sequence)");
        }
    }

    private void grow(int count) {
        Arena next = Arena.ofShared();
        MemorySegment larger = next.allocate(JAVA_LONG, Math.max(count, 2L * buffer.byteSize() / Long.BYTES));
        bufferArena.close();
        bufferArena = next;
        buffer = larger;
    }

    /**
     * Calls {@code MPI_Finalize} (unless other code initialized MPI) and frees the buffers. Every rank
     * must call it. Idempotent. MPI cannot be initialized again in this process afterwards.
     */
    @Override
    public void close() {
        synchronized (Mpi.class) {
            synchronized (this) {
                if (closed) {
                    return;
                }
                closed = true;
                open = null;
                bufferArena.close();
                lengthsArena.close();
                if (ownsMpi) {
                    finalizedByUs = true;
                    int rc;
                    try {
                        rc = (int) lib.finalizeCall.invokeExact();
                    } catch (Throwable t) {
                        throw new MpiException("MPI_Finalize failed: " + t);
                    }
                    check(rc, "MPI_Finalize");
                }
            }
        }
    }

    @Override
    public String toString() {
        return "Mpi[rank " + rank + " of " + size + ", " + lib.library + "]";
    }

    private void check(int rc, String call) {
        check(lib, rc, call);
    }

    private static void check(OpenMpiLibrary lib, int rc, String call) {
        if (rc != OpenMpiLibrary.MPI_SUCCESS) {
            throw new MpiException(call + " returned error " + rc + ": " + lib.errorText(rc), rc);
        }
    }
}
