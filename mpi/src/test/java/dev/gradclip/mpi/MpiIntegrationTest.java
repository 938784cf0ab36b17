package dev.gradclip.mpi;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Open MPI adapter under a real {@code mpirun}, in child JVMs. Skipped, with a message that says
 * how to enable it, where {@code mpirun} is not installed. Each job has a hard time limit, so a
 * hanging rank fails the test instead of hanging the build.
 */
class MpiIntegrationTest {

    /** 4 ranks start and finish in about 1.3 s on 2 cores; a clip job took 42 s at load average 13: headroom for busy machines. */
    private static final long JOB_SECONDS = 180;

    @ParameterizedTest(name = "mpirun -np {0}")
    @ValueSource(ints = {4, 3, 1})
    @Timeout(value = 210, unit = TimeUnit.SECONDS)
    void wordsSumAndMaxExactlyOnEveryRankAndMismatchedCountsFailEverywhere(int ranks) throws Exception {
        MpiRun.Result result = MpiRun.run(ranks, JOB_SECONDS, MpiWordsCheck.class);
        assertJobPassed(result, ranks);
        long mismatches = result.output().lines().filter(line -> line.startsWith("MISMATCH rank ")).count();
        assertEquals(ranks == 1 ? 0 : ranks, mismatches, "every rank must report the word-count mismatch\n" + result.output());
    }

    @ParameterizedTest(name = "mpirun -np {0}")
    @ValueSource(ints = {4, 3})
    @Timeout(value = 210, unit = TimeUnit.SECONDS)
    void shardedClipsHaveTheUnsplitBitsOnEveryRank(int ranks) throws Exception {
        MpiRun.Result result = MpiRun.run(ranks, JOB_SECONDS, MpiClipCheck.class);
        assertJobPassed(result, ranks);
        long errors = result.output().lines().filter(line -> line.startsWith("ERROR policy on rank ")).count();
        assertEquals(ranks, errors, "every rank must throw under NonFinite.ERROR\n" + result.output());
    }

    /** A rank that cannot do its part of a sharded step: every rank throws at that step, nobody writes, the next step is in lockstep. */
    @ParameterizedTest(name = "mpirun -np {0}")
    @ValueSource(ints = {2, 3})
    @Timeout(value = 210, unit = TimeUnit.SECONDS)
    void aFaultOnOneRankFailsEveryRankAtThatStepAndWritesNothing(int ranks) throws Exception {
        MpiRun.Result result = MpiRun.run(ranks, JOB_SECONDS, MpiShardedFailureCheck.class);
        assertJobPassed(result, ranks);
        long failedSteps = result.output().lines().filter(line -> line.startsWith("FAILED STEP ")).count();
        assertEquals(5L * ranks, failedSteps, "every rank must throw at each of the 5 faulty steps\n" + result.output());
    }

    /** Adaptive thresholds evolve with the unsharded run's bits on every rank, and the stall guard stops every rank at the same step. */
    @ParameterizedTest(name = "mpirun -np {0}")
    @ValueSource(ints = {2, 3})
    @Timeout(value = 210, unit = TimeUnit.SECONDS)
    void adaptiveThresholdsAreTheUnshardedBitsOnEveryRank(int ranks) throws Exception {
        MpiRun.Result result = MpiRun.run(ranks, JOB_SECONDS, MpiThresholdCheck.class);
        assertJobPassed(result, ranks);
        List<String> stalls = result.output().lines().filter(line -> line.startsWith("STALL rank ")).toList();
        assertEquals(ranks, stalls.size(), "every rank must stop at the stall guard\n" + result.output());
        // NaN steps from step 10 on, a guard of 4: the fourth skip in a row is step 13, on every rank.
        assertTrue(stalls.stream().allMatch(line -> line.contains(" at step 13: 4 steps in a row were skipped")),
                String.join("\n", stalls));
    }

    /** A rank that never reaches a collective: the waiting rank throws after the timeout, and its Mpi refuses further use. */
    @Test
    @Timeout(value = 210, unit = TimeUnit.SECONDS)
    void aCollectiveThatARankNeverReachesTimesOut() throws Exception {
        Path dir = Files.createTempDirectory("gradclip-mpi-timeout");
        Path signal = dir.resolve("rank0-timed-out");
        try {
            MpiRun.Result result = MpiRun.run(2, JOB_SECONDS, MpiTimeoutCheck.class, signal.toString());
            assertJobPassed(result, 2);
            assertTrue(result.output().lines().anyMatch(line -> line.startsWith("TIMEOUT rank 0 ")), result.output());
        } finally {
            Files.deleteIfExists(signal);
            Files.delete(dir);
        }
    }

    @Test
    @Timeout(value = 210, unit = TimeUnit.SECONDS)
    void mpiIsInitializedOncePerProcess() throws Exception {
        MpiRun.Result result = MpiRun.run(1, JOB_SECONDS, MpiLifecycleCheck.class);
        assertJobPassed(result, 1);
    }

    /** Exit code 0, one OK line per rank (each rank once), and no FAIL line. */
    static void assertJobPassed(MpiRun.Result result, int ranks) {
        String context = String.join(" ", result.command()) + "\n" + result.output();
        assertFalse(result.exitCode() == -1, "mpirun job timed out after " + JOB_SECONDS + " s and was killed\n" + context);
        assertEquals(0, result.exitCode(), "mpirun exit code\n" + context);
        assertFalse(result.output().contains("FAIL rank"), context);
        List<String> ok = result.output().lines().filter(line -> line.startsWith("OK rank ")).toList();
        assertEquals(ranks, ok.size(), "OK lines\n" + context);
        for (int r = 0; r < ranks; r++) {
            String prefix = "OK rank " + r;
            assertTrue(ok.stream().anyMatch(line -> line.equals(prefix) || line.startsWith(prefix + " ")),
                    "no OK from rank " + r + "\n" + context);
        }
    }
}
