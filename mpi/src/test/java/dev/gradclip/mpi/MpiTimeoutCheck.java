package dev.gradclip.mpi;

import dev.gradclip.Clipper;
import dev.gradclip.Gradients;
import dev.gradclip.NormPartial;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Runs on 2 ranks under mpirun (started by {@link MpiIntegrationTest}) with
 * {@code Mpi.init(Duration.ofSeconds(4))}. Rank 0 clips while rank 1 stays away: rank 0's clip must
 * throw IllegalStateException after at least the timeout, and every later call at once. Then rank 0
 * creates the file named by {@code args[0]}; rank 1, which waited for it, joins the collective that
 * rank 0 left in flight (the clip's first collective, Mpi's 2-word length check, a MAX), so that
 * rank 0's close() sees it complete and both ranks finalize MPI cleanly. Prints
 * {@code TIMEOUT rank 0 ...}, {@code OK rank r}, or {@code FAIL rank r: ...}.
 */
public final class MpiTimeoutCheck {

    static final Duration TIMEOUT = Duration.ofSeconds(4);

    private MpiTimeoutCheck() {}

    public static void main(String[] args) throws Exception {
        Path signal = Path.of(args[0]);
        Mpi mpi = Mpi.init(TIMEOUT);
        int rank = mpi.rank();
        try {
            if (rank == 0) {
                rankThatWaits(mpi, signal);
            } else {
                lateRank(mpi, signal);
            }
        } catch (RuntimeException | AssertionError e) {
            e.printStackTrace(System.out);
            fail(rank, e.toString());
        }
        mpi.close();
        System.out.println("OK rank " + rank);
    }

    private static void rankThatWaits(Mpi mpi, Path signal) throws Exception {
        Gradients grads = Gradients.of(new float[] {30, 40});
        try (Clipper clipper = Clipper.builder().maxNorm(1).allReduce(mpi).build()) {
            long start = System.nanoTime();
            try {
                clipper.clip(grads);
                fail(0, "the clip returned without rank 1");
            } catch (IllegalStateException e) {
                long waited = System.nanoTime() - start;
                if (waited < TIMEOUT.toNanos()) {
                    fail(0, "gave up after " + waited + " ns, before the timeout");
                }
                if (!e.getMessage().contains("did not complete within " + TIMEOUT)) {
                    fail(0, "unexpected message: " + e.getMessage());
                }
                System.out.println("TIMEOUT rank 0 after " + waited / 1_000_000 + " ms: " + e.getMessage());
            }
            long again = System.nanoTime();
            for (Runnable call : new Runnable[] {() -> clipper.clip(grads), () -> mpi.sum(new long[3])}) {
                try {
                    call.run();
                    fail(0, "a call after the timeout did not throw");
                } catch (IllegalStateException e) {
                    if (!e.getMessage().contains("refuses further use")) {
                        fail(0, "unexpected message after the timeout: " + e.getMessage());
                    }
                }
            }
            if (System.nanoTime() - again > TIMEOUT.toNanos() / 2) {
                fail(0, "the calls after the timeout waited instead of refusing at once");
            }
            if (grads.segment(0).getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0) != 30f) {
                fail(0, "the timed-out clip wrote");
            }
        }
        Files.createFile(signal);
    }

    private static void lateRank(Mpi mpi, Path signal) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(120).toNanos();
        while (!Files.exists(signal)) {
            if (System.nanoTime() > deadline) {
                fail(1, "rank 0 never signalled");
            }
            Thread.sleep(10);
        }
        mpi.checkLengths(false);
        long[] words = new long[2];
        mpi.max(words);
        // Rank 0's length check holds its word count and its negation: the clip's words, the norm's plus two flags.
        long expected = NormPartial.wordCount(2) + 2;
        if (words[0] != expected || words[1] != 0) {
            fail(1, "the in-flight length check gave " + words[0] + ", " + words[1] + ", not " + expected + ", 0");
        }
    }

    private static void fail(int rank, String message) {
        System.out.println("FAIL rank " + rank + ": " + message);
        System.out.flush();
        Runtime.getRuntime().halt(1);
    }
}
