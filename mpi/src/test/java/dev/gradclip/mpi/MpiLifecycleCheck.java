package dev.gradclip.mpi;

import java.time.Duration;

/**
 * Runs under mpirun (started by {@link MpiIntegrationTest}): MPI can be initialized once per
 * process, so a second {@code init()}, a call after {@code close()}, and an {@code init()} after
 * {@code close()} must each fail with a clear IllegalStateException; a timeout too long for
 * nanoseconds must work. Prints {@code OK rank r} or
 * {@code FAIL rank r: ...}.
 */
public final class MpiLifecycleCheck {

    private MpiLifecycleCheck() {}

    public static void main(String[] args) {
        // A timeout beyond a long of nanoseconds waits without limit: no ArithmeticException, and calls work.
        Mpi mpi = Mpi.init(Duration.ofSeconds(Long.MAX_VALUE));
        int rank = mpi.rank();
        long[] words = {rank + 1L};
        mpi.sum(words);
        if (words[0] != 1) {
            System.out.println("FAIL rank " + rank + ": sum on one rank gave " + words[0]);
        }
        expect(rank, "second init", "already initialized", Mpi::init);
        mpi.close();
        mpi.close(); // idempotent
        expect(rank, "sum after close", "closed", () -> mpi.sum(new long[1]));
        expect(rank, "init after close", "cannot be initialized again", Mpi::init);
        System.out.println("OK rank " + rank);
    }

    private static void expect(int rank, String what, String messagePart, Runnable call) {
        try {
            call.run();
            System.out.println("FAIL rank " + rank + ": " + what + " did not throw");
        } catch (IllegalStateException e) {
            if (!e.getMessage().contains(messagePart)) {
                System.out.println("FAIL rank " + rank + ": " + what + ": " + e.getMessage());
            }
        }
    }
}
