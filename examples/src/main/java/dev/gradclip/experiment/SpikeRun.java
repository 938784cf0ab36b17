package dev.gradclip.experiment;

import dev.gradclip.experiment.AdditionProblem.Batch;
import dev.gradclip.experiment.Setup.Condition;
import dev.gradclip.experiment.TrainingRun.Result;
import dev.gradclip.experiment.TrainingRun.Spikes;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Future;

/**
 * The injected-spike run: one condition, every seed, with the gradients of a random 1 % of the steps
 * multiplied by 1000 before clipping, as a bad batch or a loss spike would. A fixed threshold has
 * to choose: at the calibrated median it shortens about half of all steps, at ten times that it
 * leaves ordinary steps alone but lets a spike through at ten times an ordinary step. The adaptive
 * strategies set their bound from the norms they have seen.
 */
final class SpikeRun {

    static final Spikes SPIKES = new Spikes(0.01, 1000f);

    private SpikeRun() {}

    /** One treatment: a strategy with its thresholds. */
    record Variant(String label, Strategy strategy, Thresholds thresholds) {}

    /** A variant's runs, one per seed. */
    record Row(Variant variant, List<Result> runs) {}

    /** The variants, for the thresholds calibrated at the condition (without spikes). */
    static List<Variant> variants(Thresholds calibrated) {
        Thresholds loose = new Thresholds(10 * calibrated.maxNorm(), calibrated.clipValue());
        return List.of(
                new Variant("none", Strategy.NONE, calibrated),
                new Variant("global, median", Strategy.GLOBAL, calibrated),
                new Variant("global, 10x median", Strategy.GLOBAL, loose),
                new Variant("autoclip", Strategy.AUTOCLIP, calibrated),
                new Variant("zclip", Strategy.ZCLIP, calibrated),
                new Variant("agc", Strategy.AGC, calibrated));
    }

    /** The condition of the spike run: the first learning rate, the middle length. */
    static Condition condition(Setup setup) {
        return new Condition(setup.learningRates().getFirst(), setup.lengths().get(setup.lengths().size() / 2));
    }

    static List<Row> run(Setup setup, Thresholds calibrated, ExecutorService pool) throws Exception {
        Condition condition = condition(setup);
        List<Batch> testSet = TrainingRun.testSet(setup, condition.length());
        List<List<Future<Result>>> futures = new ArrayList<>();
        for (Variant variant : variants(calibrated)) {
            List<Future<Result>> runs = new ArrayList<>();
            for (int seed = 0; seed < setup.seeds(); seed++) {
                int s = seed;
                runs.add(pool.submit(() -> TrainingRun.run(setup, variant.strategy(), condition, s, variant.thresholds(),
                        testSet, SPIKES)));
            }
            futures.add(runs);
        }
        List<Row> rows = new ArrayList<>();
        List<Variant> variants = variants(calibrated);
        for (int v = 0; v < variants.size(); v++) {
            List<Result> runs = new ArrayList<>();
            for (Future<Result> future : futures.get(v)) {
                runs.add(future.get());
            }
            rows.add(new Row(variants.get(v), runs));
        }
        return rows;
    }

    /** The table: outcomes, and what clipping did to ordinary steps and to spikes. */
    static String table(Setup setup, Thresholds calibrated, List<Row> rows) {
        Condition condition = condition(setup);
        StringBuilder md = new StringBuilder(String.format(Locale.ROOT,
                "Injected spikes at %s: the gradients of %.0f %% of the steps (the same steps for every variant) multiplied"
                        + " by %.0f before clipping; %d seeds, %,d steps, calibrated maxNorm %.4g.%n%n",
                condition.label(), 100 * SPIKES.probability(), SPIKES.factor(), setup.seeds(), setup.maxSteps(),
                calibrated.maxNorm()));
        md.append("| variant | successes (median steps) | median final test MSE | diverged runs | ordinary steps shortened"
                + " | norm after clipping: spike steps / ordinary steps (median) |\n|---|---|---|---|---|---|\n");
        for (Row row : rows) {
            int[] steps = row.runs().stream().filter(Result::succeeded).mapToInt(Result::stepsToSuccess).sorted().toArray();
            double[] mse = row.runs().stream().mapToDouble(Result::testMse).sorted().toArray();
            long diverged = row.runs().stream().filter(Result::diverged).count();
            double[] shortened = row.runs().stream().mapToDouble(SpikeRun::ordinaryShortened).sorted().toArray();
            double[] passed = row.runs().stream().mapToDouble(SpikeRun::spikeThrough).filter(Double::isFinite).sorted().toArray();
            md.append(String.format(Locale.ROOT, "| %s | %d/%d%s | %.3g | %d | %.0f %% | %s |%n", row.variant().label(),
                    steps.length, row.runs().size(), steps.length > 0 ? " (" + steps[steps.length / 2] + ")" : "",
                    mse[mse.length / 2], diverged, 100 * shortened[shortened.length / 2],
                    passed.length == 0 ? "-" : String.format(Locale.ROOT, "%.3g", passed[passed.length / 2])));
        }
        return md.toString();
    }

    /** The share of steps without a spike whose norm clipping shortened. */
    static double ordinaryShortened(Result r) {
        int count = 0;
        int ordinary = 0;
        for (int step = 0; step < r.steps(); step++) {
            if (!r.spiked()[step] && Double.isFinite(r.gradNorm()[step])) {
                ordinary++;
                count += r.clippedNorm()[step] < r.gradNorm()[step] * (1 - 1e-6) ? 1 : 0;
            }
        }
        return ordinary == 0 ? 0 : (double) count / ordinary;
    }

    /**
     * How large a spike step was after clipping, against an ordinary step: the median clipped norm
     * of the spike steps over the median clipped norm of the others (1: the spike was cut to an
     * ordinary step's size; 1000: it went through). NaN for a run without a finite spike step.
     */
    static double spikeThrough(Result r) {
        double[] spikes = finiteAt(r, true);
        double[] ordinary = finiteAt(r, false);
        if (spikes.length == 0 || ordinary.length == 0) {
            return Double.NaN;
        }
        return spikes[spikes.length / 2] / ordinary[ordinary.length / 2];
    }

    private static double[] finiteAt(Result r, boolean spiked) {
        List<Double> values = new ArrayList<>();
        for (int step = 0; step < r.steps(); step++) {
            if (r.spiked()[step] == spiked && Double.isFinite(r.clippedNorm()[step])) {
                values.add(r.clippedNorm()[step]);
            }
        }
        double[] sorted = values.stream().mapToDouble(Double::doubleValue).toArray();
        Arrays.sort(sorted);
        return sorted;
    }
}
