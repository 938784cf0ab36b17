package dev.gradclip.mpi;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Runs on every rank under mpirun (started by {@link MpiIntegrationTest}): all-reduces words of
 * many lengths and checks them against the sum and maximum this rank computes for every rank's
 * words (each rank's words come from a seed the others know); then passes a different word count
 * on the last rank and expects a clear error on every rank; then checks that calls after warm-up
 * allocate nothing on the heap. Prints one {@code OK rank r of n} line,
 * or {@code FAIL rank r: ...} and exits 1.
 */
public final class MpiWordsCheck {

    private MpiWordsCheck() {}

    private static long[] wordsOf(int rank, int round, int length) {
        SplittableRandom random = new SplittableRandom(1_000_003L * round + rank);
        long[] words = new long[length];
        for (int k = 0; k < length; k++) {
            // Signed, wide, and now and then the extremes, which a SUM wraps and a MAX keeps.
            words[k] = switch (random.nextInt(16)) {
                case 0 -> Long.MIN_VALUE;
                case 1 -> Long.MAX_VALUE;
                default -> random.nextLong() >> random.nextInt(64);
            };
        }
        return words;
    }

    public static void main(String[] args) {
        try (Mpi mpi = Mpi.init()) {
            int rank = mpi.rank();
            int size = mpi.size();
            try {
                int[] lengths = {0, 1, 2, 7, 64, 65, 300, 1024, 1100, 3};
                for (int round = 0; round < lengths.length * 2; round++) {
                    if (round == lengths.length) {
                        mpi.checkLengths(false); // on every rank alike, as its javadoc demands
                    }
                    int length = lengths[round % lengths.length];
                    long[] sum = new long[length];
                    long[] max = new long[length];
                    Arrays.fill(max, Long.MIN_VALUE);
                    for (int r = 0; r < size; r++) {
                        long[] words = wordsOf(r, round, length);
                        for (int k = 0; k < length; k++) {
                            sum[k] += words[k];
                            max[k] = Math.max(max[k], words[k]);
                        }
                    }
                    long[] summed = wordsOf(rank, round, length);
                    mpi.sum(summed);
                    long[] maxed = wordsOf(rank, round, length);
                    mpi.max(maxed);
                    if (!Arrays.equals(sum, summed) || !Arrays.equals(max, maxed)) {
                        fail(rank, "round " + round + " (" + length + " words): wrong all-reduce result");
                    }
                }
                mpi.checkLengths(true);
                long[] odd = new long[rank == size - 1 ? 5 : 4];
                Arrays.fill(odd, 7);
                try {
                    mpi.sum(odd);
                    if (size > 1) {
                        fail(rank, "different word counts were not detected");
                    }
                } catch (IllegalArgumentException e) {
                    if (size == 1 || !e.getMessage().contains("same word count")) {
                        fail(rank, "unexpected message: " + e.getMessage());
                    }
                    for (long word : odd) {
                        if (word != 7) {
                            fail(rank, "words changed by a rejected call");
                        }
                    }
                    System.out.println("MISMATCH rank " + rank + ": " + e.getMessage());
                }
                // The rejected call kept the ranks' call sequences aligned: the next call works.
                long[] after = {rank, 1};
                mpi.sum(after);
                if (after[0] != (long) size * (size - 1) / 2 || after[1] != size) {
                    fail(rank, "the call after a rejected one gave " + Arrays.toString(after));
                }
                long allocated = allocatedBytes(mpi);
                if (allocated > 1_000) { // one array per call would be over 2 MB
                    fail(rank, "2000 all-reduces after warm-up allocated " + allocated + " bytes");
                }
                System.out.println("OK rank " + rank + " of " + size + " (" + mpi.libraryVersion().lines().findFirst().orElse("")
                        + ")");
            } catch (RuntimeException e) {
                e.printStackTrace(System.out);
                fail(rank, e.toString());
            }
        }
    }

    /**
     * Heap bytes this thread allocates in 2000 calls, after warm-up calls of the same loop; the least
     * of three tries, so that a one-off JIT event in the window does not count as the calls' garbage.
     */
    private static long allocatedBytes(Mpi mpi) {
        com.sun.management.ThreadMXBean threads =
                (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        long[] words = new long[140];
        for (int i = 0; i < 3; i++) {
            calls(mpi, words, 2_000);
        }
        long least = Long.MAX_VALUE;
        for (int i = 0; i < 3; i++) {
            long before = threads.getCurrentThreadAllocatedBytes();
            calls(mpi, words, 1_000);
            least = Math.min(least, threads.getCurrentThreadAllocatedBytes() - before);
        }
        return least;
    }

    private static void calls(Mpi mpi, long[] words, int times) {
        for (int i = 0; i < times; i++) {
            mpi.sum(words);
            mpi.max(words);
        }
    }

    private static void fail(int rank, String message) {
        System.out.println("FAIL rank " + rank + ": " + message);
        System.out.flush();
        // Exiting without MPI_Finalize makes mpirun stop the other ranks instead of leaving them waiting.
        Runtime.getRuntime().halt(1);
    }
}
