package dev.gradclip.mpi;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import dev.gradclip.AllReduce;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.locks.LockSupport;

/**
 * Open MPI's {@code MPI_COMM_WORLD}, through the FFM API: no JNI, no jar beyond gradclip's, only
 * Open MPI's {@code libmpi.so.40} at run time. Every rank of an {@code mpirun} job calls
 * {@link #init()} (or {@link #init(Duration)}) once, hands the instance to a {@code Clipper} as its
 * all-reduce hook, and closes it at the end:
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
 * <p><b>Calls.</b> {@link #sum} and {@link #max} are {@code MPI_Iallreduce(MPI_IN_PLACE, ..., MPI_LONG,
 * MPI_SUM or MPI_MAX, MPI_COMM_WORLD)}, completed by polling {@code MPI_Test}. As for every
 * collective, every rank must make the same sequence of calls with the same word count. The count
 * is checked by default (see {@link #checkLengths(boolean)}), so that ranks passing different
 * counts get an {@link IllegalArgumentException} instead of MPI's undefined behaviour (a hang, a
 * truncation, or wrong words). MPI errors come back as {@link MpiException}s: the communicator's error handler is
 * set to {@code MPI_ERRORS_RETURN}. Calls are serialized on this instance and may come from any
 * thread ({@code MPI_THREAD_SERIALIZED} is requested). After warm-up they allocate nothing on the
 * Java heap: the words go through one native buffer that grows to the largest count seen.
 *
 * <p><b>Timeout.</b> A rank that never reaches a collective would leave a blocking
 * {@code MPI_Allreduce} waiting forever. So each collective this hook starts (the length check and
 * the all-reduce) is polled with {@code MPI_Test} against a deadline, the timeout given to
 * {@link #init(Duration)} ({@link #DEFAULT_TIMEOUT} for {@link #init()}): spinning for its first
 * 50 µs (about one small all-reduce here), yielding the CPU between tests up to 2 ms, then parking
 * for 10 µs, doubling up to 1 ms. A collective that has not completed by then throws
 * {@link IllegalStateException} on the waiting rank, and so does an interrupt of the waiting
 * thread; after that this instance is broken and every call throws {@link IllegalStateException},
 * since its rank can no longer be in step with the others. MPI cannot cancel a collective, so the
 * timed-out one stays in flight with its buffer; {@link #close()} gives it one more timeout to
 * complete (a late rank may still join it) and then finalizes MPI, or, if it is still in flight,
 * leaves MPI unfinalized and throws: end the process then, and {@code mpirun} ends the job.
 */
public final class Mpi implements AllReduce, AutoCloseable {

    /** System property: the libmpi to load, a soname or a path; default {@code libmpi.so.40}. */
    public static final String LIBRARY_PROPERTY = "gradclip.mpi.library";

    /** The timeout of {@link #init()}, as {@code InProcessAllReduce}'s: any step of a training loop catches up in it. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(5);

    /** How long a collective is polled without pausing: about one small all-reduce on the machines measured. */
    static final long SPIN_NANOS = 50_000;
    /** Then polled with a yield in between, which lets another rank on an oversubscribed core run. */
    static final long YIELD_NANOS = 2_000_000;
    private static final long FIRST_PAUSE_NANOS = 10_000;
    private static final long MAX_PAUSE_NANOS = 1_000_000;

    /** MPI can be initialized once per process; guarded by the class lock. */
    private static Mpi open;
    private static boolean finalizedByUs;
    /** Set when close() had to leave MPI unfinalized, a collective still in flight. */
    private static boolean abandoned;

    private final OpenMpiLibrary lib;
    private final boolean ownsMpi;
    private final int rank;
    private final int size;
    private final String libraryVersion;
    private final Duration timeout;
    /** The timeout in nanoseconds, saturated at {@code Long.MAX_VALUE}. */
    private final long timeoutNanos;
    /** The {@code MPI_Request} of the collective in flight, and {@code MPI_Test}'s flag. */
    private final Arena requestArena;
    private final MemorySegment request;
    private final MemorySegment done;
    /** Why this instance refuses calls (a timeout, an interrupt), or null. */
    private String broken;
    /** Whether a collective that timed out may still write into the buffers. */
    private boolean inFlight;
    /** The words' native buffer; replaced (and the old arena closed) when a longer array comes. */
    private Arena bufferArena;
    private MemorySegment buffer;
    /** Two words for the length check: {@code n} and {@code -n}, reduced with MAX. */
    private final MemorySegment lengths;
    private final Arena lengthsArena;
    private boolean checkLengths = true;
    private boolean closed;

    private Mpi(OpenMpiLibrary lib, boolean ownsMpi, Duration timeout) {
        this.lib = lib;
        this.ownsMpi = ownsMpi;
        this.timeout = timeout;
        this.timeoutNanos = timeout.compareTo(Duration.ofNanos(Long.MAX_VALUE)) >= 0 ? Long.MAX_VALUE : timeout.toNanos();
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
        requestArena = Arena.ofShared();
        request = requestArena.allocate(ValueLayout.ADDRESS);
        done = requestArena.allocate(JAVA_INT);
    }

    /**
     * {@link #init(Duration)} with the {@link #DEFAULT_TIMEOUT} of 5 minutes.
     *
     * @return this process's {@code MPI_COMM_WORLD} hook
     * @throws MpiException if libmpi is missing, is not Open MPI, or MPI fails to initialize
     * @throws IllegalStateException if this process already holds an open {@code Mpi}, or MPI was finalized
     */
    public static Mpi init() {
        return init(DEFAULT_TIMEOUT);
    }

    /**
     * Loads Open MPI, calls {@code MPI_Init_thread} (asking for {@code MPI_THREAD_SERIALIZED}) and
     * returns {@code MPI_COMM_WORLD}. If MPI was already initialized by other code in this process,
     * the instance uses it and {@link #close()} leaves finalizing to that code.
     *
     * @param timeout how long this rank waits for the others in one collective before it throws
     *     {@link IllegalStateException} and refuses further use (see the class comment); a timeout
     *     too long for a {@code long} of nanoseconds waits without limit
     * @return this process's {@code MPI_COMM_WORLD} hook
     * @throws NullPointerException if {@code timeout} is null
     * @throws IllegalArgumentException if {@code timeout} is zero or negative
     * @throws MpiException if libmpi is missing, is not Open MPI, or MPI fails to initialize
     * @throws IllegalStateException if this process already holds an open {@code Mpi}, or MPI was
     *     finalized (MPI cannot be initialized twice in one process)
     */
    public static synchronized Mpi init(Duration timeout) {
        Objects.requireNonNull(timeout, "timeout");
        if (timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("timeout must be positive, got " + timeout);
        }
        if (open != null) {
            throw new IllegalStateException("MPI is already initialized in this process: use the Mpi instance that"
                    + " the first Mpi.init() returned (MPI can be initialized once per process)");
        }
        if (abandoned) {
            throw new IllegalStateException("MPI in this process was left unfinalized by Mpi.close() after a timeout,"
                    + " an all-reduce still in flight; it cannot be used again in this process");
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
        open = new Mpi(lib, owns, timeout);
        return open;
    }

    /** This process's rank in {@code MPI_COMM_WORLD}, from 0 to {@code size() - 1}. */
    @Override
    public int rank() {
        return rank;
    }

    /**
     * The number of ranks in {@code MPI_COMM_WORLD}.
     *
     * @return the rank count, >= 1
     */
    public int size() {
        return size;
    }

    /**
     * How long one collective may take before this rank gives up on it (see the class comment).
     *
     * @return the timeout given to {@link #init(Duration)}
     */
    public Duration timeout() {
        return timeout;
    }

    /**
     * Open MPI's {@code MPI_Get_library_version} text, e.g. "Open MPI v4.1.4, package: ...".
     *
     * @return the version text, stripped of surrounding white space
     */
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
     * @param check whether to check the word counts before each all-reduce
     * @return this instance
     */
    public synchronized Mpi checkLengths(boolean check) {
        checkLengths = check;
        return this;
    }

    /** Element-wise int64 sum over every rank, in place: an all-reduce with {@code MPI_SUM}, within the timeout. */
    @Override
    public synchronized void sum(long[] words) {
        allReduce(words, lib.opSum, "MPI_SUM");
    }

    /** Element-wise int64 maximum over every rank, in place: an all-reduce with {@code MPI_MAX}, within the timeout. */
    @Override
    public synchronized void max(long[] words) {
        allReduce(words, lib.opMax, "MPI_MAX");
    }

    private void allReduce(long[] words, MemorySegment op, String opName) {
        Objects.requireNonNull(words, "words");
        if (closed) {
            throw new IllegalStateException("this Mpi is closed (MPI_Finalize was called)");
        }
        if (broken != null) {
            throw new IllegalStateException("this Mpi is broken and refuses further use: " + broken);
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
        collective(buffer, count, op, opName);
        MemorySegment.copy(buffer, JAVA_LONG, 0, words, 0, count);
    }

    /**
     * {@code MPI_Iallreduce} in place, then {@code MPI_Test} until it completes or the timeout passes.
     * {@code what} names the call in messages, which are built only on failure: no garbage per call.
     */
    private void collective(MemorySegment data, int count, MemorySegment op, String what) {
        int rc;
        try {
            rc = (int) lib.iallreduce.invokeExact(OpenMpiLibrary.IN_PLACE, data, count, lib.longType, op, lib.commWorld,
                    request);
        } catch (Throwable t) {
            throw new MpiException("MPI_Iallreduce(" + what + ") failed: " + t);
        }
        if (rc != OpenMpiLibrary.MPI_SUCCESS) {
            check(rc, "MPI_Iallreduce(" + what + ", " + count + " words)");
        }
        long start = System.nanoTime();
        long pause = FIRST_PAUSE_NANOS;
        while (!completed(what)) {
            long waited = System.nanoTime() - start;
            if (waited >= timeoutNanos) {
                inFlight = true;
                broken = "rank " + rank + " waited " + timeout + " for the other ranks in MPI_Allreduce(" + what + ")";
                throw new IllegalStateException("MPI_Allreduce(" + what + ", " + count + " words) did not complete within "
                        + timeout + " on rank " + rank + " of " + size + ": another rank did not reach it. This Mpi now"
                        + " refuses further use");
            }
            if (Thread.currentThread().isInterrupted()) {
                inFlight = true;
                broken = "rank " + rank + " was interrupted in MPI_Allreduce(" + what + ")";
                throw new IllegalStateException("interrupted while waiting for the other ranks in MPI_Allreduce(" + what
                        + "); this Mpi now refuses further use");
            }
            if (waited < SPIN_NANOS) {
                Thread.onSpinWait();
            } else if (waited < YIELD_NANOS) {
                Thread.yield();
            } else {
                LockSupport.parkNanos(Math.min(pause, timeoutNanos - waited));
                pause = Math.min(2 * pause, MAX_PAUSE_NANOS);
            }
        }
    }

    /** One {@code MPI_Test} of the collective in flight, which also drives MPI's progress. */
    private boolean completed(String what) {
        int rc;
        try {
            rc = (int) lib.test.invokeExact(request, done, OpenMpiLibrary.STATUS_IGNORE);
        } catch (Throwable t) {
            inFlight = true;
            broken = "MPI_Test failed: " + t;
            throw new MpiException("MPI_Test(" + what + ") failed: " + t);
        }
        if (rc != OpenMpiLibrary.MPI_SUCCESS) {
            inFlight = true;
            broken = "MPI_Test returned error " + rc;
            check(rc, "MPI_Test(" + what + ")");
        }
        return done.get(JAVA_INT, 0) != 0;
    }

    /** Every rank learns the largest and smallest count, so every rank detects a mismatch. */
    private void agreeOnLength(int count) {
        lengths.setAtIndex(JAVA_LONG, 0, count);
        lengths.setAtIndex(JAVA_LONG, 1, -(long) count);
        collective(lengths, 2, lib.opMax, "length check");
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
     *
     * <p>After a timeout, the collective that timed out is still in flight: this waits for it once
     * more, up to the timeout, and then finalizes as usual.
     *
     * @throws IllegalStateException if that collective is still in flight after the wait: MPI is then
     *     left unfinalized (finalizing with a collective in flight is erroneous) and its buffers
     *     allocated, and the process should end, which makes {@code mpirun} end the job
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
                if (inFlight && !drained()) {
                    abandoned = true;
                    throw new IllegalStateException("MPI was not finalized: the all-reduce that timed out on rank " + rank
                            + " is still in flight after another " + timeout + " (" + broken + "). End this process;"
                            + " mpirun then ends the job");
                }
                bufferArena.close();
                lengthsArena.close();
                requestArena.close();
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

    /** Polls the collective in flight for up to the timeout; whether it completed. */
    private boolean drained() {
        long start = System.nanoTime();
        try {
            while (!completed("in flight since the timeout")) {
                if (System.nanoTime() - start >= timeoutNanos || Thread.currentThread().isInterrupted()) {
                    return false;
                }
                LockSupport.parkNanos(MAX_PAUSE_NANOS);
            }
        } catch (MpiException e) {
            return false;
        }
        inFlight = false;
        return true;
    }

    @Override
    public String toString() {
        return "Mpi[rank " + rank + " of " + size + ", " + lib.library + (broken == null ? "" : ", broken: " + broken) + "]";
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
