package dev.gradclip.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Entry point of benchmarks.jar. With no arguments it runs the quick profile (about 2 minutes), so
 * that {@code java -jar benchmarks.jar} never runs for hours.
 *
 * <ul>
 *   <li>{@code [--quick] [JMH options]}: the GPT-2-small list and two flat sizes (4K floats in cache,
 *       16M in DRAM), native memory, gradclip's vector kernels beside the plain loop and the limit.
 *   <li>{@code --full [JMH options]}: every workload, heap and native, every implementation
 *       (about 25 minutes).
 *   <li>{@code --jmh [JMH arguments]}: JMH alone, with nothing added ({@code --jmh -h} lists its options).
 * </ul>
 * Both profiles add {@code -prof gc} and write JSON ({@code -rf json}) to {@code jmh-result.json}
 * unless {@code -rff} names another file. JMH options given after a profile add to it or override it.
 */
public final class BenchMain {

    static final String[] QUICK = {
        "^dev\\.gradclip\\.bench\\.(Norm|Clip)Benchmark\\.(gradclipVector|plainDouble|limit)$",
        "-p", "workload=flat-4K,flat-16M,gpt2-small", "-p", "memory=native",
        // Five measured iterations: with three, JMH's 99.9% error bars (t = 31.6) swamp any regression.
        "-wi", "2", "-w", "1s", "-i", "5", "-r", "1s", "-f", "1",
    };

    static final String[] FULL = {
        "^dev\\.gradclip\\.bench\\.(Norm|Clip)Benchmark\\.",
        "-p", "workload=" + Workloads.ALL, "-p", "memory=native,heap",
    };

    private BenchMain() {}

    public static void main(String[] args) throws Exception {
        List<String> given = new ArrayList<>(Arrays.asList(args));
        String profile = given.isEmpty() || !given.get(0).startsWith("--") ? "--quick" : given.remove(0);
        List<String> jmh = new ArrayList<>();
        switch (profile) {
            case "--quick" -> jmh.addAll(List.of(QUICK));
            case "--full" -> jmh.addAll(List.of(FULL));
            case "--jmh" -> {
                org.openjdk.jmh.Main.main(given.toArray(String[]::new));
                return;
            }
            default -> throw new IllegalArgumentException("unknown profile " + profile + ": use --quick, --full or --jmh");
        }
        jmh.addAll(List.of("-prof", "gc", "-rf", "json"));
        if (!given.contains("-rff")) {
            jmh.addAll(List.of("-rff", "jmh-result.json"));
        }
        jmh.addAll(given);
        org.openjdk.jmh.Main.main(jmh.toArray(String[]::new));
    }
}
