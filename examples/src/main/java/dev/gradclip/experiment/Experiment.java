package dev.gradclip.experiment;

import dev.gradclip.experiment.AdditionProblem.Batch;
import dev.gradclip.experiment.Setup.Condition;
import dev.gradclip.experiment.TrainingRun.Result;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorCompletionService;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * The RNN experiment (docs/experiment.md): a vanilla tanh RNN on the addition problem, trained with each
 * {@link Strategy} on the same seeds and data, at several sequence lengths and learning rates.
 *
 * <pre>
 *   ./mvnw -q compile exec:exec@rnn -Dout=rnn-out               quick version, a minute or two
 *   ./mvnw -q compile exec:exec@rnn -Dout=rnn-out -Dfull=true   the full experiment
 * </pre>
 *
 * <p>Arguments: {@code --out=DIR}, {@code --full[=true|false]}, {@code --threads=N} (default: the
 * available processors). Writes into DIR: {@code steps.csv} (loss and global gradient norm per
 * step of every run, and the test error where it was measured), {@code runs.csv} (one line per
 * run), {@code success-rates.md} (the tables it prints) and the plots. Runs are independent and seeded by (length, seed), so every file is the
 * same whatever the thread count or the order in which runs finish.
 */
public final class Experiment {

    private Experiment() {}

    public static void main(String[] args) throws Exception {
        Path out = Path.of("rnn-out");
        boolean full = false;
        boolean spikesOnly = false;
        int threads = Runtime.getRuntime().availableProcessors();
        for (String arg : args) {
            if (arg.startsWith("--out=")) {
                out = Path.of(arg.substring("--out=".length()));
            } else if (arg.equals("--full") || arg.equals("--full=true")) {
                full = true;
            } else if (arg.equals("--full=false")) {
                full = false;
            } else if (arg.equals("--spikes-only")) {
                spikesOnly = true;
            } else if (arg.startsWith("--threads=")) {
                threads = Integer.parseInt(arg.substring("--threads=".length()));
            } else {
                throw new IllegalArgumentException("unknown argument " + arg
                        + "; expected --out=DIR, --full[=true|false], --spikes-only, --threads=N");
            }
        }
        run(full ? Setup.full() : Setup.quick(), full ? "full" : "quick; -Dfull=true for the full one", out, threads,
                spikesOnly);
    }

    /** Runs every strategy on every condition and seed of {@code setup}, then the spike run; writes the files into {@code out}. */
    static void run(Setup setup, String name, Path out, int threads) throws Exception {
        run(setup, name, out, threads, false);
    }

    /** The same, or with {@code spikesOnly} the spike run alone (its condition calibrated as in the full run). */
    static void run(Setup setup, String name, Path out, int threads, boolean spikesOnly) throws Exception {
        Files.createDirectories(out);
        System.out.println(describe(setup, name, threads, out));
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        try {
            Thresholds atSpikes;
            if (spikesOnly) {
                atSpikes = TrainingRun.calibrate(setup, SpikeRun.condition(setup));
            } else {
                Map<Condition, Thresholds> thresholds = calibrate(setup, pool);
                List<Result> results = runAll(setup, thresholds, pool);
                String table = successTable(setup, thresholds, results);
                System.out.println();
                System.out.println(table);
                Files.writeString(out.resolve("success-rates.md"), table);
                writeSteps(out.resolve("steps.csv"), results);
                writeRuns(out.resolve("runs.csv"), results);
                Plots.write(out, setup, results);
                atSpikes = thresholds.get(SpikeRun.condition(setup));
            }
            List<SpikeRun.Row> spikes = SpikeRun.run(setup, atSpikes, pool);
            String spikeTable = SpikeRun.table(setup, atSpikes, spikes);
            System.out.println();
            System.out.println(spikeTable);
            Files.writeString(out.resolve("spikes.md"), spikeTable);
            writeSteps(out.resolve("spikes-steps.csv"), spikes.stream().flatMap(row -> row.runs().stream()).toList(),
                    spikes.stream().flatMap(row -> row.runs().stream().map(r -> row.variant().label())).toList());
            Plots.spikes(out, spikes);
            System.out.println("wrote " + out.toAbsolutePath());
        } finally {
            pool.shutdown();
        }
    }

    private static String describe(Setup setup, String name, int threads, Path out) {
        return String.format(Locale.ROOT,
                "RNN experiment (%s): addition problem, lengths %s, learning rates %s, %d seeds, %d strategies"
                        + " = %d runs on %d threads%n"
                        + "  tanh RNN with %d hidden units, SGD with batch %d, initial spectral radius %s%n"
                        + "  success: test MSE < %s (predicting the mean gives 0.167) within %,d steps, tested every %d steps%n"
                        + "  output: %s",
                name, setup.lengths(), setup.learningRates(), setup.seeds(), Strategy.values().length,
                Strategy.values().length * setup.conditions().size() * setup.seeds(), threads, setup.hidden(), setup.lanes(),
                setup.spectralRadius(), setup.successMse(), setup.maxSteps(), setup.evalEvery(), out.toAbsolutePath());
    }

    private static Map<Condition, Thresholds> calibrate(Setup setup, ExecutorService pool) throws Exception {
        Map<Condition, Future<Thresholds>> futures = new LinkedHashMap<>();
        for (Condition condition : setup.conditions()) {
            futures.put(condition, pool.submit(() -> TrainingRun.calibrate(setup, condition)));
        }
        Map<Condition, Thresholds> thresholds = new LinkedHashMap<>();
        System.out.println("thresholds (medians over the first " + setup.calibrationSteps() + " unclipped steps of "
                + setup.calibrationSeeds() + " calibration seeds):");
        for (var entry : futures.entrySet()) {
            Thresholds t = entry.getValue().get();
            thresholds.put(entry.getKey(), t);
            System.out.printf(Locale.ROOT, "  %-14s maxNorm %.4g   clipValue %.4g%n", entry.getKey().label(), t.maxNorm(),
                    t.clipValue());
        }
        return thresholds;
    }

    private static List<Result> runAll(Setup setup, Map<Condition, Thresholds> thresholds, ExecutorService pool)
            throws InterruptedException, ExecutionException {
        Map<Integer, List<Batch>> testSets = new LinkedHashMap<>();
        for (int length : setup.lengths()) {
            testSets.put(length, TrainingRun.testSet(setup, length));
        }
        ExecutorCompletionService<Result> completion = new ExecutorCompletionService<>(pool);
        // Longest sequences first, so that the last runs to finish are short ones and no core idles long.
        List<Condition> longestFirst = setup.conditions().stream()
                .sorted(Comparator.comparing(Condition::length).reversed()).toList();
        long totalWork = 0;
        int runs = 0;
        for (Condition condition : longestFirst) {
            for (int seed = 0; seed < setup.seeds(); seed++) {
                for (Strategy strategy : Strategy.values()) {
                    int s = seed;
                    completion.submit(() -> TrainingRun.run(setup, strategy, condition, s, thresholds.get(condition),
                            testSets.get(condition.length())));
                    totalWork += condition.length();
                    runs++;
                }
            }
        }
        List<Result> results = new ArrayList<>();
        long start = System.nanoTime();
        long doneWork = 0;
        for (int done = 1; done <= runs; done++) {
            Result r = completion.take().get();
            results.add(r);
            // A run's cost grows with its length; early successes make the estimate pessimistic.
            doneWork += r.length();
            double elapsed = (System.nanoTime() - start) / 1e9;
            double eta = elapsed * (totalWork - doneWork) / doneWork;
            System.out.printf(Locale.ROOT, "[%3d/%d] %-10s %-14s seed %-2d %-30s %5d non-finite  elapsed %s  ETA %s%n",
                    done, runs, r.strategy().label(), r.condition().label(), r.seed(), outcome(r), r.nonFiniteSteps(),
                    minutes(elapsed), minutes(eta));
        }
        List<Condition> order = setup.conditions();
        results.sort(Comparator.comparing(Result::strategy)
                .thenComparing(r -> order.indexOf(r.condition()))
                .thenComparing(Result::seed));
        return results;
    }

    private static String outcome(Result r) {
        if (r.succeeded()) {
            return String.format(Locale.ROOT, "success at step %d", r.stepsToSuccess());
        }
        return String.format(Locale.ROOT, "%s, test MSE %.3g", r.diverged() ? "diverged" : "failed", r.testMse());
    }

    private static String minutes(double seconds) {
        long s = Math.round(seconds);
        return String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60);
    }

    /** Successes out of seeds per strategy and condition, with the median steps to success. */
    static String successTable(Setup setup, Map<Condition, Thresholds> thresholds, List<Result> results) {
        StringBuilder md = new StringBuilder();
        md.append("Successes (test MSE < ").append(setup.successMse()).append(" within ")
                .append(String.format(Locale.ROOT, "%,d", setup.maxSteps()))
                .append(" steps) out of ").append(setup.seeds())
                .append(" seeds, and the median steps to success, by strategy, sequence length T and learning rate:\n\n");
        header(md, setup);
        for (Strategy strategy : Strategy.values()) {
            md.append("| ").append(strategy.label()).append(" |");
            for (Condition condition : setup.conditions()) {
                List<Result> cell = cell(results, strategy, condition);
                int[] steps = cell.stream().filter(Result::succeeded).mapToInt(Result::stepsToSuccess).sorted().toArray();
                md.append(' ').append(steps.length).append('/').append(cell.size());
                if (steps.length > 0) {
                    md.append(" (").append(steps[steps.length / 2]).append(')');
                }
                md.append(" |");
            }
            md.append('\n');
        }
        md.append("\nMedian final test MSE over seeds (the last measured; a run stops at success),"
                + " to compare runs that all missed the threshold:\n\n");
        header(md, setup);
        for (Strategy strategy : Strategy.values()) {
            md.append("| ").append(strategy.label()).append(" |");
            for (Condition condition : setup.conditions()) {
                double[] mse = cell(results, strategy, condition).stream()
                        .mapToDouble(Result::testMse).sorted().toArray();
                md.append(String.format(Locale.ROOT, " %.3g |", mse[mse.length / 2]));
            }
            md.append('\n');
        }
        md.append("\nRuns with non-finite (skipped) steps or diverged parameters, and exploding steps"
                + " (global norm > 10 maxNorm) summed over seeds:\n\n");
        header(md, setup);
        for (Strategy strategy : Strategy.values()) {
            md.append("| ").append(strategy.label()).append(" |");
            for (Condition condition : setup.conditions()) {
                List<Result> cell = cell(results, strategy, condition);
                long broken = cell.stream().filter(r -> r.nonFiniteSteps() > 0 || r.diverged()).count();
                int exploding = cell.stream().mapToInt(Result::explodingSteps).sum();
                md.append(' ').append(broken).append(" runs, ").append(exploding).append(" steps |");
            }
            md.append('\n');
        }
        md.append("\nShare of steps whose global norm exceeded maxNorm, median over seeds"
                + " (global clipping shortens exactly these steps):\n\n");
        header(md, setup);
        for (Strategy strategy : Strategy.values()) {
            md.append("| ").append(strategy.label()).append(" |");
            for (Condition condition : setup.conditions()) {
                double[] shares = cell(results, strategy, condition).stream()
                        .mapToDouble(Result::shareAboveMaxNorm).sorted().toArray();
                md.append(String.format(Locale.ROOT, " %.0f %% |", 100 * shares[shares.length / 2]));
            }
            md.append('\n');
        }
        md.append("\nShare of steps whose global norm clipping shortened, by whatever means (the steps it changed"
                + " the length of), median over seeds:\n\n");
        header(md, setup);
        for (Strategy strategy : Strategy.values()) {
            md.append("| ").append(strategy.label()).append(" |");
            for (Condition condition : setup.conditions()) {
                double[] shares = cell(results, strategy, condition).stream()
                        .mapToDouble(Result::shareShortened).sorted().toArray();
                md.append(String.format(Locale.ROOT, " %.0f %% |", 100 * shares[shares.length / 2]));
            }
            md.append('\n');
        }
        md.append("\nThresholds (median over the first ").append(setup.calibrationSteps())
                .append(" unclipped steps of ").append(setup.calibrationSeeds())
                .append(" calibration seeds): maxNorm for global and per-tensor clipping, clipValue for value clipping.\n\n");
        md.append("| condition | maxNorm | clipValue |\n|---|---|---|\n");
        thresholds.forEach((c, th) -> md.append(String.format(Locale.ROOT, "| %s | %.4g | %.4g |%n", c.label(), th.maxNorm(),
                th.clipValue())));
        return md.toString();
    }

    private static void header(StringBuilder md, Setup setup) {
        md.append("| strategy |");
        setup.conditions().forEach(c -> md.append(' ').append(c.label()).append(" |"));
        md.append("\n|---|");
        setup.conditions().forEach(c -> md.append("---|"));
        md.append('\n');
    }

    private static List<Result> cell(List<Result> results, Strategy strategy, Condition condition) {
        return results.stream().filter(r -> r.strategy() == strategy && r.condition().equals(condition)).toList();
    }

    private static void writeSteps(Path file, List<Result> results) throws IOException {
        writeSteps(file, results, results.stream().map(r -> r.strategy().label()).toList());
    }

    /** Every step of every run: the loss, the norm before and after clipping, the bound, whether it was spiked. */
    private static void writeSteps(Path file, List<Result> results, List<String> labels) throws IOException {
        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(file))) {
            w.println("strategy,learning_rate,length,seed,step,loss,grad_norm,exploded,test_mse,bound,clipped_norm,spiked");
            for (int k = 0; k < results.size(); k++) {
                Result r = results.get(k);
                int evaluation = 0;
                for (int step = 0; step < r.steps(); step++) {
                    String testMse = "";
                    if (evaluation < r.evalSteps().length && r.evalSteps()[evaluation] == step + 1) {
                        testMse = Double.toString(r.testCurve()[evaluation++]);
                    }
                    w.printf(Locale.ROOT, "%s,%s,%d,%d,%d,%s,%s,%d,%s,%s,%s,%d%n", labels.get(k),
                            r.condition().learningRate(), r.length(), r.seed(), step + 1,
                            r.loss()[step], r.gradNorm()[step], r.exploded(step) ? 1 : 0, testMse,
                            r.bound()[step], r.clippedNorm()[step], r.spiked()[step] ? 1 : 0);
                }
            }
            checkWritten(w, file);
        }
    }

    /** PrintWriter keeps I/O errors to itself until asked. */
    private static void checkWritten(PrintWriter w, Path file) throws IOException {
        if (w.checkError()) {
            throw new IOException("could not write " + file);
        }
    }

    private static void writeRuns(Path file, List<Result> results) throws IOException {
        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(file))) {
            w.println("strategy,learning_rate,length,seed,max_norm,clip_value,steps,steps_to_success,final_test_mse,"
                    + "non_finite_steps,exploding_steps,share_above_max_norm,diverged");
            for (Result r : results) {
                w.printf(Locale.ROOT, "%s,%s,%d,%d,%s,%s,%d,%d,%s,%d,%d,%s,%b%n", r.strategy().label(),
                        r.condition().learningRate(), r.length(), r.seed(),
                        r.thresholds().maxNorm(), r.thresholds().clipValue(), r.steps(), r.stepsToSuccess(), r.testMse(),
                        r.nonFiniteSteps(), r.explodingSteps(), r.shareAboveMaxNorm(), r.diverged());
            }
            checkWritten(w, file);
        }
    }
}
