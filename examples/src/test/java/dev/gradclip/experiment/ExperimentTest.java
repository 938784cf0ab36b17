package dev.gradclip.experiment;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The experiment end to end on a tiny setup: every file it promises, the same on 1 and 2 threads. */
class ExperimentTest {

    private static final Setup TINY = new Setup(List.of(0.05, 0.1), List.of(6, 8), 2, 4, 4, 1.0, 60, 20, 16, 0.01, 10, 1);

    @Test
    void writesTablesCsvAndPlotsIndependentlyOfThreads(@TempDir Path dir) throws Exception {
        System.setProperty("java.awt.headless", "true");
        Path one = dir.resolve("one");
        Path two = dir.resolve("two");
        Experiment.run(TINY, "test", one, 1);
        Experiment.run(TINY, "test", two, 2);

        for (String file : List.of("success-rates.md", "runs.csv", "steps.csv", "success-rate.png", "success-rate.svg",
                "curves-lr0.05.png", "curves-lr0.1.png", "spikes.md", "spikes-steps.csv", "spikes-thresholds.png")) {
            assertTrue(Files.size(one.resolve(file)) > 0, file);
        }
        for (String file : List.of("success-rates.md", "runs.csv", "steps.csv", "spikes.md", "spikes-steps.csv")) {
            assertEquals(Files.readString(one.resolve(file)), Files.readString(two.resolve(file)), file);
        }
        // 2 learning rates x 2 lengths x 2 seeds x 7 strategies, and a header
        assertEquals(57, Files.readAllLines(one.resolve("runs.csv")).size());
        // 6 variants x 2 seeds, each with a spike-free first step at least
        assertEquals(6, Files.readAllLines(one.resolve("spikes.md")).stream().filter(l -> l.startsWith("| ") && !l.startsWith("| variant")).count());
    }
}
