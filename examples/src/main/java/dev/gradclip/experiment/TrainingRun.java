package dev.gradclip.experiment;

import dev.gradclip.Clipper;
import dev.gradclip.GradClip;
import dev.gradclip.GradReport;
import dev.gradclip.experiment.AdditionProblem.Batch;
import dev.gradclip.experiment.Setup.Condition;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/** One training run, and the calibration runs that set the thresholds. */
final class TrainingRun {

    /** A run's initial weights, training batches and the length's test set come from separate streams. */
    private static final int INIT_STREAM = 1;
    private static final int DATA_STREAM = 2;
    private static final int TEST_STREAM = 3;
    private static final int SPIKE_STREAM = 4;
    /** Calibration seeds start here, far from the experiment's seeds 0, 1, 2, ... */
    private static final int CALIBRATION_SEED = 1_000_000;

    private TrainingRun() {}

    /**
     * The record of one run.
     *
     * @param loss the training batch's loss at each step taken
     * @param gradNorm the global gradient norm before clipping at each step taken
     * @param nonFiniteSteps steps skipped because the gradient norm was NaN or infinite
     * @param evalSteps the steps after which the test error was measured
     * @param testCurve the test error measured after each of those steps
     * @param stepsToSuccess the step at which the test error first fell below the threshold, or -1
     * @param diverged whether a parameter or the test error became non-finite, which ends the run
     * @param bound the global-norm bound each step clipped to (NaN for strategies without one)
     * @param clippedNorm the global gradient norm after clipping, at each step taken
     * @param spiked whether each step's gradients were multiplied by the injected spike factor
     */
    record Result(Strategy strategy, Condition condition, int seed, Thresholds thresholds, float[] loss, double[] gradNorm,
                  int[] evalSteps, double[] testCurve, int nonFiniteSteps, int stepsToSuccess, boolean diverged,
                  double[] bound, double[] clippedNorm, boolean[] spiked) {

        int length() {
            return condition.length();
        }

        /** The last test error measured. */
        double testMse() {
            return testCurve[testCurve.length - 1];
        }

        boolean succeeded() {
            return stepsToSuccess >= 0;
        }

        int steps() {
            return loss.length;
        }

        /** Steps whose norm was non-finite or above ten times the clipping threshold. */
        boolean exploded(int step) {
            return !(gradNorm[step] <= 10 * thresholds.maxNorm());
        }

        /** The share of steps whose norm exceeded maxNorm: the steps global clipping shortens. */
        double shareAboveMaxNorm() {
            int count = 0;
            for (double norm : gradNorm) {
                count += norm > thresholds.maxNorm() ? 1 : 0;
            }
            return (double) count / steps();
        }

        /** The share of steps whose finite norm clipping shortened, by any strategy's means. */
        double shareShortened() {
            int count = 0;
            for (int step = 0; step < steps(); step++) {
                count += clippedNorm[step] < gradNorm[step] * (1 - 1e-6) ? 1 : 0;
            }
            return (double) count / steps();
        }

        int explodingSteps() {
            int count = 0;
            for (int step = 0; step < steps(); step++) {
                count += exploded(step) ? 1 : 0;
            }
            return count;
        }
    }

    /** The fixed test set of one length, shared by every run at that length. */
    static List<Batch> testSet(Setup setup, int length) {
        SplittableRandom rng = random(length, -1, TEST_STREAM);
        List<Batch> batches = new ArrayList<>();
        for (int n = 0; n < setup.testSequences(); n += setup.lanes()) {
            batches.add(AdditionProblem.sample(length, setup.lanes(), rng));
        }
        return List.copyOf(batches);
    }

    /**
     * The thresholds for one condition, by Pascanu et al.'s advice to clip around the gradient norm
     * typical of early training: {@code maxNorm} is the median global gradient norm, and
     * {@code clipValue} the median largest |element|, over the first {@code calibrationSteps}
     * steps of unclipped runs on calibration seeds. The median rather than the mean, so that one
     * early explosion does not set the threshold.
     */
    static Thresholds calibrate(Setup setup, Condition condition) {
        int length = condition.length();
        int steps = setup.calibrationSteps();
        double[] norms = new double[steps * setup.calibrationSeeds()];
        double[] maxAbs = new double[norms.length];
        int n = 0;
        // maxNorm +Infinity never clips: the Clipper only measures, filling the report in the same pass.
        try (Clipper measure = Clipper.builder().maxNorm(Double.POSITIVE_INFINITY).threads(1).build()) {
            for (int c = 0; c < setup.calibrationSeeds(); c++) {
                try (Arena arena = Arena.ofConfined()) {
                    Rnn rnn = newModel(setup, arena, length, CALIBRATION_SEED + c);
                    GradReport report = new GradReport(rnn.namedGradients());
                    SplittableRandom data = random(length, CALIBRATION_SEED + c, DATA_STREAM);
                    Batch batch = new Batch(length, setup.lanes());
                    for (int step = 0; step < steps; step++, n++) {
                        AdditionProblem.fill(batch, data);
                        rnn.lossAndGradients(batch);
                        norms[n] = measure.clip(rnn.namedGradients(), report);
                        for (int k = 0; k < Rnn.TENSOR_NAMES.size(); k++) {
                            maxAbs[n] = Math.max(maxAbs[n], report.maxAbs(k));
                        }
                        if (Double.isFinite(norms[n])) {
                            rnn.sgdStep(condition.learningRate());
                        }
                    }
                }
            }
        }
        return new Thresholds(median(norms), median(maxAbs));
    }

    /**
     * Injected gradient spikes: each step, with probability {@code probability} (drawn from the run's
     * own stream, so every strategy gets the same spikes), the gradients are multiplied by
     * {@code factor} after the backward pass and before clipping.
     */
    record Spikes(double probability, float factor) {
        static final Spikes NONE = new Spikes(0, 1);
    }

    /** Trains one model with one strategy; deterministic in (strategy, condition, seed) and the setup. */
    static Result run(Setup setup, Strategy strategy, Condition condition, int seed, Thresholds thresholds,
                      List<Batch> testSet) {
        return run(setup, strategy, condition, seed, thresholds, testSet, Spikes.NONE);
    }

    /** The same with injected gradient spikes. */
    static Result run(Setup setup, Strategy strategy, Condition condition, int seed, Thresholds thresholds,
                      List<Batch> testSet, Spikes spikes) {
        int length = condition.length();
        try (Arena arena = Arena.ofConfined()) {
            Rnn rnn = newModel(setup, arena, length, seed);
            SplittableRandom data = random(length, seed, DATA_STREAM);
            SplittableRandom spikeDraws = random(length, seed, SPIKE_STREAM);
            Batch batch = new Batch(length, setup.lanes());
            try (Strategy.Clip clip = strategy.bind(rnn, thresholds)) {
                float[] loss = new float[setup.maxSteps()];
                double[] norm = new double[setup.maxSteps()];
                double[] bound = new double[setup.maxSteps()];
                double[] clipped = new double[setup.maxSteps()];
                boolean[] spiked = new boolean[setup.maxSteps()];
                int evaluations = 0;
                int[] evalSteps = new int[setup.maxSteps() / setup.evalEvery() + 1];
                double[] testCurve = new double[evalSteps.length];
                int nonFinite = 0;
                int success = -1;
                boolean diverged = false;
                int step = 0;
                while (step < setup.maxSteps() && success < 0 && !diverged) {
                    AdditionProblem.fill(batch, data);
                    loss[step] = (float) rnn.lossAndGradients(batch);
                    spiked[step] = spikeDraws.nextDouble() < spikes.probability();
                    if (spiked[step]) {
                        for (MemorySegment g : rnn.gradients()) {
                            for (long k = 0; k < g.byteSize() / Float.BYTES; k++) {
                                g.setAtIndex(ValueLayout.JAVA_FLOAT, k, g.getAtIndex(ValueLayout.JAVA_FLOAT, k) * spikes.factor());
                            }
                        }
                    }
                    norm[step] = clip.apply();
                    bound[step] = clip.bound();
                    clipped[step] = Double.isFinite(norm[step]) ? GradClip.totalNorm(rnn.namedGradients()) : norm[step];
                    if (Double.isFinite(norm[step])) {
                        rnn.sgdStep(condition.learningRate());
                        diverged = !rnn.parametersFinite();
                    } else {
                        nonFinite++;
                    }
                    step++;
                    if (step % setup.evalEvery() == 0 || step == setup.maxSteps() || diverged) {
                        double testMse = testMse(rnn, testSet);
                        evalSteps[evaluations] = step;
                        testCurve[evaluations++] = testMse;
                        if (testMse < setup.successMse()) {
                            success = step;
                        }
                        // The outputs overflow float32: every later gradient is non-finite and skipped.
                        diverged |= !Double.isFinite(testMse);
                    }
                }
                return new Result(strategy, condition, seed, thresholds, Arrays.copyOf(loss, step),
                        Arrays.copyOf(norm, step), Arrays.copyOf(evalSteps, evaluations),
                        Arrays.copyOf(testCurve, evaluations), nonFinite, success, diverged, Arrays.copyOf(bound, step),
                        Arrays.copyOf(clipped, step), Arrays.copyOf(spiked, step));
            }
        }
    }

    private static Rnn newModel(Setup setup, Arena arena, int length, int seed) {
        Rnn rnn = new Rnn(arena, setup.hidden(), setup.lanes());
        rnn.initialize(random(length, seed, INIT_STREAM), setup.spectralRadius());
        return rnn;
    }

    static double testMse(Rnn rnn, List<Batch> testSet) {
        double sum = 0;
        for (Batch batch : testSet) {
            sum += rnn.loss(batch);
        }
        return sum / testSet.size();
    }

    private static SplittableRandom random(int length, int seed, int stream) {
        return new SplittableRandom(((length * 1_000_003L) + seed) * 8 + stream);
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int mid = sorted.length / 2;
        return sorted.length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}
