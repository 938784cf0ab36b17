package dev.gradclip.bench;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Reads JMH JSON results (from {@code -rf json}).
 *
 * <pre>
 * java -cp benchmarks.jar dev.gradclip.bench.Results report RUN.json
 * java -cp benchmarks.jar dev.gradclip.bench.Results compare BASE.json NOW.json [--threshold 0.10]
 * </pre>
 *
 * {@code report} prints, per workload, each implementation's median ns/op, GB/s of bytes moved,
 * time relative to the streaming limit and to the plain double loop, and allocation per op.
 * {@code compare} prints baseline, now, ratio and verdict per benchmark, and exits with 1 when any
 * benchmark is slower than the threshold beyond the noise band: the two runs' JMH error bars
 * (99.9% confidence half-widths), relative to their scores, combined as a root sum of squares.
 */
public final class Results {

    /** One benchmark with its parameters, as measured. */
    record Row(String op, String method, String workload, String memory, double median, double error,
            double allocPerOp, String jdk) {

        String key() {
            return op + "." + method + " " + workload + " " + memory;
        }

        long bytes() {
            return (op.equals("Clip") ? 12 : 4) * Workloads.elements(workload);
        }
    }

    private Results() {}

    public static void main(String[] args) throws IOException {
        if (args.length >= 2 && args[0].equals("report")) {
            report(read(Path.of(args[1])));
        } else if (args.length >= 3 && args[0].equals("compare")) {
            double threshold = args.length >= 5 && args[3].equals("--threshold") ? Double.parseDouble(args[4]) : 0.10;
            System.exit(compare(read(Path.of(args[1])), read(Path.of(args[2])), threshold) ? 0 : 1);
        } else {
            System.err.println("usage: Results report RUN.json | Results compare BASE.json NOW.json [--threshold 0.10]");
            System.exit(2);
        }
    }

    static List<Row> read(Path file) throws IOException {
        List<Row> rows = new ArrayList<>();
        JsonArray runs = JsonParser.parseString(Files.readString(file)).getAsJsonArray();
        for (JsonElement element : runs) {
            JsonObject run = element.getAsJsonObject();
            String[] name = run.get("benchmark").getAsString().split("\\.");
            JsonObject params = run.getAsJsonObject("params");
            JsonObject primary = run.getAsJsonObject("primaryMetric");
            double alloc = Double.NaN;
            JsonObject secondary = run.getAsJsonObject("secondaryMetrics");
            for (String metric : secondary == null ? List.<String>of() : secondary.keySet()) {
                if (metric.endsWith("gc.alloc.rate.norm")) {
                    alloc = secondary.getAsJsonObject(metric).get("score").getAsDouble();
                }
            }
            double error = primary.get("scoreError").isJsonPrimitive() ? primary.get("scoreError").getAsDouble() : Double.NaN;
            rows.add(new Row(name[name.length - 2].replace("Benchmark", ""), name[name.length - 1],
                    params.get("workload").getAsString(), params.get("memory").getAsString(),
                    median(primary.getAsJsonArray("rawData")), Double.isNaN(error) ? 0 : error, alloc,
                    run.get("jdkVersion").getAsString() + " " + run.get("vmName").getAsString()));
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

    /** Prints the table; false when a benchmark regressed. */
    static boolean compare(List<Row> base, List<Row> now, double threshold) {
        Map<String, Row> baseline = new LinkedHashMap<>();
        base.forEach(row -> baseline.put(row.key(), row));
        if (!base.isEmpty() && !now.isEmpty()) {
            System.out.println("baseline: " + base.get(0).jdk() + "\nnow:      " + now.get(0).jdk());
        }
        System.out.printf(Locale.ROOT, "%-48s %14s %14s %7s %7s  %s%n", "benchmark", "baseline ns/op", "now ns/op", "ratio",
                "noise", "verdict");
        boolean ok = true;
        int slower = 0;
        for (Row row : now) {
            Row old = baseline.get(row.key());
            if (old == null) {
                System.out.printf(Locale.ROOT, "%-48s %14s %14.0f %7s %7s  new%n", row.key(), "-", row.median(), "-", "-");
                continue;
            }
            double ratio = row.median() / old.median();
            double noise = Math.hypot(old.error() / old.median(), row.error() / row.median());
            String verdict = ratio > 1 + threshold + noise ? "SLOWER" : ratio < 1 - threshold - noise ? "faster" : "same";
            if (verdict.equals("SLOWER")) {
                ok = false;
                slower++;
            }
            System.out.printf(Locale.ROOT, "%-48s %14.0f %14.0f %7.3f %6.1f%%  %s%n", row.key(), old.median(), row.median(),
                    ratio, 100 * noise, verdict);
        }
        System.out.printf(Locale.ROOT, "%d slower than %.0f%% beyond noise%n", slower, 100 * threshold);
        return ok;
    }
}
