package dev.gradclip.mpi;

import dev.gradclip.Clipper;
import dev.gradclip.GradClip;
import dev.gradclip.GradReport;
import dev.gradclip.Gradients;
import dev.gradclip.NonFinite;
import dev.gradclip.testing.ShardedGrads;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Runs on every rank under mpirun (started by {@link MpiIntegrationTest}): for several seeds and
 * norm types 1, 2 and inf, splits a mixed-dtype gradient set across the ranks at tensor boundaries,
 * clips this rank's shard with a Clipper whose hook is {@link Mpi}, and checks that the norm has the
 * unsplit clip's bits (every rank computes the unsplit clip itself) and that the shard equals its
 * part of the unsplit clip, byte for byte. Then a NaN on one rank under {@link NonFinite#ERROR}
 * must throw on every rank and write nothing. Prints {@code OK rank r of n} or {@code FAIL rank r: ...}.
 */
public final class MpiClipCheck {

    private static final int TENSORS = 14;

    private MpiClipCheck() {}

    public static void main(String[] args) {
        try (Mpi mpi = Mpi.init()) {
            int rank = mpi.rank();
            int size = mpi.size();
            try {
                int checks = 0;
                for (long seed = 1; seed <= 6; seed++) {
                    for (double normType : new double[] {1, 2, Double.POSITIVE_INFINITY}) {
                        check(mpi, seed * 7919 + size, normType, seed % 2 == 0);
                        checks++;
                    }
                }
                nonFiniteErrorOnEveryRank(mpi);
                System.out.println("OK rank " + rank + " of " + size + " (" + checks + " sharded clips, bit-identical)");
            } catch (RuntimeException | AssertionError e) {
                e.printStackTrace(System.out);
                fail(rank, e.toString());
            }
        }
    }

    private static void check(Mpi mpi, long seed, double normType, boolean clips) {
        List<ShardedGrads.Tensor> tensors = ShardedGrads.tensors(seed, TENSORS);
        List<Integer> mine = ShardedGrads.shardOf(ShardedGrads.split(seed, TENSORS, mpi.size()), mpi.rank(), seed);
        try (Arena arena = Arena.ofConfined()) {
            List<MemorySegment> whole = ShardedGrads.copies(arena, tensors, ShardedGrads.all(TENSORS));
            Gradients wholeGrads = ShardedGrads.gradients(tensors, ShardedGrads.all(TENSORS), whole);
            double norm = GradClip.totalNorm(wholeGrads, normType);
            double maxNorm = clips ? 0.5 * norm : 2 * norm;
            double unsplit;
            try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).normType(normType).build()) {
                unsplit = clipper.clip(wholeGrads);
            }

            List<MemorySegment> shard = ShardedGrads.copies(arena, tensors, mine);
            Gradients shardGrads = ShardedGrads.gradients(tensors, mine, shard);
            GradReport report = new GradReport(shardGrads);
            double sharded;
            try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).normType(normType).allReduce(mpi).build()) {
                sharded = clipper.clip(shardGrads, report);
            }
            String what = "seed " + seed + ", norm type " + normType + ", " + mine.size() + " tensors here";
            if (Double.doubleToRawLongBits(sharded) != Double.doubleToRawLongBits(unsplit)) {
                throw new AssertionError(what + ": norm " + sharded + " is not the unsplit " + unsplit);
            }
            for (int k = 0; k < mine.size(); k++) {
                int t = mine.get(k);
                if (whole.get(t).mismatch(shard.get(k)) != -1) {
                    throw new AssertionError(what + ": tensor " + tensors.get(t).name() + " differs from the unsplit clip");
                }
            }
        }
    }

    /** A NaN in a tensor of the last rank: ERROR throws on every rank, and nobody writes. */
    private static void nonFiniteErrorOnEveryRank(Mpi mpi) {
        long seed = 4242;
        List<ShardedGrads.Tensor> tensors = ShardedGrads.tensors(seed, TENSORS);
        List<Integer> mine = new ArrayList<>();
        for (int t = 0; t < TENSORS; t++) {
            if (t % mpi.size() == mpi.rank()) {
                mine.add(t);
            }
        }
        try (Arena arena = Arena.ofConfined()) {
            List<MemorySegment> shard = ShardedGrads.copies(arena, tensors, mine);
            if (mpi.rank() == mpi.size() - 1) {
                for (int k = 0; k < mine.size(); k++) {
                    if (shard.get(k).byteSize() > 0) {
                        ShardedGrads.set(shard.get(k), tensors.get(mine.get(k)).type(), 0, Double.NaN);
                        break;
                    }
                }
            }
            List<byte[]> before = new ArrayList<>();
            for (MemorySegment segment : shard) {
                before.add(segment.toArray(ValueLayout.JAVA_BYTE));
            }
            try (Clipper clipper = Clipper.builder().maxNorm(1e-6).nonFinite(NonFinite.ERROR).allReduce(mpi).build()) {
                clipper.clip(ShardedGrads.gradients(tensors, mine, shard));
                throw new AssertionError("a NaN on rank " + (mpi.size() - 1) + " did not make ERROR throw here");
            } catch (ArithmeticException expected) {
                System.out.println("ERROR policy on rank " + mpi.rank() + ": " + expected.getMessage());
            }
            for (int k = 0; k < shard.size(); k++) {
                if (!Arrays.equals(before.get(k), shard.get(k).toArray(ValueLayout.JAVA_BYTE))) {
                    throw new AssertionError("ERROR policy: tensor " + mine.get(k) + " was written");
                }
            }
        }
    }

    private static void fail(int rank, String message) {
        System.out.println("FAIL rank " + rank + ": " + message);
        System.out.flush();
        // Exiting without MPI_Finalize makes mpirun stop the other ranks instead of leaving them waiting.
        Runtime.getRuntime().halt(1);
    }
}
