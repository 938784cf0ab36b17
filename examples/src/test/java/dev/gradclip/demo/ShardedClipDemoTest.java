package dev.gradclip.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.mpi.MpiRun;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The demo of docs/sharding.md, section "Running under mpirun", under a real {@code mpirun} on the smaller model with
 * one timed clip, so that it cannot rot. Skipped where Open MPI is not installed.
 */
class ShardedClipDemoTest {

    @Test
    @Timeout(value = 210, unit = TimeUnit.SECONDS)
    void theShardedClipDemoRunsAndFindsTheSingleProcessBits() throws Exception {
        MpiRun.Result result = MpiRun.run(2, 180, ShardedClipDemo.class, "--shapes=resnet50", "--reps=1");
        String context = String.join(" ", result.command()) + "\n" + result.output();
        assertEquals(0, result.exitCode(), context);
        assertTrue(result.output().contains("every clipped shard equals its part of the single-process clip: yes"), context);
        assertEquals(2, result.output().lines().filter(line -> line.matches(" +[01] .* yes")).count(), context);
    }
}
