package dev.gradclip.experiment;

import java.util.List;

/**
 * Everything shared by the runs of one experiment: the same model, optimizer, budget and success
 * criterion for every strategy.
 *
 * @param lengths the sequence lengths
 * @param seeds seeds per length; seed k gives the same initial weights and training data to every strategy
 * @param hidden hidden units
 * @param lanes sequences per SGD step
 * @param learningRate the SGD step size
 * @param spectralRadius the initial W_rec's spectral radius (approximately, see {@link Rnn#initialize})
 * @param maxSteps the step budget of a run
 * @param evalEvery steps between test-set evaluations
 * @param testSequences sequences in each length's fixed test set
 * @param successMse a run succeeds when its test mean squared error falls below this
 * @param calibrationSteps unclipped steps per calibration run, from which the thresholds come
 * @param calibrationSeeds calibration runs per length, on seeds no experiment run uses
 */
record Setup(
        List<Integer> lengths,
        int seeds,
        int hidden,
        int lanes,
        double learningRate,
        double spectralRadius,
        int maxSteps,
        int evalEvery,
        int testSequences,
        double successMse,
        int calibrationSteps,
        int calibrationSeeds) {

    /**
     * The full experiment. The lengths double from where plain SGD learned the task in a pilot
     * (T=20) to where no strategy came close in it (T=50 and more); the budget keeps the 160 runs
     * near 20 minutes on 2 cores.
     */
    static Setup full() {
        return new Setup(List.of(10, 20, 40, 80), 10, 32, 16, 0.05, 1.0, 8_000, 250, 512, 0.01, 100, 3);
    }

    /** A quick version for a first look: two lengths, three seeds, a shorter budget. */
    static Setup quick() {
        return new Setup(List.of(20, 40), 3, 32, 16, 0.05, 1.0, 3_000, 250, 512, 0.01, 100, 3);
    }
}
