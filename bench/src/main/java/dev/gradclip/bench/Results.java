package dev.gradclip.bench;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Reads JMH JSON results (from {@code -rf json}).
 *
 * <pre>
 * java -cp benchmarks.jar dev.gradclip.bench.Results report RUN.json
 * java -cp benchmarks.jar dev.gradclip.bench.Results compare BASE.json NOW.json [--min-effect 0.05] [--alpha 0.05]
 * </pre>
 *
 * {@code report} prints, per workload, each implementation's median ns/op, GB/s of bytes moved,
 * time relative to the streaming limit and to the plain double loop, and allocation per op.
 * {@code compare} prints baseline, now, ratio and verdict per benchmark, and exits with 1 when any
 * benchmark is {@code SLOWER}. Where both runs hold at least {@value #MIN_FORKS} forks of a benchmark
 * (an interleaved gate run, or {@code -f 9}), the verdict is {@link Stats}'s: a permutation test on the
 * change between the per-fork scores (the Hodges-Lehmann shift, or {@code --change median}), and the
 * minimum effect. A run of fewer forks has no spread between
 * forks to test, so those rows fall back to the old rule: the ratio against 1 + threshold (default 0.10) +
 * the two runs' JMH error bars (99.9% half-widths, root sum of squares), marked {@code (1-fork rule)}.
 */
public final class Results {

    /** One benchmark with its parameters, as measured. */
    record Row(String op, String method, String workload, String memory, double median, double error,
            double allocPerOp, String jdk, double[] forks, double[] cpuForks) {

        /** The samples of a metric: per-fork medians of CPU time per op, or of wall time per op. */
        double[] samples(boolean cpu) {
            return cpu ? cpuForks : forks;
        }

        String key() {
            return op + "." + method + " " + workload + " " + memory;
        }

        long bytes() {
            return (op.equals("Clip") ? 12 : 4) * Workloads.elements(workload);
        }
    }

    /** Fewer forks than this give a permutation distribution too coarse to reach alpha = 0.05 sensibly. */
    static final int MIN_FORKS = 5;
    static final double MIN_EFFECT = 0.05;
    static final double ALPHA = 0.05;
    /** The 1-fork rule's own margin, as before the gate: single runs on this machine are too noisy for 5 %. */
    static final double THRESHOLD = 0.10;

    private Results() {}

    public static void main(String[] args) throws IOException {
        if (args.length >= 2 && args[0].equals("report")) {
            report(read(Path.of(args[1])));
        } else if (args.length >= 3 && args[0].equals("compare")) {
            double minEffect = MIN_EFFECT;
            double alpha = ALPHA;
            String metric = "cpu";
            String forkStat = "median";
            Stats.Estimator change = Stats.Estimator.SHIFT;
            double threshold = THRESHOLD;
            for (int i = 3; i + 1 < args.length; i += 2) {
                switch (args[i]) {
                    case "--min-effect" -> minEffect = Double.parseDouble(args[i + 1]);
                    case "--threshold" -> threshold = Double.parseDouble(args[i + 1]);
                    case "--alpha" -> alpha = Double.parseDouble(args[i + 1]);
                    case "--metric" -> metric = args[i + 1];
                    case "--fork-stat" -> forkStat = args[i + 1];
                    case "--change" -> change = Stats.Estimator.parse(args[i + 1]);
                    default -> throw new IllegalArgumentException("unknown option " + args[i]);
                }
            }
            System.exit(compare(read(Path.of(args[1]), forkStat), read(Path.of(args[2]), forkStat), minEffect, alpha, metric,
                    change, threshold) ? 0 : 1);
        } else if (args.length >= 1 && args[0].equals("selftest")) {
            System.exit(Stats.selftest() == 0 ? 0 : 1);
        } else {
            System.err.println("usage: Results report RUN.json | Results compare BASE.json NOW.json [--min-effect 0.05]"
                    + " [--alpha 0.05] [--metric cpu|wall] [--fork-stat median|min] [--change shift|median|Q] [--threshold 0.10]"
                    + " | Results selftest");
            System.exit(2);
        }
    }

    static List<Row> read(Path file) throws IOException {
        return read(file, "median");
    }

    /** {@code forkStat}: how a fork's iterations become its one sample, "median" or "min". */
    static List<Row> read(Path file, String forkStat) throws IOException {
        List<Row> rows = new ArrayList<>();
        JsonArray runs = JsonParser.parseString(Files.readString(file)).getAsJsonArray();
        for (JsonElement element : runs) {
            JsonObject run = element.getAsJsonObject();
            String[] name = run.get("benchmark").getAsString().split("\\.");
            JsonObject params = run.getAsJsonObject("params");
            JsonObject primary = run.getAsJsonObject("primaryMetric");
            double alloc = Double.NaN;
            double[] cpu = {};
            JsonObject secondary = run.getAsJsonObject("secondaryMetrics");
            for (String metric : secondary == null ? List.<String>of() : secondary.keySet()) {
                if (metric.endsWith("gc.alloc.rate.norm")) {
                    alloc = secondary.getAsJsonObject(metric).get("score").getAsDouble();
                }
                if (metric.endsWith(CpuTimeProfiler.METRIC) && secondary.getAsJsonObject(metric).has("rawData")) {
                    cpu = forkScores(secondary.getAsJsonObject(metric).getAsJsonArray("rawData"), forkStat);
                }
            }
            double error = primary.get("scoreError").isJsonPrimitive() ? primary.get("scoreError").getAsDouble() : Double.NaN;
            // Parameters other than the workload (memory, and any the benchmarks add later) join the key.
            String workload = "-";
            List<String> others = new ArrayList<>();
            for (String param : params == null ? List.<String>of() : params.keySet()) {
                if (param.equals("workload")) {
                    workload = params.get(param).getAsString();
                } else {
                    others.add(params.get(param).getAsString());
                }
            }
            rows.add(new Row(name[name.length - 2].replace("Benchmark", ""), name[name.length - 1],
                    workload, others.isEmpty() ? "-" : String.join(" ", others),
                    median(primary.getAsJsonArray("rawData")), Double.isNaN(error) ? 0 : error, alloc,
                    run.get("jdkVersion").getAsString() + " " + run.get("vmName").getAsString(),
                    forkScores(primary.getAsJsonArray("rawData"), forkStat), cpu));
        }
        return rows;
    }

    /** The median of all measurement iterations of all forks. */
    private static double median(JsonArray rawData) {
        List<Double> scores = new ArrayList<>();
        for (JsonElement fork : rawData) {
            for (JsonElement iteration : fork.getAsJsonArray()) {
                scores.add(iteration.getAsDouble());
            }
        }
        double[] sorted = scores.stream().mapToDouble(Double::doubleValue).sorted().toArray();
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }

    /**
     * One score per fork: the median of its measurement iterations, robust to one disturbed iteration; or
     * their minimum, the estimator for noise that only ever adds time (Chen and Revels, "Robust benchmarking
     * in noisy environments", 2016), which is what other processes' load does.
     */
    static double[] forkScores(JsonArray rawData, String forkStat) {
        double[] forks = new double[rawData.size()];
        for (int f = 0; f < forks.length; f++) {
            JsonArray iterations = rawData.get(f).getAsJsonArray();
            double[] scores = new double[iterations.size()];
            for (int i = 0; i < scores.length; i++) {
                scores[i] = iterations.get(i).getAsDouble();
            }
            forks[f] = forkStat.equals("min") ? Arrays.stream(scores).min().orElse(Double.NaN) : Stats.median(scores);
        }
        return forks;
    }

    static void report(List<Row> rows) {
        if (!rows.isEmpty()) {
            System.out.println("JDK: " + rows.get(0).jdk());
        }
        Map<String, List<Row>> groups = new LinkedHashMap<>();
        for (Row row : rows) {
            groups.computeIfAbsent(row.op() + " " + row.workload() + " " + row.memory(), g -> new ArrayList<>()).add(row);
        }
        System.out.printf(Locale.ROOT, "%-28s %-15s %14s %8s %9s %9s %10s%n",
                "workload", "implementation", "median ns/op", "GB/s", "x limit", "vs plain", "alloc B/op");
        for (Map.Entry<String, List<Row>> group : groups.entrySet()) {
            double limit = score(group.getValue(), "limit");
            double plain = score(group.getValue(), "plainDouble");
            for (Row row : group.getValue()) {
                System.out.printf(Locale.ROOT, "%-28s %-15s %14.0f %8.2f %9s %9s %10s%n", group.getKey(), row.method(),
                        row.median(), row.bytes() / row.median(), ratio(row.median(), limit), ratio(plain, row.median()),
                        Double.isNaN(row.allocPerOp()) ? "-" : String.format(Locale.ROOT, "%.0f", row.allocPerOp()));
            }
        }
        System.out.println("x limit: time over the streaming limit's time (1.00 = at the memory system's speed);"
                + " vs plain: speed-up over the plain double loop.");
    }

    private static double score(List<Row> rows, String method) {
        return rows.stream().filter(r -> r.method().equals(method)).mapToDouble(Row::median).findFirst().orElse(Double.NaN);
    }

    private static String ratio(double numerator, double denominator) {
        return Double.isNaN(numerator) || Double.isNaN(denominator) ? "-" : String.format(Locale.ROOT, "%.2f", numerator / denominator);
    }

    /**
     * Prints the table; false when a benchmark is {@code SLOWER}. With {@code metric} "cpu", rows whose two
     * runs both hold {@link CpuTimeProfiler}'s samples are tested on CPU time per op, the others on wall time.
     */
    static boolean compare(List<Row> base, List<Row> now, double minEffect, double alpha, String metric,
            Stats.Estimator change, double threshold) {
        Map<String, Row> baseline = new LinkedHashMap<>();
        base.forEach(row -> baseline.put(row.key(), row));
        if (!base.isEmpty() && !now.isEmpty()) {
            System.out.println("A (baseline): " + base.get(0).jdk() + "\nB (now):      " + now.get(0).jdk());
        }
        System.out.printf(Locale.ROOT, "%-38s %-4s %5s %12s %12s %6s %15s %6s %6s %6s %6s  %s%n", "benchmark", "time",
                "forks", "A ns/op", "B ns/op", "B/A", "95% interval", "p", "p(U)", "detect", "wall", "verdict");
        Map<String, Integer> counts = new LinkedHashMap<>();
        for (String verdict : List.of("SLOWER", "faster", "unstable", "same")) {
            counts.put(verdict, 0);
        }
        boolean fallback = false;
        for (Row row : now) {
            Row old = baseline.get(row.key());
            if (old == null) {
                System.out.printf(Locale.ROOT, "%-38s %-4s %5s %12s %12.0f  new%n", row.key(), "wall", row.forks().length, "-",
                        row.median());
                continue;
            }
            boolean cpu = metric.equals("cpu") && old.cpuForks().length >= MIN_FORKS && row.cpuForks().length >= MIN_FORKS;
            double[] a = old.samples(cpu);
            double[] b = row.samples(cpu);
            String verdict;
            if (a.length >= MIN_FORKS && b.length >= MIN_FORKS) {
                Stats.Test t = Stats.test(a, b, change, alpha, row.key().hashCode());
                verdict = Stats.verdict(t, alpha, minEffect);
                double wall = Stats.median(row.forks()) / Stats.median(old.forks());
                System.out.printf(Locale.ROOT, "%-38s %-4s %2d/%-2d %12.0f %12.0f %6.3f  [%5.3f, %5.3f] %6.3f %6.3f %5.1f%% %6.3f  %s%n",
                        row.key(), cpu ? "cpu" : "wall", t.n(), t.m(), t.medianA(), t.medianB(), t.ratio(), t.ciLow(), t.ciHigh(),
                        t.pChange(), t.pU(), 100 * t.threshold(), wall, verdict);
            } else {
                fallback = true;
                double ratio = row.median() / old.median();
                double noise = Math.hypot(old.error() / old.median(), row.error() / row.median());
                verdict = ratio > 1 + threshold + noise ? "SLOWER" : ratio < 1 - threshold - noise ? "faster" : "same";
                System.out.printf(Locale.ROOT, "%-38s %-4s %2d/%-2d %12.0f %12.0f %6.3f %15s %6s %6s %5.1f%% %6.3f  %s (1-fork rule)%n",
                        row.key(), "wall", old.forks().length, row.forks().length, old.median(), row.median(), ratio, "-", "-",
                        "-", 100 * noise, ratio, verdict);
            }
            counts.merge(verdict, 1, Integer::sum);
        }
        System.out.printf(Locale.ROOT, "%d SLOWER, %d faster, %d unstable, %d same (minimum effect %.0f%%, alpha %.2f)%n",
                counts.get("SLOWER"), counts.get("faster"), counts.get("unstable"), counts.get("same"), 100 * minEffect, alpha);
        System.out.println("time: cpu = the benchmark thread's CPU time per op, wall = JMH's score. A, B: medians over forks."
                + " B/A: the change, " + change + " (above 1 = B slower); interval: bootstrap; p: permutation test on that"
                + " change; p(U): Mann-Whitney; detect: the smallest change this run could call significant; wall: B/A of"
                + " median wall times.");
        if (fallback) {
            System.out.println("(1-fork rule): fewer than " + MIN_FORKS + " forks on a side, so no test: SLOWER when B/A"
                    + String.format(Locale.ROOT, " > 1 + %.2f (--threshold) + the JMH error bars shown under detect.", threshold));
        }
        return counts.get("SLOWER") == 0;
    }
}
