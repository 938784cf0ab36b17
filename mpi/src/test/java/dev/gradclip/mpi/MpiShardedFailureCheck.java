package dev.gradclip.mpi;

import dev.gradclip.Clipper;
import dev.gradclip.GradReport;
import dev.gradclip.Gradients;
import dev.gradclip.testing.ShardedGrads;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Runs on every rank under mpirun (started by {@link MpiIntegrationTest}): one Clipper over
 * {@link Mpi} goes through steps where one rank (or two) cannot do its part: a read-only shard, a
 * closed arena, a GradReport built for other Gradients of the same size, a segment confined to
 * another thread, and two faults at once. At each such step every rank must throw (the failing one
 * its own exception, the others an IllegalStateException naming the failing rank), no rank may
 * write, and the good steps between them must give every rank the unsplit norm and clip. Prints
 * {@code FAILED STEP s rank r: ...} for each failed step and {@code OK rank r of n}, or
 * {@code FAIL rank r: ...}.
 */
public final class MpiShardedFailureCheck {

    private static final int TENSORS = 14;

    private enum Fault { READ_ONLY, CLOSED_ARENA, REPORT_FOR_OTHER_GRADS, WRONG_THREAD }

    private MpiShardedFailureCheck() {}

    public static void main(String[] args) {
        try (Mpi mpi = Mpi.init()) {
            int rank = mpi.rank();
            int size = mpi.size();
            int last = size - 1;
            try (Clipper clipper = Clipper.builder().maxNorm(1e-3).allReduce(mpi).build()) {
                step(mpi, clipper, 0, new Fault[] {Fault.READ_ONLY, null}, 0);
                step(mpi, clipper, 1, null, -1);
                step(mpi, clipper, 2, new Fault[] {null, Fault.CLOSED_ARENA}, last);
                step(mpi, clipper, 3, new Fault[] {Fault.REPORT_FOR_OTHER_GRADS, null}, 0);
                step(mpi, clipper, 4, null, -1);
                step(mpi, clipper, 5, new Fault[] {null, Fault.WRONG_THREAD}, last);
                // Rank 0's closed arena stops the step before anyone scales: the read-only rank is no culprit.
                step(mpi, clipper, 6, new Fault[] {Fault.CLOSED_ARENA, Fault.READ_ONLY}, 0);
                step(mpi, clipper, 7, null, -1);
                System.out.println("OK rank " + rank + " of " + size);
            } catch (RuntimeException | AssertionError e) {
                e.printStackTrace(System.out);
                fail(rank, e.toString());
            }
        }
    }

    /**
     * One step: {@code faults[0]} on rank 0 and {@code faults[1]} on the last rank (null: none, and
     * {@code faults} null: a good step); {@code culprit} is the rank the others' exception must name.
     */
    private static void step(Mpi mpi, Clipper clipper, int step, Fault[] faults, int culprit) {
        int rank = mpi.rank();
        long seed = 777 + step;
        List<ShardedGrads.Tensor> tensors = ShardedGrads.tensors(seed, TENSORS);
        List<Integer> mine = new ArrayList<>();
        for (int t = 0; t < TENSORS; t++) {
            if (t % mpi.size() == rank) {
                mine.add(t);
            }
        }
        Fault fault = faults == null ? null : rank == 0 ? faults[0] : rank == mpi.size() - 1 ? faults[1] : null;
        try (Arena arena = Arena.ofShared()) {
            // The unsplit clip, computed on every rank, for the good steps.
            List<MemorySegment> whole = ShardedGrads.copies(arena, tensors, ShardedGrads.all(TENSORS));
            long unsplit;
            try (Clipper single = Clipper.builder().maxNorm(1e-3).build()) {
                unsplit = Double.doubleToRawLongBits(single.clip(ShardedGrads.gradients(tensors, ShardedGrads.all(TENSORS), whole)));
            }
            Arena closing = Arena.ofShared();
            List<MemorySegment> shard = ShardedGrads.copies(fault == Fault.CLOSED_ARENA ? closing : arena, tensors, mine);
            if (fault == Fault.WRONG_THREAD) {
                // Confined to a thread that has ended (its memory is freed with the process).
                AtomicReference<List<MemorySegment>> copies = new AtomicReference<>();
                Thread owner = new Thread(() -> copies.set(ShardedGrads.copies(Arena.ofConfined(), tensors, mine)));
                owner.start();
                join(owner);
                shard = copies.get();
            }
            List<byte[]> before = bytes(shard, fault);
            if (fault == Fault.READ_ONLY) {
                shard.replaceAll(MemorySegment::asReadOnly);
            }
            Gradients grads = ShardedGrads.gradients(tensors, mine, shard);
            GradReport report = fault == Fault.REPORT_FOR_OTHER_GRADS
                    ? new GradReport(ShardedGrads.gradients(tensors, mine, ShardedGrads.copies(arena, tensors, mine)))
                    : new GradReport(grads);
            if (fault == Fault.CLOSED_ARENA) {
                closing.close();
            }
            RuntimeException thrown = null;
            long norm = 0;
            try {
                norm = Double.doubleToRawLongBits(clipper.clip(grads, report));
            } catch (RuntimeException e) {
                thrown = e;
            }
            if (faults == null) {
                if (thrown != null) {
                    throw new AssertionError("step " + step + " has no fault, yet it threw", thrown);
                }
                if (norm != unsplit) {
                    throw new AssertionError("step " + step + ": norm " + Double.longBitsToDouble(norm) + " is not the unsplit "
                            + Double.longBitsToDouble(unsplit) + ": the ranks are out of step");
                }
                for (int k = 0; k < mine.size(); k++) {
                    if (whole.get(mine.get(k)).mismatch(shard.get(k)) != -1) {
                        throw new AssertionError("step " + step + ": tensor " + mine.get(k) + " differs from the unsplit clip");
                    }
                }
                return;
            }
            checkThrown(step, rank, fault, culprit, thrown);
            if (!Arrays.deepEquals(before.toArray(), bytes(shard, fault).toArray())) {
                throw new AssertionError("step " + step + ": a tensor was written on rank " + rank);
            }
            System.out.println("FAILED STEP " + step + " rank " + rank + ": " + thrown);
        }
    }

    private static void checkThrown(int step, int rank, Fault fault, int culprit, RuntimeException thrown) {
        String where = "step " + step + " on rank " + rank + " (" + fault + ")";
        if (thrown == null) {
            throw new AssertionError(where + ": did not throw");
        }
        if (rank == culprit) {
            Class<?> expected = switch (fault) {
                case READ_ONLY, REPORT_FOR_OTHER_GRADS -> IllegalArgumentException.class;
                case CLOSED_ARENA -> IllegalStateException.class;
                case WRONG_THREAD -> WrongThreadException.class;
            };
            if (!expected.isInstance(thrown) || thrown.getMessage().contains("another participant")) {
                throw new AssertionError(where + ": expected its own " + expected.getSimpleName(), thrown);
            }
        } else if (!(thrown instanceof IllegalStateException) || !thrown.getMessage().contains("rank " + culprit + " ")
                || !thrown.getMessage().contains("nothing was written on any participant")) {
            throw new AssertionError(where + ": expected an IllegalStateException naming rank " + culprit, thrown);
        }
    }

    private static List<byte[]> bytes(List<MemorySegment> shard, Fault fault) {
        List<byte[]> bytes = new ArrayList<>();
        for (MemorySegment segment : shard) {
            // A closed arena's or another thread's segment cannot be read back here; it cannot have been written either.
            boolean readable = fault != Fault.CLOSED_ARENA && fault != Fault.WRONG_THREAD;
            bytes.add(readable ? segment.toArray(ValueLayout.JAVA_BYTE) : new byte[0]);
        }
        return bytes;
    }

    private static void join(Thread thread) {
        try {
            thread.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static void fail(int rank, String message) {
        System.out.println("FAIL rank " + rank + ": " + message);
        System.out.flush();
        // Exiting without MPI_Finalize makes mpirun stop the other ranks instead of leaving them waiting.
        Runtime.getRuntime().halt(1);
    }
}
