package dev.gradclip.bench;

import dev.gradclip.internal.UnitClipping;
import java.lang.management.ManagementFactory;
import java.util.Locale;

/**
 * AGC's unit pass at two threads, with no unit clipping, over GPT-2-small shapes: the wall time per
 * call and the CPU time per call of the calling thread and of the engine's worker, in rounds of 20
 * calls. With {@code keep}, a one-thread model runs first and stays allocated, as in
 * {@code Interleaved agc}. Run it in several JVMs: each lands in one of the modes docs/adaptive.md
 * describes (section "AGC", two threads).
 *
 * <pre>java --add-modules=jdk.incubator.vector -Xmx8g -cp benchmarks.jar dev.gradclip.bench.AgcThreads [FLOAT32|BFLOAT16 [keep]]</pre>
 */
public final class AgcThreads {

    /** The one-thread model of {@code keep}, held until the end. */
    private static AgcBenchmark.Model kept;

    private AgcThreads() {}

    private static AgcBenchmark.Model model(String dtype, int threads) {
        AgcBenchmark.Model m = new AgcBenchmark.Model();
        m.dtype = dtype;
        m.clipping = "all";
        m.threads = threads;
        m.allocate();
        m.restore();
        for (int i = 0; i < 40; i++) {
            UnitClipping.clip(m.engine, m.plan, m.gradTable, 1e9, 1e-3);
        }
        return m;
    }

    public static void main(String[] args) {
        String dtype = args.length > 0 ? args[0] : "BFLOAT16";
        if (args.length > 1 && args[1].equals("keep")) {
            kept = model(dtype, 1);
        }
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        AgcBenchmark.Model m = model(dtype, 2);
        long[] workers = Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t.getName().startsWith("gradclip-worker-") && t.isAlive()).mapToLong(Thread::threadId).toArray();
        int calls = 20;
        for (int round = 0; round < 5; round++) {
            long[] workersBefore = mx.getThreadCpuTime(workers);
            long mainBefore = mx.getCurrentThreadCpuTime();
            long start = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                UnitClipping.clip(m.engine, m.plan, m.gradTable, 1e9, 1e-3);
            }
            long wall = System.nanoTime() - start;
            long main = mx.getCurrentThreadCpuTime() - mainBefore;
            long[] workersAfter = mx.getThreadCpuTime(workers);
            long worker = 0;
            for (int w = 0; w < workers.length; w++) {
                worker += workersAfter[w] - workersBefore[w];
            }
            System.out.printf(Locale.ROOT, "%s, 2 threads, no unit clips: %.1f ms per call; CPU per call: caller %.1f ms, worker %.1f ms%n",
                    dtype, wall / 1e6 / calls, main / 1e6 / calls, worker / 1e6 / calls);
        }
        m.free();
        if (kept != null) {
            kept.free();
        }
    }
}
