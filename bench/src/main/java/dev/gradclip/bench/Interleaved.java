package dev.gradclip.bench;

import dev.gradclip.DType;
import dev.gradclip.internal.Clipping;
import dev.gradclip.internal.Engine;
import dev.gradclip.internal.ExactSum;
import dev.gradclip.internal.KernelProvider;
import dev.gradclip.internal.NormState;
import dev.gradclip.internal.NormType;
import dev.gradclip.internal.TensorTable;
import dev.gradclip.internal.UnitClipping;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.function.DoubleSupplier;

/**
 * Same-JVM, interleaved comparisons for a noisy shared machine: each round runs every contender once,
 * in a new random order, so drift in the machine's load hits all of them alike; the medians over the
 * rounds and their ratios are printed. JMH runs contenders one after another, and on this 2-core
 * machine shared with other jobs that spread two sequential runs by up to 2x (docs/benchmarking.md,
 * section "Same-JVM comparisons").
 *
 * <pre>java --add-modules=jdk.incubator.vector -cp benchmarks.jar dev.gradclip.bench.Interleaved order|dtypes|threads|report|passes [rounds]
 * java --add-modules=jdk.incubator.vector -cp benchmarks.jar dev.gradclip.bench.Interleaved agc [rounds [FLOAT32|BFLOAT16, default both]]
 * java --enable-native-access=ALL-UNNAMED --add-modules=jdk.incubator.vector -cp benchmarks.jar dev.gradclip.bench.Interleaved dtypes-torch [rounds]
 * OMP_WAIT_POLICY=passive java --enable-native-access=ALL-UNNAMED --add-modules=jdk.incubator.vector -cp benchmarks.jar \
 *     dev.gradclip.bench.Interleaved versus|versus-torch [rounds [libclip_loop.so, default bench/target/libclip_loop.so]]</pre>
 */
public final class Interleaved {

    private Interleaved() {}

    public static void main(String[] args) {
        String what = args.length > 0 ? args[0] : "order";
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 15;
        System.out.println("kernels: " + KernelProvider.kernels().description() + "; " + rounds + " rounds; "
                + Runtime.getRuntime().availableProcessors() + " processors");
        switch (what) {
            case "order" -> {
                for (String workload : new String[] {"flat-4K", "flat-16M", "gpt2-small"}) {
                    order(workload, rounds);
                }
            }
            case "dtypes", "dtypes-torch" -> {
                TorchInProcess torch = what.equals("dtypes-torch") ? TorchInProcess.start("bench/torch") : null;
                for (DType type : DType.values()) {
                    dtypes(type, rounds, torch);
                }
            }
            case "threads" -> {
                for (String workload : new String[] {"gpt2-small", "resnet50", "many-small", "flat-64K", "flat-4K"}) {
                    for (DType type : new DType[] {DType.FLOAT32, DType.BFLOAT16}) {
                        threads(workload, type, rounds);
                    }
                }
            }
            case "report" -> {
                for (String workload : new String[] {"many-small", "many-small-200"}) {
                    for (DType type : new DType[] {DType.FLOAT32, DType.BFLOAT16}) {
                        report(workload, type, rounds);
                    }
                }
            }
            case "passes" -> {
                for (DType type : new DType[] {DType.FLOAT32, DType.BFLOAT16, DType.FLOAT16}) {
                    passes(type, rounds);
                }
            }
            case "agc" -> {
                DType[] types = args.length > 2 ? new DType[] {DType.valueOf(args[2])} : new DType[] {DType.FLOAT32, DType.BFLOAT16};
                for (DType type : types) {
                    for (int threads : new int[] {1, 2}) {
                        agc(type, threads, rounds);
                    }
                }
            }
            case "versus", "versus-torch" -> versus(Path.of(args.length > 2 ? args[2] : "bench/target/libclip_loop.so"),
                    rounds, what.equals("versus-torch"));
            default -> throw new IllegalArgumentException(
                    "order, dtypes, dtypes-torch, threads, report, passes, agc, versus or versus-torch");
        }
    }

    /** Shipped fixed-order clip vs the 0.1 kernel and the width-dependent fma kernel, float32, one thread. */
    static void order(String workload, int rounds) {
        TypedState grads = state(workload, DType.FLOAT32);
        Engine engine = new Engine(KernelProvider.kernels(), 1, Long.MAX_VALUE);
        ExactSum exact = new ExactSum();
        Map<String, DoubleSupplier> norms = new LinkedHashMap<>();
        norms.put("shipped (32 fixed lanes)", normPass(engine, grads, false));
        norms.put("0.1 kernel", () -> OrderBenchmark.v01Norm(grads.table));
        norms.put("width-dependent fma", () -> OrderBenchmark.widthFmaNorm(grads.table, exact));
        Map<String, DoubleSupplier> clips = new LinkedHashMap<>();
        double[] target = {Double.POSITIVE_INFINITY};
        norms.forEach((name, norm) -> clips.put(name, () -> {
            double n = norm.getAsDouble();
            if (target[0] == Double.POSITIVE_INFINITY) {
                target[0] = n;
            }
            double c = Clipping.coefficientFor(target[0], n);
            engine.scale(grads.table, c);
            target[0] = n * c * ClipBenchmark.SHRINK;
            return n;
        }));
        report("order, " + workload + ", clip (norm + scale)", clips, rounds, workload.startsWith("flat-4K") ? 20000 : 1);
        report("order, " + workload + ", norm", norms, rounds, workload.startsWith("flat-4K") ? 20000 : 1);
        grads.free();
    }

    /**
     * One dtype's GPT-2-small clip at 1 thread, beside the streaming limit over its bytes and the plain
     * loop, or with {@code torch} (dtypes-torch) torch 1.13's clip of the same dtype in place of the plain loop.
     */
    static void dtypes(DType type, int rounds, TorchInProcess torch) {
        TypedState grads = state("gpt2-small", type);
        Map<String, DoubleSupplier> contenders = new LinkedHashMap<>();
        ClipperBenchmark benchmark = new ClipperBenchmark();
        ClipperBenchmark.Clip one = clip(1, false);
        contenders.put("gradclip", () -> benchmark.gradclip(grads, one));
        contenders.put("limit", () -> benchmark.limit(grads));
        if (torch == null) {
            contenders.put("plain", () -> benchmark.plain(grads));
        } else if (type != DType.FLOAT16) { // torch 1.13 cannot clip float16 on the CPU
            contenders.put("torch", torch.clipper("gpt2-small", type.name().toLowerCase(Locale.ROOT), 1));
        }
        report("dtype " + type + ", gpt2-small, clip, 1 thread", contenders, Math.max(5, rounds / 2), 1);
        one.stop();
        grads.free();
    }

    /**
     * The GPT-2-small clip's two passes at one thread, each beside its streaming limit: the norm pass
     * against a read of the same bytes, the scale pass against a read+write (which reads and writes
     * the bytes as floats, whatever the dtype).
     */
    static void passes(DType type, int rounds) {
        TypedState grads = state("gpt2-small", type);
        Engine engine = new Engine(KernelProvider.kernels(), 1, Long.MAX_VALUE);
        Map<String, DoubleSupplier> contenders = new LinkedHashMap<>();
        contenders.put("norm pass", normPass(engine, grads, false));
        contenders.put("read (its limit)", () -> StreamLimit.read(grads.segments));
        contenders.put("scale pass", () -> {
            engine.scale(grads.table, ClipBenchmark.SHRINK);
            return 0;
        });
        contenders.put("read+write (its limit)", () -> {
            StreamLimit.readWrite(grads.segments, 1f);
            return 0;
        });
        report("passes, gpt2-small " + type + ", 1 thread", contenders, rounds, 1);
        grads.free();
    }

    /**
     * What the per-tensor report costs: the norm pass alone at one thread, and the whole clip at one
     * and two threads, each with and without the report. "many-small-200" (the first 200 of the 2,000
     * small tensors, 3.2 MiB of float32) stays in the last-level cache, where the report's own work is
     * not hidden by reads.
     */
    static void report(String workload, DType type, int rounds) {
        TypedState grads = state(workload, type);
        ClipperBenchmark benchmark = new ClipperBenchmark();
        Map<String, DoubleSupplier> contenders = new LinkedHashMap<>();
        for (boolean report : new boolean[] {false, true}) {
            Engine engine = new Engine(KernelProvider.kernels(), 1, Long.MAX_VALUE);
            contenders.put("norm" + (report ? " + report" : ""), normPass(engine, grads, report));
        }
        List<ClipperBenchmark.Clip> clips = new ArrayList<>();
        for (int threads : new int[] {1, 2}) {
            for (boolean report : new boolean[] {false, true}) {
                ClipperBenchmark.Clip clip = clip(threads, report);
                clips.add(clip);
                contenders.put("clip, " + threads + "T" + (report ? " + report" : ""), () -> benchmark.gradclip(grads, clip));
            }
        }
        long bytes = grads.table.bytes();
        report("report, " + workload + " " + type + " (" + bytes / 1024 + " KiB)", contenders, rounds, 1);
        clips.forEach(ClipperBenchmark.Clip::stop);
        grads.free();
    }

    /**
     * The GPT-2-small float32 clip at 1 and 2 threads, gradclip against the C OpenMP loop of bench/c in
     * this JVM ({@link CLoop}; build it first with {@code bench/c/run.sh lib}), interleaved round by round,
     * and gradclip's bfloat16 clip in the same rounds. {@code versus-torch} adds torch 1.13's float32 and
     * bfloat16 clips, run in this JVM by an embedded CPython ({@link TorchInProcess}; run from the
     * repository's root, so that bench/torch is found).
     */
    static void versus(Path library, int rounds, boolean withTorch) {
        String workload = "gpt2-small";
        TypedState floats = state(workload, DType.FLOAT32);
        TypedState halves = state(workload, DType.BFLOAT16);
        ClipperBenchmark benchmark = new ClipperBenchmark();
        Map<String, DoubleSupplier> contenders = new LinkedHashMap<>();
        List<ClipperBenchmark.Clip> clips = new ArrayList<>();
        TorchInProcess torch = withTorch ? TorchInProcess.start("bench/torch") : null;
        try (CLoop c = new CLoop(library, workload)) {
            for (int threads : new int[] {1, 2}) {
                ClipperBenchmark.Clip clip = clip(threads, false);
                ClipperBenchmark.Clip halfClip = clip(threads, false);
                clips.add(clip);
                clips.add(halfClip);
                contenders.put("gradclip, " + threads + "T", () -> benchmark.gradclip(floats, clip));
                contenders.put("C OpenMP, " + threads + "T", () -> c.clip(threads));
                contenders.put("gradclip bf16, " + threads + "T", () -> benchmark.gradclip(halves, halfClip));
                if (torch != null) {
                    contenders.put("torch, " + threads + "T", torch.clipper(workload, "float32", threads));
                    contenders.put("torch bf16, " + threads + "T", torch.clipper(workload, "bfloat16", threads));
                }
            }
            report("versus C, " + workload + " FLOAT32 (" + floats.table.bytes() / 1024 + " KiB; bf16: half that)",
                    contenders, rounds, 1);
        }
        clips.forEach(ClipperBenchmark.Clip::stop);
        floats.free();
        halves.free();
    }

    /**
     * AGC over GPT-2-small shapes against the global clip of the same gradients, on one engine: the
     * clip (norm and scale pass, 3 passes' worth of bytes), AGC when no unit clips (its norms over both
     * sets, 2) and when every unit does (4 touched, of which the second read of the gradients comes
     * from the cache), and the global norm pass over gradients and parameters as 296 whole tensors (the
     * same bytes as AGC's norms, without the 115,891 units).
     */
    static void agc(DType type, int threads, int rounds) {
        AgcBenchmark.Model m = new AgcBenchmark.Model();
        m.dtype = type.name();
        m.clipping = "all";
        m.threads = threads;
        m.allocate();
        m.restore();
        AgcBenchmark benchmark = new AgcBenchmark();
        MemorySegment[] both = new MemorySegment[2 * m.grads.size()];
        DType[] types = new DType[both.length];
        String[] names = new String[both.length];
        for (int t = 0; t < m.grads.size(); t++) {
            both[2 * t] = m.grads.segment(t);
            both[2 * t + 1] = m.params.segment(t);
        }
        Arrays.fill(types, type);
        Arrays.fill(names, "t");
        TensorTable tensors = TensorTable.of(both, types, names);
        NormState state = new NormState();
        Map<String, DoubleSupplier> contenders = new LinkedHashMap<>();
        contenders.put("global clip", () -> benchmark.globalClip(m));
        contenders.put("agc, every unit clips", () -> {
            if (m.clipFactor < 1e-4) { // far below the start: the gradients are 1e-4 of what they were
                m.restore();
            }
            return benchmark.agc(m);
        });
        contenders.put("agc, no unit clips", () -> UnitClipping.clip(m.engine, m.plan, m.gradTable, 1e9, 1e-3));
        contenders.put("norm pass, grads+params", () -> {
            m.engine.norm(tensors, NormType.L2, 2, false, false, state);
            return state.norm();
        });
        contenders.put("the same, per tensor", () -> {
            m.engine.norm(tensors, NormType.L2, 2, true, false, state);
            return state.norm();
        });
        report("agc, gpt2-small " + type + ", " + threads + " thread(s)", contenders, rounds, 1);
        m.free();
    }

    /** The L2 norm pass alone (with the per-tensor report and its non-finite count if asked), as a contender. */
    private static DoubleSupplier normPass(Engine engine, TypedState grads, boolean report) {
        NormState state = new NormState();
        return () -> {
            engine.norm(grads.table, NormType.L2, 2, report, report, state);
            return state.norm();
        };
    }

    /** A clip at 1 and 2 threads, with and without the report; 2 threads also with no size cut-off. */
    static void threads(String workload, DType type, int rounds) {
        TypedState grads = state(workload, type);
        ClipperBenchmark benchmark = new ClipperBenchmark();
        Map<String, DoubleSupplier> contenders = new LinkedHashMap<>();
        List<ClipperBenchmark.Clip> clips = new ArrayList<>();
        for (int threads : new int[] {1, 2}) {
            for (boolean report : new boolean[] {false, true}) {
                ClipperBenchmark.Clip clip = clip(threads, report);
                clips.add(clip);
                contenders.put(threads + " thread(s)" + (report ? " + report" : ""), () -> benchmark.gradclip(grads, clip));
            }
        }
        ClipperBenchmark.Clip forced = new ClipperBenchmark.Clip();
        forced.threads = 2;
        forced.engine = new Engine(KernelProvider.kernels(), 2, 0);
        clips.add(forced);
        contenders.put("2 threads, no cut-off", () -> benchmark.gradclip(grads, forced));
        long bytes = grads.table.bytes();
        int repeat = bytes < (1 << 20) ? (int) Math.max(1, (8L << 20) / bytes) : 1;
        report("threads, " + workload + " " + type + " (" + bytes / 1024 + " KiB)", contenders, rounds, repeat);
        clips.forEach(ClipperBenchmark.Clip::stop);
        grads.free();
    }

    private static ClipperBenchmark.Clip clip(int threads, boolean report) {
        ClipperBenchmark.Clip clip = new ClipperBenchmark.Clip();
        clip.threads = threads;
        clip.report = report;
        clip.start();
        return clip;
    }

    private static TypedState state(String workload, DType type) {
        TypedState grads = new TypedState();
        grads.workload = workload;
        grads.dtype = type.name();
        grads.allocate();
        return grads;
    }

    /** Warms each contender up, then times {@code repeat} calls per contender per round, in a shuffled order. */
    private static void report(String title, Map<String, DoubleSupplier> contenders, int rounds, int repeat) {
        List<String> names = new ArrayList<>(contenders.keySet());
        Map<String, double[]> times = new LinkedHashMap<>();
        double sink = 0;
        for (String name : names) {
            times.put(name, new double[rounds]);
            long until = System.nanoTime() + 2_000_000_000L; // JIT warm-up: two seconds each
            do {
                sink += contenders.get(name).getAsDouble();
            } while (System.nanoTime() < until);
        }
        Random random = new Random(42);
        for (int r = 0; r < rounds; r++) {
            Collections.shuffle(names, random);
            for (String name : names) {
                DoubleSupplier work = contenders.get(name);
                long start = System.nanoTime();
                for (int k = 0; k < repeat; k++) {
                    sink += work.getAsDouble();
                }
                times.get(name)[r] = (System.nanoTime() - start) / 1e6 / repeat;
            }
        }
        System.out.println("\n" + title + (sink == 42 ? "" : ""));
        String first = contenders.keySet().iterator().next();
        double base = median(times.get(first));
        for (Map.Entry<String, double[]> e : times.entrySet()) {
            double m = median(e.getValue());
            System.out.printf(Locale.ROOT, "  %-28s median %10.4f ms  (p25 %.4f, p75 %.4f)  x%.3f of %s%n", e.getKey(), m,
                    quantile(e.getValue(), 0.25), quantile(e.getValue(), 0.75), m / base, first);
        }
    }

    private static double median(double[] values) {
        return quantile(values, 0.5);
    }

    private static double quantile(double[] values, double q) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[(int) Math.round(q * (sorted.length - 1))];
    }
}
