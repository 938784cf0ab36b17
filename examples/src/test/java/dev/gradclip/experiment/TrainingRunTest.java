package dev.gradclip.experiment;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.experiment.AdditionProblem.Batch;
import dev.gradclip.experiment.Setup.Condition;
import dev.gradclip.experiment.TrainingRun.Result;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Small runs: each strategy trains end to end, and a run is a function of its seed alone. */
class TrainingRunTest {

    private static final int LENGTH = 12;
    private static final Setup SMALL = new Setup(List.of(0.05), List.of(LENGTH), 2, 8, 8, 1.2, 300, 100, 64, 0.01, 20, 2);
    private static final Condition CONDITION = SMALL.conditions().getFirst();

    @ParameterizedTest
    @EnumSource(Strategy.class)
    void eachStrategyTrainsAndRecordsEveryStep(Strategy strategy) {
        Thresholds thresholds = TrainingRun.calibrate(SMALL, CONDITION);
        Result result = TrainingRun.run(SMALL, strategy, CONDITION, 0, thresholds, TrainingRun.testSet(SMALL, LENGTH));

        assertTrue(result.steps() > 0 && result.steps() <= SMALL.maxSteps(), "steps " + result.steps());
        assertEquals(result.steps(), result.gradNorm().length);
        assertTrue(result.succeeded() || result.diverged() || result.steps() == SMALL.maxSteps(),
                "a run stops only at success, divergence or the step budget");
        assertTrue(result.succeeded() || !Double.isNaN(result.testMse()), "a finished run has a test error");
    }

    @Test
    void thresholdsArePositiveAndFinite() {
        Thresholds t = TrainingRun.calibrate(SMALL, CONDITION);
        assertTrue(t.maxNorm() > 0 && Double.isFinite(t.maxNorm()), t.toString());
        assertTrue(t.clipValue() > 0 && Double.isFinite(t.clipValue()), t.toString());
    }

    @ParameterizedTest
    @EnumSource(Strategy.class)
    void aSeedGivesTheSameBitsTwiceAndOnAnotherThread(Strategy strategy) throws Exception {
        Thresholds thresholds = TrainingRun.calibrate(SMALL, CONDITION);
        List<Batch> testSet = TrainingRun.testSet(SMALL, LENGTH);
        Result first = TrainingRun.run(SMALL, strategy, CONDITION, 1, thresholds, testSet);
        Result second = CompletableFuture.supplyAsync(() -> TrainingRun.run(SMALL, strategy, CONDITION, 1, thresholds, testSet)).get();

        assertArrayEquals(first.loss(), second.loss());
        assertArrayEquals(first.gradNorm(), second.gradNorm());
        assertEquals(first.testMse(), second.testMse());
    }

    @Test
    void everyStrategySeesTheSameFirstBatchAndWeights() {
        Thresholds thresholds = TrainingRun.calibrate(SMALL, CONDITION);
        List<Batch> testSet = TrainingRun.testSet(SMALL, LENGTH);
        Result none = TrainingRun.run(SMALL, Strategy.NONE, CONDITION, 0, thresholds, testSet);
        for (Strategy strategy : Strategy.values()) {
            Result other = TrainingRun.run(SMALL, strategy, CONDITION, 0, thresholds, testSet);
            assertEquals(none.loss()[0], other.loss()[0], strategy + ": the first loss precedes any clipping");
            assertEquals(none.gradNorm()[0], other.gradNorm()[0], strategy + ": the first norm precedes any clipping");
        }
    }
}
