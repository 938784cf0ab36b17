package dev.gradclip.bench;

import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.google.gson.JsonPrimitive;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The interleaved A/B gate: JMH forks of side A and side B, one JMH invocation per fork, in pairs whose
 * order is drawn at random from a seed; then {@link Results#compare} with the permutation test.
 *
 * <pre>
 * java -cp benchmarks.jar dev.gradclip.bench.Gate --out DIR
 *     --a-java JAVA --a-jar JAR [--a-label L] --b-java JAVA --b-jar JAR [--b-label L]
 *     [--forks N] [--seed S] [--min-effect 0.05] [--alpha 0.05] [--bench REGEX] [--workloads LIST]
 *     [--warmup N] [--measure N] [--time T] [--metric cpu|wall] [--fork-stat median|min] [--change shift|median|Q] [--history DIR]
 *     [-- more JMH options]
 * </pre>
 *
 * Why this design: on a shared machine the load drifts over minutes, so running all of A and then all
 * of B turns drift into a difference (Laaber et al., EMSE 2019). Alternating forks spreads the drift over
 * both sides; drawing the order inside each pair at random keeps a periodic disturbance from lining up
 * with one side. A fork is the sample because JIT decisions and memory layout are fixed per JVM. Each
 * workload runs in forks of its own ({@link Leg}), and the pairs of all workloads are shuffled together, so
 * that every workload's forks spread over the whole run.
 *
 * <p>The metric tested is CPU time per op ({@link CpuTimeProfiler}), unless {@code --metric wall}: on a
 * machine shared by several people, wall time mostly measures their load. The side's own jar only has to be
 * a JMH jar with the benchmarks: forks run {@code org.openjdk.jmh.Main} from it, with the profiler's one
 * class file added to the classpath, so an old commit needs no gate code. Writes DIR/a.json and DIR/b.json (every fork's iterations,
 * in JMH's format, so {@code bench/regress compare DIR/a.json DIR/b.json} repeats the verdict), DIR/forks/
 * and DIR/logs/ (each fork's JSON and JMH output) and DIR/order.txt (seed, order, wall time, load).
 */
public final class Gate {

    /**
     * The quick gate profile: gradclip's clip on one in-cache size (4K floats, in L1) and on GPT-2-small
     * (DRAM), the two regimes the clip has. Each workload is its own leg, with its own forks, because the
     * noise that matters differs. A fork is the unit of noise: iterations within a fork agree with each
     * other far more than forks do (docs/benchmarking.md, section "Where the noise is"), so more forks
     * narrow the test and longer forks do not. A 4K fork needs little time, so it gets many short forks;
     * a GPT-2-small fork needs its 500 MB set up and 80 ms per op, so it gets fewer, longer ones.
     */
    static final String BENCH = "^dev\\.gradclip\\.bench\\.ClipBenchmark\\.gradclipVector$";
    static final String WORKLOADS = "flat-4K,gpt2-small";

    /**
     * One workload's plan: forks per side and JMH's iterations. Six half-second warm-ups: under a load of
     * 4 to 10 on two cores the JIT gets a fraction of a core, and four warm-ups of half a second did not
     * always finish compiling the 4K clip (one fork in 18 still ran C1 code).
     */
    record Leg(String workload, int forks, int warmups, String warmupTime, int measurements, String measureTime) {

        /** The default plan of a workload: short forks for sizes that fit in cache, long ones for the rest. */
        static Leg of(String workload) {
            boolean inCache = workload.equals("flat-4K") || workload.equals("flat-64K");
            return inCache ? new Leg(workload, 27, 6, "500ms", 5, "300ms") : new Leg(workload, 13, 6, "500ms", 5, "500ms");
        }

        /** The plan with any of --forks, --warmup, --measure, --time applied. */
        Leg with(Map<String, String> options) {
            String time = options.get("time");
            return new Leg(workload, Integer.parseInt(options.getOrDefault("forks", String.valueOf(forks))),
                    Integer.parseInt(options.getOrDefault("warmup", String.valueOf(warmups))),
                    time != null ? time : warmupTime,
                    Integer.parseInt(options.getOrDefault("measure", String.valueOf(measurements))),
                    time != null ? time : measureTime);
        }

        List<String> jmh(String bench) {
            return List.of(bench, "-p", "workload=" + workload, "-p", "memory=native", "-wi", String.valueOf(warmups),
                    "-w", warmupTime, "-i", String.valueOf(measurements), "-r", measureTime, "-f", "1");
        }

        @Override
        public String toString() {
            return String.format(Locale.ROOT, "%s: %d forks per side, %d x %s warm-up, %d x %s measured", workload, forks,
                    warmups, warmupTime, measurements, measureTime);
        }
    }

    /** One fork to run: a side on a leg. */
    record Fork(Side side, Leg leg) {}

    private Gate() {}

    record Side(String name, String java, String jar, String label) {}

    public static void main(String[] args) throws Exception {
        Map<String, String> options = new LinkedHashMap<>();
        List<String> jmhExtra = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--")) {
                jmhExtra.addAll(List.of(args).subList(i + 1, args.length));
                break;
            }
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                usage("bad argument " + args[i]);
            }
            options.put(args[i].substring(2), args[++i]);
        }
        for (String required : List.of("out", "a-java", "a-jar", "b-java", "b-jar")) {
            if (!options.containsKey(required)) {
                usage("missing --" + required);
            }
        }
        Side a = new Side("A", options.get("a-java"), options.get("a-jar"), options.getOrDefault("a-label", "A"));
        Side b = new Side("B", options.get("b-java"), options.get("b-jar"), options.getOrDefault("b-label", "B"));
        long seed = options.containsKey("seed") ? Long.parseLong(options.get("seed")) : System.nanoTime() % 1_000_000;
        double minEffect = Double.parseDouble(options.getOrDefault("min-effect", String.valueOf(Results.MIN_EFFECT)));
        double alpha = Double.parseDouble(options.getOrDefault("alpha", String.valueOf(Results.ALPHA)));
        List<Leg> legs = new ArrayList<>();
        for (String workload : options.getOrDefault("workloads", WORKLOADS).split(",")) {
            legs.add(Leg.of(workload.strip()).with(options));
        }
        List<String> jmhTail = new ArrayList<>();
        if (!options.getOrDefault("metric", "cpu").equals("wall")) {
            jmhTail.addAll(List.of("-prof", CpuTimeProfiler.class.getName()));
        }
        jmhTail.addAll(jmhExtra);
        String bench = options.getOrDefault("bench", BENCH);

        Path out = Path.of(options.get("out"));
        Files.createDirectories(out.resolve("forks"));
        Files.createDirectories(out.resolve("logs"));
        Path profiler = copyProfiler(out.resolve("profiler"));
        List<Fork> order = order(a, b, legs, seed);
        StringBuilder journal = new StringBuilder(String.format(Locale.ROOT, "seed %d%nA %s: %s %s%nB %s: %s %s%n", seed,
                a.label(), a.java(), a.jar(), b.label(), b.java(), b.jar()));
        for (Leg leg : legs) {
            journal.append("JMH: ").append(String.join(" ", leg.jmh(bench))).append(' ').append(String.join(" ", jmhTail)).append('\n');
        }
        System.err.printf(Locale.ROOT, "gate: %s; order seed %d (--seed %d repeats it)%n",
                String.join("; ", legs.stream().map(Leg::toString).toList()), seed, seed);

        Map<String, Integer> done = new LinkedHashMap<>();
        Map<String, List<Path>> results = new LinkedHashMap<>(Map.of("A", new ArrayList<>(), "B", new ArrayList<>()));
        Instant start = Instant.now();
        boolean terminal = System.console() != null && System.console().isTerminal();
        for (int k = 0; k < order.size(); k++) {
            Side side = order.get(k).side();
            Leg leg = order.get(k).leg();
            int index = done.merge(side.name() + " " + leg.workload(), 1, Integer::sum);
            String id = String.format(Locale.ROOT, "%s-%s-%02d", side.name(), leg.workload(), index);
            Duration elapsed = Duration.between(start, Instant.now());
            String eta = k == 0 ? "?" : format(elapsed.multipliedBy(order.size() - k).dividedBy(k));
            String load = loadAverage();
            String progress = String.format(Locale.ROOT, "gate: fork %d of %d (%s, %s, %s), %s elapsed, about %s left, load %s",
                    k + 1, order.size(), side.name(), side.label(), leg.workload(), format(elapsed), eta, load);
            System.err.print(terminal ? "\r" + progress + "   " : progress + "\n");
            System.err.flush();
            Path json = out.resolve("forks").resolve(id + ".json");
            Instant forkStart = Instant.now();
            List<String> jmh = new ArrayList<>(leg.jmh(bench));
            jmh.addAll(jmhTail);
            runFork(side, profiler, jmh, json, out.resolve("logs").resolve(id + ".log"));
            results.get(side.name()).add(json);
            journal.append(String.format(Locale.ROOT, "%3d %s %6.1f s  load %s%n", k + 1, id,
                    Duration.between(forkStart, Instant.now()).toMillis() / 1000.0, load));
        }
        Duration total = Duration.between(start, Instant.now());
        journal.append("total ").append(format(total)).append('\n');
        Files.writeString(out.resolve("order.txt"), journal);
        System.err.print(terminal ? "\n" : "");
        System.err.println("gate: " + order.size() + " forks in " + format(total) + "; forks, logs and order in " + out);

        Path aJson = out.resolve("a.json");
        Path bJson = out.resolve("b.json");
        merge(results.get("A"), aJson);
        merge(results.get("B"), bJson);
        System.out.println("A = " + a.label() + ", B = " + b.label() + "; seed " + seed + ", " + format(total));
        String forkStat = options.getOrDefault("fork-stat", "median");
        Stats.Estimator change = Stats.Estimator.parse(options.getOrDefault("change", "shift"));
        boolean ok = Results.compare(Results.read(aJson, forkStat), Results.read(bJson, forkStat), minEffect, alpha,
                options.getOrDefault("metric", "cpu"), change, Results.THRESHOLD);
        if (options.containsKey("history")) {
            History.append(Path.of(options.get("history")), bJson, b.label(), Results.read(bJson));
        }
        System.exit(ok ? 0 : 1);
    }

    /**
     * Pairs of one A and one B fork, as many as each leg has forks, in an order drawn from the seed: the
     * pairs of all legs are shuffled together, and the order inside each pair is drawn too.
     */
    static List<Fork> order(Side a, Side b, List<Leg> legs, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        List<Leg> pairs = new ArrayList<>();
        for (Leg leg : legs) {
            for (int i = 0; i < leg.forks(); i++) {
                pairs.add(leg);
            }
        }
        for (int i = pairs.size() - 1; i > 0; i--) {  // Fisher-Yates
            int j = random.nextInt(i + 1);
            pairs.set(j, pairs.set(i, pairs.get(j)));
        }
        List<Fork> order = new ArrayList<>();
        for (Leg leg : pairs) {
            boolean aFirst = random.nextBoolean();
            order.add(new Fork(aFirst ? a : b, leg));
            order.add(new Fork(aFirst ? b : a, leg));
        }
        return order;
    }

    /** The profiler's one class file, in a directory that goes on every side's classpath (after its jar). */
    private static Path copyProfiler(Path dir) throws IOException {
        String file = CpuTimeProfiler.class.getName().replace('.', '/') + ".class";
        Path target = dir.resolve(file);
        Files.createDirectories(target.getParent());
        try (var in = Gate.class.getClassLoader().getResourceAsStream(file)) {
            Files.write(target, in.readAllBytes());
        }
        return dir;
    }

    private static void runFork(Side side, Path profiler, List<String> jmh, Path json, Path log)
            throws IOException, InterruptedException {
        // JMH's forks inherit this classpath, so the profiler runs inside them.
        List<String> command = new ArrayList<>(List.of(side.java(), "--sun-misc-unsafe-memory-access=allow", "-cp",
                side.jar() + java.io.File.pathSeparator + profiler, "org.openjdk.jmh.Main"));
        command.addAll(jmh);
        // -jvm: the fork runs this side's java too, even when it is a wrapper script that adds flags.
        command.addAll(List.of("-jvm", side.java(), "-rf", "json", "-rff", json.toString()));
        int status;
        while (true) {
            Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            status = process.waitFor();
            // JMH allows one run per machine (/tmp/jmh.lock). On a shared machine someone else's run is no
            // failure of ours: wait for it, since running beside it would spoil both measurements anyway.
            if (status == 0 || !Files.readString(log).contains("Unable to acquire the JMH lock")) {
                break;
            }
            System.err.println("\ngate: another JMH run holds the JMH lock; waiting for it (retry in 15 s)");
            Thread.sleep(15_000);
        }
        if (status != 0 || !Files.exists(json) || JsonParser.parseString(Files.readString(json)).getAsJsonArray().isEmpty()) {
            System.err.println("\ngate: fork failed (exit " + status + "); JMH's output is in " + log);
            System.exit(2);
        }
    }

    /** One JMH-format file whose rawData holds every fork's iterations, benchmark by benchmark. */
    static void merge(List<Path> forkFiles, Path target) throws IOException {
        Map<String, JsonObject> merged = new LinkedHashMap<>();
        for (Path file : forkFiles) {
            for (JsonElement element : JsonParser.parseString(Files.readString(file)).getAsJsonArray()) {
                JsonObject run = element.getAsJsonObject();
                String key = run.get("benchmark").getAsString() + " " + run.get("params");
                JsonObject into = merged.get(key);
                if (into == null) {
                    merged.put(key, run.deepCopy());
                } else {
                    JsonArray raw = into.getAsJsonObject("primaryMetric").getAsJsonArray("rawData");
                    run.getAsJsonObject("primaryMetric").getAsJsonArray("rawData").forEach(raw::add);
                    JsonObject secondary = run.getAsJsonObject("secondaryMetrics");
                    JsonObject intoSecondary = into.getAsJsonObject("secondaryMetrics");
                    for (String metric : secondary == null || intoSecondary == null ? List.<String>of() : secondary.keySet()) {
                        JsonObject from = secondary.getAsJsonObject(metric);
                        JsonObject to = intoSecondary.getAsJsonObject(metric);
                        if (from.has("rawData") && to != null && to.has("rawData")) {
                            from.getAsJsonArray("rawData").forEach(to.getAsJsonArray("rawData")::add);
                        }
                    }
                }
            }
        }
        JsonArray out = new JsonArray();
        for (JsonObject run : merged.values()) {
            JsonObject primary = run.getAsJsonObject("primaryMetric");
            JsonArray raw = primary.getAsJsonArray("rawData");
            double sum = 0;
            int count = 0;
            for (JsonElement fork : raw) {
                for (JsonElement score : fork.getAsJsonArray()) {
                    sum += score.getAsDouble();
                    count++;
                }
            }
            run.addProperty("forks", raw.size());
            primary.addProperty("score", sum / count);
            // JMH's error and percentiles were one fork's; the gate's statistics come from rawData.
            primary.add("scoreError", new JsonPrimitive("NaN"));
            primary.remove("scoreConfidence");
            primary.remove("scorePercentiles");
            out.add(run);
        }
        Files.writeString(target, new GsonBuilder().setPrettyPrinting().create().toJson(out));
    }

    private static String loadAverage() {
        try {
            return Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    static String format(Duration d) {
        long s = d.toSeconds();
        return s >= 60 ? String.format(Locale.ROOT, "%dm%02ds", s / 60, s % 60) : s + "s";
    }

    private static void usage(String problem) {
        System.err.println("Gate: " + problem + "\nusage: Gate --out DIR --a-java JAVA --a-jar JAR --b-java JAVA --b-jar JAR"
                + " [--a-label L] [--b-label L] [--forks N] [--seed S] [--min-effect 0.05] [--alpha 0.05] [--bench REGEX]"
                + " [--workloads LIST] [--warmup N] [--measure N] [--time T] [--metric cpu|wall] [--fork-stat median|min] [--change shift|median|Q]"
                + " [--history DIR] [-- JMH options]");
        System.exit(2);
    }
}
