package dev.gradclip.bench;

import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * The statistics of the regression gate: two samples of per-fork scores, A (baseline) and B (now).
 *
 * <p>The unit of a sample is a fork, not an iteration: iterations of one JVM share its JIT decisions,
 * its heap and native layout, and the state of the machine while it ran, so they are not independent,
 * and pooling them understates the noise.
 *
 * <p>The change of B against A is, by default, the Hodges-Lehmann shift: the median, over every pair of an
 * A fork and a B fork, of the ratio B/A (taken in logs). It is the estimate that goes with the Mann-Whitney
 * test, and it suits this machine's noise. There, one side's forks often fall into two groups, one about
 * 20 % slower than the other for the fork's whole life (most likely another tenant on the same core;
 * docs/benchmarking.md, section "Where the noise is"). The median of such a sample sits between the groups and jumps
 * when one fork changes groups. The shift compares every fork with every other: the pairs within a group
 * pile up at the true change, and the pairs across groups fall on both sides of it. {@link Estimator}
 * also offers the ratio of medians (ClickHouse's statistic) or of any other quantile.
 *
 * <ul>
 *   <li>A randomization (permutation) test on that change, as ClickHouse's performance comparison does
 *       with the difference of medians: relabel the pooled forks at random many times; the observed change
 *       is significant when few relabellings reach it. The 1 - alpha quantile of those changes is the
 *       smallest change this run could have called significant: the gate's detection threshold.
 *   <li>A Mann-Whitney U test (Google Benchmark's compare.py), on the same relabellings, so ties and
 *       small samples need no normal approximation.
 *   <li>A bootstrap interval of the change, for the reader.
 * </ul>
 * Everything is seeded: the same samples give the same figures.
 */
public final class Stats {

    static final int PERMUTATIONS = 20_000;
    static final int BOOTSTRAPS = 5_000;

    /**
     * How the change of B against A is estimated, in logs of the fork scores: the Hodges-Lehmann shift
     * ({@link #SHIFT}, {@code quantile} NaN), or the ratio of the same quantile of each side.
     */
    public record Estimator(double quantile) {

        public static final Estimator SHIFT = new Estimator(Double.NaN);
        public static final Estimator MEDIAN = new Estimator(0.5);

        /** "shift", "median", or a quantile such as "0.25". */
        public static Estimator parse(String name) {
            return switch (name) {
                case "shift" -> SHIFT;
                case "median" -> MEDIAN;
                default -> {
                    double q = Double.parseDouble(name);
                    if (!(q >= 0 && q <= 1)) {
                        throw new IllegalArgumentException("--change: shift, median or a quantile in [0, 1], not " + name);
                    }
                    yield new Estimator(q);
                }
            };
        }

        boolean isShift() {
            return Double.isNaN(quantile);
        }

        /** log(B/A); {@code logA} and {@code logB} are logs of the scores, {@code scratch} holds n * m doubles. */
        double logRatio(double[] logA, double[] logB, double[] scratch) {
            if (!isShift()) {
                return Stats.quantile(logB, quantile) - Stats.quantile(logA, quantile);
            }
            int k = 0;
            for (double x : logA) {
                for (double y : logB) {
                    scratch[k++] = y - x;
                }
            }
            Arrays.sort(scratch, 0, k);
            return sortedQuantile(scratch, k, 0.5);
        }

        @Override
        public String toString() {
            return isShift() ? "the Hodges-Lehmann shift (median of B/A over all pairs of forks)"
                    : quantile == 0.5 ? "the ratio of medians" : String.format(Locale.ROOT, "the ratio of %.0fth percentiles", 100 * quantile);
        }
    }

    /** The test's outcome; relative figures are fractions (threshold 0.05 = 5 %), ratios B/A. */
    public record Test(int n, int m, Estimator estimator, double medianA, double medianB, double ratio, double pChange,
            double pU, double threshold, double ciLow, double ciHigh) {}

    private Stats() {}

    public static double median(double[] values) {
        return quantile(values, 0.5);
    }

    /** Linear interpolation between order statistics (type 7, the R and numpy default). */
    public static double quantile(double[] values, double q) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sortedQuantile(sorted, sorted.length, q);
    }

    private static double sortedQuantile(double[] sorted, int n, double q) {
        if (n == 0) {
            return Double.NaN;
        }
        double h = (n - 1) * q;
        int lo = (int) Math.floor(h);
        int hi = Math.min(lo + 1, n - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    /** Compares B with A at significance level alpha (two-sided), on the Hodges-Lehmann shift. */
    public static Test test(double[] a, double[] b, double alpha, long seed) {
        return test(a, b, Estimator.SHIFT, alpha, seed);
    }

    /** Compares B with A at significance level alpha (two-sided), with the change as {@code estimator} sees it. */
    public static Test test(double[] a, double[] b, Estimator estimator, double alpha, long seed) {
        int n = a.length;
        int m = b.length;
        double[] logA = logs(a);
        double[] logB = logs(b);
        double[] scratch = new double[n * m];
        double observed = estimator.logRatio(logA, logB, scratch);
        double[] pooled = new double[n + m];
        System.arraycopy(logA, 0, pooled, 0, n);
        System.arraycopy(logB, 0, pooled, n, m);
        double[] ranks = midranks(pooled);
        // Rank sum of B, centred on its expectation under the null hypothesis.
        double expected = m * (n + m + 1) / 2.0;
        double observedW = Math.abs(sum(ranks, n, n + m) - expected);
        double observedD = Math.abs(observed);

        SplittableRandom random = new SplittableRandom(seed);
        int[] index = new int[n + m];
        for (int i = 0; i < index.length; i++) {
            index[i] = i;
        }
        double[] left = new double[n];
        double[] right = new double[m];
        double[] changes = new double[PERMUTATIONS];
        int atLeastD = 0;
        int atLeastW = 0;
        for (int p = 0; p < PERMUTATIONS; p++) {
            shuffle(index, random);
            double w = 0;
            for (int i = 0; i < n; i++) {
                left[i] = pooled[index[i]];
            }
            for (int i = 0; i < m; i++) {
                right[i] = pooled[index[n + i]];
                w += ranks[index[n + i]];
            }
            double d = Math.abs(estimator.logRatio(left, right, scratch));
            changes[p] = d;
            // A relative tolerance, so that equal changes computed in another order still count.
            if (d >= observedD * (1 - 1e-12)) {
                atLeastD++;
            }
            if (Math.abs(w - expected) >= observedW - 1e-9) {
                atLeastW++;
            }
        }
        Arrays.sort(changes);
        double threshold = Math.expm1(sortedQuantile(changes, changes.length, 1 - alpha));

        double[] ratios = new double[BOOTSTRAPS];
        double[] resampleA = new double[n];
        double[] resampleB = new double[m];
        for (int r = 0; r < BOOTSTRAPS; r++) {
            for (int i = 0; i < n; i++) {
                resampleA[i] = logA[random.nextInt(n)];
            }
            for (int i = 0; i < m; i++) {
                resampleB[i] = logB[random.nextInt(m)];
            }
            ratios[r] = estimator.logRatio(resampleA, resampleB, scratch);
        }
        Arrays.sort(ratios);
        // (count + 1) / (N + 1): a Monte Carlo p-value is never 0, and it stays valid (Phipson and Smyth, 2010).
        return new Test(n, m, estimator, median(a), median(b), Math.exp(observed), (atLeastD + 1.0) / (PERMUTATIONS + 1.0),
                (atLeastW + 1.0) / (PERMUTATIONS + 1.0), threshold, Math.exp(sortedQuantile(ratios, BOOTSTRAPS, alpha / 2)),
                Math.exp(sortedQuantile(ratios, BOOTSTRAPS, 1 - alpha / 2)));
    }

    private static double[] logs(double[] values) {
        double[] logs = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            logs[i] = Math.log(values[i]);
        }
        return logs;
    }

    /**
     * The gate's rule, ClickHouse's: a change is a verdict only when it is significant and at least the
     * minimum effect. Without a verdict, a run whose detection threshold is above the minimum effect could
     * have missed a change of that size: it says {@code unstable}, not {@code same}.
     */
    public static String verdict(Test t, double alpha, double minEffect) {
        double change = t.ratio() - 1;
        if (t.pChange() < alpha && Math.abs(change) >= minEffect) {
            return change > 0 ? "SLOWER" : "faster";
        }
        return t.threshold() >= minEffect ? "unstable" : "same";
    }

    private static double sum(double[] values, int from, int to) {
        double s = 0;
        for (int i = from; i < to; i++) {
            s += values[i];
        }
        return s;
    }

    /** Ranks 1..N, ties sharing their mean rank. */
    static double[] midranks(double[] values) {
        Integer[] order = new Integer[values.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (x, y) -> Double.compare(values[x], values[y]));
        double[] ranks = new double[values.length];
        for (int i = 0; i < order.length;) {
            int j = i;
            while (j + 1 < order.length && values[order[j + 1]] == values[order[i]]) {
                j++;
            }
            for (int k = i; k <= j; k++) {
                ranks[order[k]] = (i + j) / 2.0 + 1;
            }
            i = j + 1;
        }
        return ranks;
    }

    private static void shuffle(int[] index, SplittableRandom random) {
        for (int i = index.length - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = index[i];
            index[i] = index[j];
            index[j] = t;
        }
    }

    /**
     * {@code bench/regress selftest}: checks the tests against cases whose answers are known, and the
     * false-alarm rate on simulated noise. Returns the number of failed checks.
     */
    static int selftest() {
        int failed = 0;
        // Known order statistics.
        failed += check("median of 1..9 is 5", median(new double[] {9, 1, 8, 2, 7, 3, 6, 4, 5}) == 5);
        failed += check("median of 1..4 is 2.5", median(new double[] {4, 1, 3, 2}) == 2.5);
        failed += check("midranks of 1,2,2,3 are 1,2.5,2.5,4",
                Arrays.equals(midranks(new double[] {1, 2, 2, 3}), new double[] {1, 2.5, 2.5, 4}));

        // Complete separation of 9 against 9: the exact two-sided Mann-Whitney p is 2 / C(18, 9) = 4.1e-5. The shift
        // and the difference of medians are reached by more relabellings, so their p is larger.
        double[] low = {10, 11, 12, 13, 14, 15, 16, 17, 18};
        double[] high = {20, 21, 22, 23, 24, 25, 26, 27, 28};
        Test separated = test(low, high, 0.05, 1);
        failed += check("separated samples: p(U) below 0.001", separated.pU() < 0.001);
        failed += check("separated samples: p(shift) below 0.01", separated.pChange() < 0.01);
        failed += check("separated samples: p(median) below 0.01", test(low, high, Estimator.MEDIAN, 0.05, 1).pChange() < 0.01);
        // The shift of {1, 2, 4} against {2, 4, 8}: the pairwise ratios are 2, 4, 8, 1, 2, 4, 1/2, 1, 2; their median is 2.
        failed += check("Hodges-Lehmann shift of {1,2,4} to {2,4,8} is 2", Math.abs(test(new double[] {1, 2, 4},
                new double[] {2, 4, 8}, 0.05, 1).ratio() - 2) < 1e-12);
        failed += check("separated samples: verdict SLOWER", verdict(separated, 0.05, 0.05).equals("SLOWER"));
        failed += check("reversed: verdict faster", verdict(test(high, low, 0.05, 1), 0.05, 0.05).equals("faster"));

        // Identical samples: nothing is ever more extreme than a difference of 0, so p = 1.
        Test same = test(low, low.clone(), 0.05, 1);
        failed += check("identical samples: p = 1", same.pChange() == 1 && same.pU() == 1);

        // A known small case: A = {1, 2, 3}, B = {4, 5, 6}; exact p(U) = 2 / C(6, 3) = 0.1. Monte Carlo must land near it.
        Test small = test(new double[] {1, 2, 3}, new double[] {4, 5, 6}, 0.05, 7);
        failed += check(String.format(Locale.ROOT, "A={1,2,3} B={4,5,6}: p(U) %.3f near the exact 0.100", small.pU()),
                Math.abs(small.pU() - 0.1) < 0.01);
        failed += check("3 against 3 cannot reach 0.05, so no verdict", !verdict(small, 0.05, 0.05).equals("SLOWER"));

        // Simulated A/A on lognormal noise with 3 % spread: the false SLOWER rate at alpha 0.05 and a 5 % minimum
        // effect must be far below alpha; a 10 % slowdown at that noise must be caught almost always.
        SplittableRandom random = new SplittableRandom(2026);
        int trials = 200;
        int falseAlarms = 0;
        int caught = 0;
        for (int t = 0; t < trials; t++) {
            double[] a = noisy(random, 1.00, 0.03, 9);
            double[] b = noisy(random, 1.00, 0.03, 9);
            double[] slow = noisy(random, 1.10, 0.03, 9);
            if (verdict(test(a, b, 0.05, t), 0.05, 0.05).equals("SLOWER")) {
                falseAlarms++;
            }
            if (verdict(test(a, slow, 0.05, t), 0.05, 0.05).equals("SLOWER")) {
                caught++;
            }
        }
        failed += check(String.format(Locale.ROOT, "simulated A/A, 3 %% noise: %d false SLOWER in %d", falseAlarms, trials),
                falseAlarms <= trials / 100);
        failed += check(String.format(Locale.ROOT, "simulated 10 %% slowdown, 3 %% noise: caught %d of %d", caught, trials),
                caught >= trials * 95 / 100);

        // Two groups, as on this machine: each fork is fast (3 % noise) or, with probability 1/2, 25 % slower. With 27
        // forks a side the shift must give false SLOWER verdicts no more often than alpha, catch a 10 % slowdown of
        // both groups in at least 80 % of runs, and need a narrower threshold on average than the ratio of medians,
        // whose medians sit between the groups. 40 trials: each test of 27 against 27 takes about a second.
        int bimodalFalse = 0;
        int bimodalCaught = 0;
        double thresholdShift = 0;
        double thresholdMedian = 0;
        int trials27 = 40;
        for (int t = 0; t < trials27; t++) {
            double[] a = bimodal(random, 1.00, 27);
            double[] b = bimodal(random, 1.00, 27);
            double[] slow = bimodal(random, 1.10, 27);
            Test aa = test(a, b, 0.05, t);
            bimodalFalse += verdict(aa, 0.05, 0.05).equals("SLOWER") ? 1 : 0;
            bimodalCaught += verdict(test(a, slow, 0.05, t), 0.05, 0.05).equals("SLOWER") ? 1 : 0;
            thresholdShift += aa.threshold() / trials27;
            thresholdMedian += test(a, b, Estimator.MEDIAN, 0.05, t).threshold() / trials27;
        }
        failed += check(String.format(Locale.ROOT, "two groups, shift: %d false SLOWER in %d A/A", bimodalFalse, trials27),
                bimodalFalse <= trials27 / 20);
        failed += check(String.format(Locale.ROOT, "two groups, shift: 10 %% slowdown caught %d of %d", bimodalCaught, trials27),
                bimodalCaught >= trials27 * 8 / 10);
        failed += check(String.format(Locale.ROOT, "two groups: mean threshold %.1f %% (shift) below %.1f %% (medians)",
                100 * thresholdShift, 100 * thresholdMedian), thresholdShift < thresholdMedian);

        // Wide noise (20 %): the detection threshold is above 5 %, so an A/A run must say unstable, not same.
        Test wide = test(noisy(random, 1, 0.20, 9), noisy(random, 1, 0.20, 9), 0.05, 3);
        failed += check(String.format(Locale.ROOT, "20 %% noise: threshold %.1f %% and verdict %s", 100 * wide.threshold(),
                verdict(wide, 0.05, 0.05)), wide.threshold() > 0.05 && !verdict(wide, 0.05, 0.05).equals("same"));
        System.out.println(failed == 0 ? "selftest: all checks passed" : "selftest: " + failed + " checks FAILED");
        return failed;
    }

    private static double[] noisy(SplittableRandom random, double centre, double sigma, int count) {
        double[] values = new double[count];
        for (int i = 0; i < count; i++) {
            double u1 = 1 - random.nextDouble();
            double u2 = random.nextDouble();
            double gaussian = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
            values[i] = centre * Math.exp(sigma * gaussian);
        }
        return values;
    }

    /** Forks that are fast, or with probability 1/2 about 25 % slower, as on this machine; 3 % noise within each group. */
    private static double[] bimodal(SplittableRandom random, double centre, int count) {
        double[] values = noisy(random, centre, 0.03, count);
        for (int i = 0; i < count; i++) {
            if (random.nextBoolean()) {
                values[i] *= 1.25;
            }
        }
        return values;
    }

    private static int check(String what, boolean ok) {
        System.out.println((ok ? "  ok    " : "  FAIL  ") + what);
        return ok ? 0 : 1;
    }
}
