package dev.gradclip.experiment;

import java.util.List;

/**
 * Everything shared by the runs of one experiment: the same model, optimizer, budget and success
 * criterion for every strategy.
 *
 * @param learningRates the SGD step sizes; every length is run with each
 * @param lengths the sequence lengths
 * @param seeds seeds per condition; seed k gives the same initial weights and training data to
 *     every strategy and learning rate at one length
 * @param hidden hidden units
 * @param lanes sequences per SGD step
 * @param spectralRadius the initial W_rec's spectral radius (approximately, see {@link Rnn#initialize})
 * @param maxSteps the step budget of a run
 * @param evalEvery steps between test-set evaluations
 * @param testSequences sequences in each length's fixed test set
 * @param successMse a run succeeds when its test mean squared error falls below this
 * @param calibrationSteps unclipped steps per calibration run, from which the thresholds come
 * @param calibrationSeeds calibration runs per condition, on seeds no experiment run uses
 */
record Setup(
        List<Double> learningRates,
        List<Integer> lengths,
        int seeds,
        int hidden,
        int lanes,
        double spectralRadius,
        int maxSteps,
        int evalEvery,
        int testSequences,
        double successMse,
        int calibrationSteps,
        int calibrationSeeds) {

    /**
     * The full experiment. The lengths double from where plain SGD learned the task in a pilot
     * (T=20) to beyond where no strategy came close in it (T=50). The two learning rates: 0.05,
     * at which plain SGD trained in the pilot, and 0.1, at which it blew up on 2 of 3 seeds at T=20.
     * The budget keeps the 240 runs near 20 minutes on 2 cores.
     */
    static Setup full() {
        return new Setup(List.of(0.05, 0.1), List.of(10, 20, 40), 10, 32, 16, 1.0, 8_000, 250, 512, 0.01, 100, 3);
    }

    /** A quick version for a first look: one length, three seeds, a shorter budget. */
    static Setup quick() {
        return new Setup(List.of(0.05, 0.1), List.of(20), 3, 32, 16, 1.0, 3_000, 250, 512, 0.01, 100, 3);
    }

    /** Every learning rate with every length, in that order. */
    List<Condition> conditions() {
        return learningRates.stream().flatMap(lr -> lengths.stream().map(t -> new Condition(lr, t))).toList();
    }

    /** One learning rate and one sequence length: a column of the results table. */
    record Condition(double learningRate, int length) {

        String label() {
            return "T=" + length + ", lr " + learningRate;
        }
    }
}
