package dev.gradclip.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.infra.IterationParams;
import org.openjdk.jmh.profile.InternalProfiler;
import org.openjdk.jmh.results.AggregationPolicy;
import org.openjdk.jmh.results.IterationResult;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.ScalarResult;

/**
 * A JMH profiler that reports the CPU time of the benchmark threads per operation ({@code cpu.time/op},
 * ns/op), beside JMH's wall-clock score: {@code -prof dev.gradclip.bench.CpuTimeProfiler}.
 *
 * <p>Why: on a shared 2-core machine the benchmark thread waits for a core whenever the load is above 2,
 * and wall time per op grows with the load of the moment, which moves by 2x within minutes. The thread's
 * own CPU time leaves out the time it was not running; memory stalls and cache contention still count,
 * so a memory-bound workload is still measured as memory-bound. The regression gate tests this metric.
 *
 * <p>Only JMH's worker threads are counted, not the JIT or GC threads, through {@link ThreadMXBean}
 * (nanosecond clocks on Linux, where the process total has only clock-tick resolution). Worker threads
 * live for the whole trial, so every iteration after the first sees them at both ends; the first
 * (a warm-up) reports nothing. Self-contained, with no other gradclip class: the gate adds this one class
 * to the classpath of an old revision's benchmarks.jar.
 */
public final class CpuTimeProfiler implements InternalProfiler {

    public static final String METRIC = "cpu.time/op";

    private final ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    private Map<Long, Long> before = Map.of();

    @Override
    public String getDescription() {
        return "CPU time of the benchmark threads per operation";
    }

    @Override
    public void beforeIteration(BenchmarkParams benchmarkParams, IterationParams iterationParams) {
        before = workerCpuTimes();
    }

    @Override
    public Collection<? extends Result> afterIteration(BenchmarkParams benchmarkParams, IterationParams iterationParams,
            IterationResult result) {
        Map<Long, Long> after = workerCpuTimes();
        long ops = result.getMetadata().getAllOps();
        if (before.isEmpty() || after.isEmpty() || ops <= 0) {
            return List.of();
        }
        long cpu = 0;
        for (Map.Entry<Long, Long> thread : after.entrySet()) {
            cpu += thread.getValue() - before.getOrDefault(thread.getKey(), 0L);
        }
        return List.of(new ScalarResult(METRIC, (double) cpu / ops, "ns/op", AggregationPolicy.AVG));
    }

    private Map<Long, Long> workerCpuTimes() {
        Map<Long, Long> times = new HashMap<>();
        for (Thread thread : Thread.getAllStackTraces().keySet()) {
            if (thread.getName().contains("jmh-worker")) {
                long time = threads.getThreadCpuTime(thread.threadId());
                if (time >= 0) {
                    times.put(thread.threadId(), time);
                }
            }
        }
        return times;
    }
}
