package dev.gradclip.demo;

import dev.gradclip.AllReduce;
import dev.gradclip.Clipper;
import dev.gradclip.DType;
import dev.gradclip.GradClip;
import dev.gradclip.GradReport;
import dev.gradclip.Gradients;
import dev.gradclip.mpi.Mpi;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;

/**
 * Sharded clipping over Open MPI: each rank holds about a quarter (with 4 ranks) of a
 * GPT-2-small-shaped model's float32 gradient tensors, whole tensors only, and clips them with a
 * {@link Clipper} whose all-reduce hook is {@link Mpi}. Rank 0 prints every rank's global norm bits
 * beside the norm of the single-process clip of the whole model, then the time of the local clip of
 * each rank's shards and what the all-reduce adds to it.
 *
 * <pre>
 * ./mvnw -q -pl examples -am compile
 * mpirun --allow-run-as-root --oversubscribe -np 4 /usr/lib/jvm/temurin-25-jdk-amd64/bin/java \
 *     --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xmx2g \
 *     -cp core/target/classes:mpi/target/classes:examples/target/classes dev.gradclip.demo.ShardedClipDemo [--shapes=gpt2-small] [--max-norm=1.0] [--reps=15] [--threads=1]
 * </pre>
 *
 * Exits with status 1 on every rank if any rank's norm bits or clipped shard differ from the
 * single-process clip.
 */
public final class ShardedClipDemo {

    /** Raw all-reduce repetitions for the latency figure. */
    private static final int LATENCY_CALLS = 400;

    private ShardedClipDemo() {}

    /** Forwards to another hook and adds up the time spent in it: the all-reduce plus waiting for slower ranks. */
    static final class TimedHook implements AllReduce {
        private final AllReduce inner;
        long nanos;
        int calls;
        int lastWordCount;

        TimedHook(AllReduce inner) {
            this.inner = inner;
        }

        @Override
        public void sum(long[] words) {
            long start = System.nanoTime();
            inner.sum(words);
            count(start, words);
        }

        @Override
        public void max(long[] words) {
            long start = System.nanoTime();
            inner.max(words);
            count(start, words);
        }

        @Override
        public int rank() {
            return inner.rank();
        }

        private void count(long start, long[] words) {
            nanos += System.nanoTime() - start;
            calls++;
            lastWordCount = words.length;
        }
    }

    public static void main(String[] args) {
        String shapes = "gpt2-small";
        double maxNorm = 1.0;
        int reps = 15;
        int threads = 1; // one core per rank, as an MPI job usually gives each rank its own cores
        for (String arg : args) {
            if (arg.startsWith("--shapes=")) {
                shapes = arg.substring("--shapes=".length());
            } else if (arg.startsWith("--max-norm=")) {
                maxNorm = Double.parseDouble(arg.substring("--max-norm=".length()));
            } else if (arg.startsWith("--reps=")) {
                reps = Integer.parseInt(arg.substring("--reps=".length()));
            } else if (arg.startsWith("--threads=")) {
                threads = Integer.parseInt(arg.substring("--threads=".length()));
            } else {
                System.err.println("usage: ShardedClipDemo [--shapes=gpt2-small|resnet50] [--max-norm=1.0] [--reps=15] [--threads=1]");
                System.exit(2);
            }
        }
        boolean same;
        try (Mpi mpi = Mpi.init()) {
            same = run(mpi, shapes, ModelShapes.named(shapes), maxNorm, reps, threads);
        }
        if (!same) {
            System.exit(1);
        }
    }

    private static boolean run(Mpi mpi, String shapes, List<ModelShapes.Tensor> tensors, double maxNorm, int reps, int threads) {
        int rank = mpi.rank();
        int size = mpi.size();
        int spike = ModelShapes.spikeIndex(tensors);
        int[] owner = balance(tensors, size);
        List<Integer> mine = new ArrayList<>();
        for (int t = 0; t < tensors.size(); t++) {
            if (owner[t] == rank) {
                mine.add(t);
            }
        }

        // The single-process clip of the whole model, on rank 0 only (the others need not hold it all).
        long[] reference = {0};
        if (rank == 0) {
            System.out.printf(Locale.ROOT, "gradclip sharded clip: %s, %d tensors, %,d float32 gradients over %d ranks%n"
                            + "%s; max_norm %s; spike in %s%n%n", shapes, tensors.size(), ModelShapes.totalElements(tensors),
                    size, mpi.libraryVersion().lines().findFirst().orElse("Open MPI"), maxNorm, tensors.get(spike).name());
            try (Arena arena = Arena.ofConfined()) {
                List<Integer> all = new ArrayList<>();
                for (int t = 0; t < tensors.size(); t++) {
                    all.add(t);
                }
                Gradients whole = allocate(arena, tensors, all, spike).grads();
                try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).threads(threads).build()) {
                    reference[0] = Double.doubleToRawLongBits(clipper.clip(whole));
                }
            }
        }
        mpi.sum(reference); // a broadcast: every other rank adds 0
        double singleProcessNorm = Double.longBitsToDouble(reference[0]);

        try (Arena arena = Arena.ofConfined()) {
            Shard local = allocate(arena, tensors, mine, spike);
            Gradients shard = local.grads();
            TimedHook hook = new TimedHook(mpi);
            GradReport report = new GradReport(shard);
            double norm;
            try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).threads(threads).allReduce(hook).build()) {
                norm = clipper.clip(shard, report);
            }

            // This rank's part of the single-process clip: the same tensors scaled for the same norm.
            boolean shardSame;
            try (Arena copyArena = Arena.ofConfined()) {
                Shard expected = allocate(copyArena, tensors, mine, spike);
                GradClip.clipGradsWithNorm(expected.grads(), maxNorm, singleProcessNorm);
                shardSame = sameBytes(local, expected);
            }
            long elements = mine.stream().mapToLong(t -> tensors.get(t).elements()).sum();
            long[] rows = gather(mpi, new long[] {Double.doubleToRawLongBits(norm), mine.size(), elements,
                    shardSame ? 1 : 0, hook.lastWordCount});
            boolean allSame = true;
            if (rank == 0) {
                System.out.println("rank  tensors      elements  global norm (bits)                  single-process norm (bits)          same");
            }
            for (int r = 0; r < size; r++) {
                double rankNorm = Double.longBitsToDouble(rows[r * 5]);
                boolean same = rows[r * 5] == reference[0] && rows[r * 5 + 3] == 1;
                allSame &= same;
                if (rank == 0) {
                    System.out.printf(Locale.ROOT, "%4d  %7d  %,12d  %.12f 0x%016x  %.12f 0x%016x  %s%n", r, rows[r * 5 + 1],
                            rows[r * 5 + 2], rankNorm, rows[r * 5], singleProcessNorm, reference[0],
                            same ? "yes" : rows[r * 5] == reference[0] ? "NO (clipped shard differs)" : "NO");
                }
            }
            if (rank == 0) {
                System.out.printf(Locale.ROOT, "%nevery rank holds the single-process norm's bits, and every clipped shard equals"
                        + " its part of the single-process clip: %s%ncoefficient %.9g; words per all-reduce (the partial and two failure flags): %d%n%n",
                        allSame ? "yes" : "NO", report.coefficient(), rows[4]);
            }
            timing(mpi, shard, threads, reps, rows[4]);
            return allSame;
        }
    }

    /**
     * Times per clip, the local clip and the global one interleaved rep by rep, so that drift on a
     * shared machine hits both alike. Each timed clip scales (to 0.9 of a norm taken untimed just
     * before), so that it reads and writes every element, and starts after an untimed 1-word
     * all-reduce that lines the ranks up. A training step waits for its slowest rank, so the job's
     * figure per rep is the slowest rank's time.
     */
    private static void timing(Mpi mpi, Gradients shard, int threads, int reps, long words) {
        int rank = mpi.rank();
        int size = mpi.size();
        long[] sync = new long[1];
        TimedHook hook = new TimedHook(mpi);
        long[] mine = new long[3 * reps];
        for (int r = -2; r < reps; r++) { // r < 0: warm-up
            long localNanos;
            try (Clipper local = Clipper.builder().maxNorm(0.9 * GradClip.totalNorm(shard, 2)).threads(threads).build()) {
                mpi.sum(sync);
                long start = System.nanoTime();
                local.clip(shard);
                localNanos = System.nanoTime() - start;
            }
            double current;
            try (Clipper measure = Clipper.builder().maxNorm(Double.POSITIVE_INFINITY).threads(threads).allReduce(mpi).build()) {
                current = measure.clip(shard); // writes nothing
            }
            long globalNanos;
            // Every rank builds the same clipper: the global norm has the same bits on every rank.
            try (Clipper global = Clipper.builder().maxNorm(0.9 * current).threads(threads).allReduce(hook).build()) {
                mpi.sum(sync);
                hook.nanos = 0;
                long start = System.nanoTime();
                global.clip(shard);
                globalNanos = System.nanoTime() - start;
            }
            if (r >= 0) {
                mine[3 * r] = bits(localNanos / 1e6);
                mine[3 * r + 1] = bits(globalNanos / 1e6);
                mine[3 * r + 2] = bits(hook.nanos / 1e6);
            }
        }
        long[] raw = new long[(int) words];
        double checked = median(micros(mpi, sync, () -> mpi.sum(raw)));
        mpi.checkLengths(false); // on every rank alike
        double unchecked = median(micros(mpi, sync, () -> mpi.sum(raw)));
        mpi.checkLengths(true);
        // A global clip of an empty shard costs only what the hook adds: the words out, the
        // all-reduce (with the count check) and the words back in.
        Gradients none = Gradients.builder().build();
        double emptyGlobal;
        try (Clipper clipper = Clipper.builder().maxNorm(1).threads(threads).allReduce(mpi).build()) {
            emptyGlobal = median(micros(mpi, sync, () -> clipper.clip(none)));
        }

        long[] all = gather(mpi, mine);
        long[] latency = gather(mpi, new long[] {bits(checked), bits(unchecked), bits(emptyGlobal)});
        if (rank != 0) {
            return;
        }
        // times[column][rank][rep]; column 0 local, 1 global, 2 inside the hook
        double[][][] times = new double[3][size][reps];
        for (int q = 0; q < size; q++) {
            for (int r = 0; r < reps; r++) {
                for (int column = 0; column < 3; column++) {
                    times[column][q][r] = Double.longBitsToDouble(all[q * 3 * reps + 3 * r + column]);
                }
            }
        }
        double[][] slowest = new double[3][reps];
        double[] difference = new double[reps];
        double[] lastInHook = new double[reps];
        for (int r = 0; r < reps; r++) {
            lastInHook[r] = Double.POSITIVE_INFINITY;
            for (int q = 0; q < size; q++) {
                for (int column = 0; column < 3; column++) {
                    slowest[column][r] = Math.max(slowest[column][r], times[column][q][r]);
                }
                lastInHook[r] = Math.min(lastInHook[r], times[2][q][r]);
            }
            difference[r] = slowest[1][r] - slowest[0][r];
        }
        System.out.printf(Locale.ROOT, "median of %d clips (ms)                ", reps);
        for (int q = 0; q < size; q++) {
            System.out.printf(Locale.ROOT, "  rank %-3d", q);
        }
        System.out.println("  slowest rank");
        row("local clip of the rank's shards", times[0], slowest[0]);
        row("global clip (Clipper + Mpi hook)", times[1], slowest[1]);
        row("  of which inside the hook", times[2], slowest[2]);
        // The last rank to reach the all-reduce waits for nobody: its time in the hook is what the
        // all-reduce adds to the step. The difference of whole clips says the same, plus the machine's noise.
        System.out.printf(Locale.ROOT, "%nadded by the all-reduce per clip: %.3f ms in the hook of the last rank to arrive"
                + " (median); %.3f ms as slowest global clip - slowest local clip (median of the differences)%n",
                median(lastInHook), median(difference));
        double worstChecked = 0;
        double worstUnchecked = 0;
        double worstEmpty = 0;
        for (int q = 0; q < size; q++) {
            worstChecked = Math.max(worstChecked, Double.longBitsToDouble(latency[3 * q]));
            worstUnchecked = Math.max(worstUnchecked, Double.longBitsToDouble(latency[3 * q + 1]));
            worstEmpty = Math.max(worstEmpty, Double.longBitsToDouble(latency[3 * q + 2]));
        }
        System.out.printf(Locale.ROOT, "ranks lined up, median of %d calls, slowest rank:%n"
                + "  one all-reduce of the %d words                 %8.1f us with the word-count check, %.1f us without%n"
                + "  a global clip of an empty shard (the hook alone) %6.1f us%n",
                LATENCY_CALLS, words, worstChecked, worstUnchecked, worstEmpty);
    }

    /** Microseconds of {@code call}, each after a 1-word all-reduce that lines the ranks up. */
    private static double[] micros(Mpi mpi, long[] sync, Runnable call) {
        double[] micros = new double[LATENCY_CALLS];
        for (int i = -LATENCY_CALLS / 4; i < LATENCY_CALLS; i++) { // the first quarter warms up
            mpi.sum(sync);
            long start = System.nanoTime();
            call.run();
            if (i >= 0) {
                micros[i] = (System.nanoTime() - start) / 1e3;
            }
        }
        return micros;
    }

    private static void row(String what, double[][] perRank, double[] slowest) {
        System.out.printf(Locale.ROOT, "  %-36s", what);
        for (double[] times : perRank) {
            System.out.printf(Locale.ROOT, " %9.3f", median(times));
        }
        System.out.printf(Locale.ROOT, " %9.3f%n", median(slowest));
    }

    /** Every rank's {@code mine} words, rank after rank: a gather built from a sum (the others add 0). */
    private static long[] gather(Mpi mpi, long[] mine) {
        long[] all = new long[mine.length * mpi.size()];
        System.arraycopy(mine, 0, all, mine.length * mpi.rank(), mine.length);
        mpi.sum(all);
        return all;
    }

    private static long bits(double value) {
        return Double.doubleToRawLongBits(value);
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    /**
     * Whole tensors to ranks, largest first onto the rank with the fewest elements so far (ties to the
     * lower rank): the same assignment on every rank, with no communication.
     */
    static int[] balance(List<ModelShapes.Tensor> tensors, int ranks) {
        Integer[] order = new Integer[tensors.size()];
        Arrays.setAll(order, i -> i);
        Arrays.sort(order, Comparator.comparingLong((Integer t) -> tensors.get(t).elements()).reversed()
                .thenComparingInt(t -> t));
        long[] load = new long[ranks];
        int[] owner = new int[tensors.size()];
        for (int t : order) {
            int least = 0;
            for (int r = 1; r < ranks; r++) {
                if (load[r] < load[least]) {
                    least = r;
                }
            }
            owner[t] = least;
            load[least] += tensors.get(t).elements();
        }
        return owner;
    }

    /** Gradients and the segments they were built from. */
    private record Shard(Gradients grads, List<MemorySegment> segments) {}

    /** The tensors {@code which}, off-heap; tensor t's values depend only on t, so any rank can make any tensor. */
    private static Shard allocate(Arena arena, List<ModelShapes.Tensor> tensors, List<Integer> which, int spike) {
        Gradients.Builder builder = Gradients.builder();
        List<MemorySegment> segments = new ArrayList<>();
        for (int t : which) {
            MemorySegment segment = arena.allocate(ValueLayout.JAVA_FLOAT, tensors.get(t).elements());
            ModelShapes.fillGradient(segment, t, spike);
            builder.add(tensors.get(t).name(), segment, DType.FLOAT32);
            segments.add(segment);
        }
        return new Shard(builder.build(), segments);
    }

    private static boolean sameBytes(Shard a, Shard b) {
        for (int i = 0; i < a.segments().size(); i++) {
            if (a.segments().get(i).mismatch(b.segments().get(i)) != -1) {
                return false;
            }
        }
        return true;
    }
}
