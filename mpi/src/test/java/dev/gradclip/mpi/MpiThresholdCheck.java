package dev.gradclip.mpi;

import dev.gradclip.Clipper;
import dev.gradclip.GradReport;
import dev.gradclip.Gradients;
import dev.gradclip.NonFinite;
import dev.gradclip.testing.ShardedGrads;
import dev.gradclip.Threshold;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * Runs on every rank under mpirun (started by {@link MpiIntegrationTest}): 60 steps of a training
 * run whose gradients change every step, with spikes and NaN steps, clipped by a Clipper with an
 * adaptive threshold over {@link Mpi}, sharded at tensor boundaries. Each rank also runs the
 * unsharded steps itself and checks, step by step, that its bound has the unsharded bound's bits.
 * Then the stall guard: NaN steps from step 10 on must stop every rank at the same step. Prints
 * {@code OK rank r of n}, {@code STALL rank r at step s}, or {@code FAIL rank r: ...}.
 */
public final class MpiThresholdCheck {

    private static final int TENSORS = 10;
    private static final int STEPS = 60;

    private MpiThresholdCheck() {}

    public static void main(String[] args) {
        try (Mpi mpi = Mpi.init()) {
            int rank = mpi.rank();
            try {
                List<Supplier<Threshold>> thresholds = List.of(() -> Threshold.autoClip(10), () -> Threshold.autoClip(90),
                        Threshold::zClip, () -> Threshold.zClip(0.9, 2.0, 5, Double.POSITIVE_INFINITY));
                for (Supplier<Threshold> threshold : thresholds) {
                    long[] unsharded = bounds(threshold.get(), null, ShardedGrads.all(TENSORS), -1);
                    long[] sharded = bounds(threshold.get(), mpi, mine(mpi), -1);
                    for (int step = 0; step < STEPS; step++) {
                        if (sharded[step] != unsharded[step]) {
                            throw new AssertionError(threshold.get() + ", step " + step + ": bound "
                                    + Double.longBitsToDouble(sharded[step]) + ", unsharded " + Double.longBitsToDouble(unsharded[step]));
                        }
                    }
                }
                bounds(Threshold.autoClip(50), mpi, mine(mpi), 10);
                System.out.println("OK rank " + rank + " of " + mpi.size() + " (" + thresholds.size() + " thresholds x "
                        + STEPS + " steps, bit-identical to the unsharded run)");
            } catch (RuntimeException | AssertionError e) {
                e.printStackTrace(System.out);
                System.out.println("FAIL rank " + rank + ": " + e);
                System.out.flush();
                Runtime.getRuntime().halt(1);
            }
        }
    }

    private static List<Integer> mine(Mpi mpi) {
        List<Integer> mine = new ArrayList<>();
        for (int t = 0; t < TENSORS; t++) {
            if (t % mpi.size() == mpi.rank()) {
                mine.add(t);
            }
        }
        return mine;
    }

    /**
     * Each step's bound, as bits, for the tensors {@code which} (all of them without {@code mpi}).
     * Step s holds the tensors of seed s; every seventh step a spike multiplies tensor 1's first
     * element, and steps 13 and 29 put a NaN into tensor 2 (SKIP steps). With {@code stallFrom} >= 0,
     * every step from there on has a NaN, and a stall guard of 4 must stop the run: the step is printed.
     */
    private static long[] bounds(Threshold threshold, Mpi mpi, List<Integer> which, int stallFrom) {
        long[] bounds = new long[STEPS];
        Clipper.Builder builder = Clipper.builder().threshold(threshold).nonFinite(NonFinite.SKIP).threads(1);
        if (stallFrom >= 0) {
            builder.maxConsecutiveSkips(4);
        }
        if (mpi != null) {
            builder.allReduce(mpi);
        }
        try (Clipper clipper = builder.build()) {
            for (int step = 0; step < STEPS; step++) {
                List<ShardedGrads.Tensor> tensors = ShardedGrads.tensors(1000 + step, TENSORS);
                try (Arena arena = Arena.ofConfined()) {
                    List<MemorySegment> segments = ShardedGrads.copies(arena, tensors, which);
                    for (int k = 0; k < which.size(); k++) {
                        int t = which.get(k);
                        MemorySegment segment = segments.get(k);
                        if (segment.byteSize() == 0) {
                            continue;
                        }
                        if (t == 1 && step % 7 == 3) {
                            ShardedGrads.set(segment, tensors.get(t).type(), 0, 1000.0);
                        }
                        if (t == 2 && (step == 13 || step == 29 || (stallFrom >= 0 && step >= stallFrom))) {
                            ShardedGrads.set(segment, tensors.get(t).type(), 0, Double.NaN);
                        }
                    }
                    Gradients grads = ShardedGrads.gradients(tensors, which, segments);
                    GradReport report = new GradReport(grads);
                    try {
                        clipper.clip(grads, report);
                    } catch (IllegalStateException stalled) {
                        if (stallFrom < 0) {
                            throw stalled;
                        }
                        System.out.println("STALL rank " + (mpi == null ? -1 : mpi.rank()) + " at step " + step + ": "
                                + stalled.getMessage());
                        return bounds;
                    }
                    bounds[step] = Double.doubleToRawLongBits(report.maxNorm());
                }
            }
        }
        if (stallFrom >= 0) {
            throw new AssertionError("the stall guard did not stop the run");
        }
        return bounds;
    }
}
