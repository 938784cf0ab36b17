package dev.gradclip.mpi;

/**
 * Runs under mpirun (started by {@link MpiIntegrationTest}): MPI can be initialized once per
 * process, so a second {@code init()}, a call after {@code close()}, and an {@code init()} after
 * {@code close()} must each fail with a clear IllegalStateException. Prints {@code OK rank r} or
 * {@code FAIL rank r: ...}.
 */
public final class MpiLifecycleCheck {

    private MpiLifecycleCheck() {}

    public static void main(String[] args) {
        Mpi mpi = Mpi.init();
        int rank = mpi.rank();
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
