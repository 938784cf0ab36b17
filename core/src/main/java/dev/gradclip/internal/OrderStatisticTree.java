package dev.gradclip.internal;

import java.util.Arrays;

/**
 * A multiset of doubles that answers "the k-th smallest" (an order-statistic tree, Cormen et al.,
 * Introduction to Algorithms, section 14.1): AutoClip's history of norms, where every step adds one
 * norm and reads one or two ranks.
 *
 * <p>An AVL tree (Adelson-Velsky and Landis, 1962) whose nodes also hold the size of their subtree,
 * in parallel arrays. {@link #add}, {@link #select} and {@link #rank} walk one root-to-leaf path, and an AVL tree
 * of n nodes is at most {@code 1.4405 log2(n + 2)} high (Knuth, TAOCP vol. 3, 6.2.3), so both cost
 * O(log n) in the worst case, sorted input included: about 29 levels at a million norms. A sorted
 * array would cost O(n) per insertion, and two heaps give only the median, not an arbitrary rank
 * with its neighbour for interpolation.
 *
 * <p>Memory: 21 bytes per value (a double, three ints, a byte). The arrays double when full, so a
 * history of n values has allocated at most twice that, in about log2(n) steps; between those steps
 * nothing is allocated. Not thread-safe.
 */
public final class OrderStatisticTree {

    private static final int INITIAL_CAPACITY = 64;

    // Node 0 is the empty tree: size 0, height 0. Nodes 1..count hold the values.
    private double[] value;
    private int[] left;
    private int[] right;
    private int[] size;
    private byte[] height;
    private int root;
    private int count;

    public OrderStatisticTree() {
        allocate(INITIAL_CAPACITY);
    }

    private void allocate(int capacity) {
        value = new double[capacity];
        left = new int[capacity];
        right = new int[capacity];
        size = new int[capacity];
        height = new byte[capacity];
    }

    /** A tree of {@code values[from .. to)}, which must be ascending: balanced at once, in O(n). */
    public static OrderStatisticTree ofAscending(double[] values, int from, int to) {
        OrderStatisticTree tree = new OrderStatisticTree();
        int n = to - from;
        if (n + 1 > tree.value.length) {
            tree.allocate(n + 1);
        }
        tree.root = tree.build(values, from, to);
        return tree;
    }

    /** Nodes for {@code values[from .. to)}, the middle one at the top: a complete tree, heights differing by at most one. */
    private int build(double[] values, int from, int to) {
        if (from >= to) {
            return 0;
        }
        int middle = (from + to) >>> 1;
        int node = newNode(values[middle]);
        left[node] = build(values, from, middle);
        right[node] = build(values, middle + 1, to);
        update(node);
        return node;
    }

    /** The number of values. */
    public int size() {
        return count;
    }

    /** The tree's height: 0 when empty. For the tests of the logarithmic bound. */
    public int height() {
        return height[root];
    }

    /** Adds a value (not NaN); equal values are kept, each once per call. */
    public void add(double v) {
        if (count + 1 == value.length) {
            // Grow before descending: the recursion assigns into the arrays it read on the way down.
            int capacity = value.length * 2;
            if (capacity < 0) {
                throw new IllegalStateException("the history holds " + count + " values, its limit");
            }
            value = Arrays.copyOf(value, capacity);
            left = Arrays.copyOf(left, capacity);
            right = Arrays.copyOf(right, capacity);
            size = Arrays.copyOf(size, capacity);
            height = Arrays.copyOf(height, capacity);
        }
        root = insert(root, v);
    }

    /** Inserts below {@code node} and returns the subtree's new root; the recursion is as deep as the tree. */
    private int insert(int node, double v) {
        if (node == 0) {
            return newNode(v);
        }
        if (v < value[node]) {
            int child = insert(left[node], v);
            left[node] = child;
        } else {
            int child = insert(right[node], v);
            right[node] = child;
        }
        return rebalance(node);
    }

    private int newNode(double v) {
        int node = ++count;
        value[node] = v;
        left[node] = 0;
        right[node] = 0;
        size[node] = 1;
        height[node] = 1;
        return node;
    }

    /** The {@code k}-th smallest value, from 0: {@code select(0)} is the minimum, {@code select(size() - 1)} the maximum. */
    public double select(int k) {
        if (k < 0 || k >= count) {
            throw new IndexOutOfBoundsException("rank " + k + " is not in 0.." + (count - 1));
        }
        int node = root;
        while (true) {
            int below = size[left[node]];
            if (k < below) {
                node = left[node];
            } else if (k == below) {
                return value[node];
            } else {
                k -= below + 1;
                node = right[node];
            }
        }
    }

    /** The number of values below {@code v} (not NaN): where {@code v} would rank among them. */
    public int rank(double v) {
        int below = 0;
        int node = root;
        while (node != 0) {
            if (value[node] < v) {
                below += size[left[node]] + 1;
                node = right[node];
            } else {
                node = left[node];
            }
        }
        return below;
    }

    /** Writes the values in ascending order into {@code out} from {@code offset}. */
    public void copyAscending(double[] out, int offset) {
        inOrder(root, out, offset);
    }

    private int inOrder(int node, double[] out, int at) {
        if (node == 0) {
            return at;
        }
        at = inOrder(left[node], out, at);
        out[at++] = value[node];
        return inOrder(right[node], out, at);
    }

    private void update(int node) {
        size[node] = 1 + size[left[node]] + size[right[node]];
        height[node] = (byte) (1 + Math.max(height[left[node]], height[right[node]]));
    }

    /** Restores the AVL balance at {@code node}, whose subtrees are balanced and differ in height by at most 2. */
    private int rebalance(int node) {
        update(node);
        int balance = height[left[node]] - height[right[node]];
        if (balance > 1) {
            if (height[left[left[node]]] < height[right[left[node]]]) {
                left[node] = rotateLeft(left[node]);
            }
            return rotateRight(node);
        }
        if (balance < -1) {
            if (height[right[right[node]]] < height[left[right[node]]]) {
                right[node] = rotateRight(right[node]);
            }
            return rotateLeft(node);
        }
        return node;
    }

    private int rotateRight(int node) {
        int top = left[node];
        left[node] = right[top];
        right[top] = node;
        update(node);
        update(top);
        return top;
    }

    private int rotateLeft(int node) {
        int top = right[node];
        right[node] = left[top];
        left[top] = node;
        update(node);
        update(top);
        return top;
    }
}
