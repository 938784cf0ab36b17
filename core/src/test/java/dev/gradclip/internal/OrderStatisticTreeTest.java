package dev.gradclip.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The order-statistic tree against a sorted array, and its height: the cost of a step is one walk
 * from the root, so a height within the AVL bound {@code 1.4405 log2(n + 2)} after a million
 * insertions, in ascending, descending and random order, is the proof that AutoClip's step cost
 * grows as log n rather than n (a structural check, which a loaded machine cannot make flaky).
 */
class OrderStatisticTreeTest {

    private static double avlBound(int n) {
        return 1.4405 * Math.log(n + 2) / Math.log(2) - 0.3277;
    }

    @Test
    void selectAndRankAgreeWithASortedArrayWithDuplicates() {
        SplittableRandom random = new SplittableRandom(7);
        OrderStatisticTree tree = new OrderStatisticTree();
        double[] values = new double[3000];
        for (int n = 0; n < values.length; n++) {
            values[n] = random.nextInt(5) == 0 ? random.nextInt(10) : random.nextDouble() * 10;
            tree.add(values[n]);
            assertEquals(n + 1, tree.size());
            if (n % 97 == 0 || n < 40) {
                double[] sorted = Arrays.copyOf(values, n + 1);
                Arrays.sort(sorted);
                for (int k = 0; k <= n; k++) {
                    assertEquals(sorted[k], tree.select(k), "rank " + k + " of " + (n + 1));
                }
                double probe = random.nextInt(3) == 0 ? random.nextInt(10) : random.nextDouble() * 10;
                long below = Arrays.stream(sorted).filter(v -> v < probe).count();
                assertEquals(below, tree.rank(probe));
                double[] copy = new double[n + 1];
                tree.copyAscending(copy, 0);
                assertArrayEquals(sorted, copy);
            }
        }
        assertThrows(IndexOutOfBoundsException.class, () -> tree.select(-1));
        assertThrows(IndexOutOfBoundsException.class, () -> tree.select(3000));
    }

    @Test
    void heightStaysWithinTheAvlBoundOverAMillionInsertionsInAnyOrder() {
        int n = 1_000_000;
        SplittableRandom random = new SplittableRandom(3);
        OrderStatisticTree ascending = new OrderStatisticTree();
        OrderStatisticTree descending = new OrderStatisticTree();
        OrderStatisticTree shuffled = new OrderStatisticTree();
        OrderStatisticTree equal = new OrderStatisticTree();
        for (int i = 0; i < n; i++) {
            ascending.add(i);
            descending.add(-i);
            shuffled.add(random.nextDouble());
            equal.add(1.0);
            if (Integer.bitCount(i + 1) == 1) {
                for (OrderStatisticTree tree : new OrderStatisticTree[] {ascending, descending, shuffled, equal}) {
                    assertTrue(tree.height() <= avlBound(i + 1), "height " + tree.height() + " at " + (i + 1));
                }
            }
        }
        for (OrderStatisticTree tree : new OrderStatisticTree[] {ascending, descending, shuffled, equal}) {
            assertTrue(tree.height() <= 29, "height " + tree.height());
        }
        assertEquals(n / 2.0, ascending.select(n / 2));
        assertEquals(n - 1.0, ascending.select(n - 1));
        assertEquals(-(n - 1.0), descending.select(0));
    }

    @Test
    void aTreeBuiltFromAscendingValuesIsBalancedAndGrowsOn() {
        double[] values = new double[1000];
        for (int i = 0; i < values.length; i++) {
            values[i] = i / 2;
        }
        OrderStatisticTree tree = OrderStatisticTree.ofAscending(values, 0, values.length);
        assertEquals(1000, tree.size());
        assertTrue(tree.height() <= 10, "height " + tree.height());
        for (int k = 0; k < values.length; k++) {
            assertEquals(values[k], tree.select(k));
        }
        for (int i = 0; i < 5000; i++) {
            tree.add(-i);
        }
        assertEquals(-4999.0, tree.select(0));
        assertEquals(499.0, tree.select(5999));
        assertTrue(tree.height() <= avlBound(6000));
        assertEquals(0, OrderStatisticTree.ofAscending(values, 3, 3).size());
    }
}
