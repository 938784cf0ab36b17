package dev.gradclip;

import java.util.Arrays;
import java.util.Locale;

/**
 * What one {@link Clipper#clip(Gradients, GradReport)} saw: the global norm, the coefficient, and
 * each tensor's own norm, largest magnitude and count of non-finite elements, all from before
 * clipping and from the same pass over memory as the global norm. Caller-owned and reusable: build
 * one per {@link Gradients} and pass it on every step with that {@code Gradients} (a clip with any
 * other, even of the same size, is rejected before anything is written); filling it allocates
 * nothing.
 *
 * <p>Per-tensor norms have the global norm's error bounds (and are exact for normType +Infinity);
 * {@link #maxAbs} and {@link #nonFiniteCount} are exact. Not thread-safe.
 */
public final class GradReport {

    private final Gradients grads;
    private final double[] norms;
    private final double[] maxAbs;
    private final long[] nonFinite;
    private double totalNorm = Double.NaN;
    private double coefficient = 1;
    private boolean clipped;
    private double normType = 2;
    private boolean filled;
    private double maxNorm = Double.NaN;

    /**
     * An empty report for {@code grads}, to pass to every clip of that set.
     *
     * @param grads the set this report is for; clips of any other set reject it
     */
    public GradReport(Gradients grads) {
        if (grads == null) {
            throw new NullPointerException("grads is null");
        }
        this.grads = grads;
        int n = grads.size();
        norms = new double[n];
        maxAbs = new double[n];
        nonFinite = new long[n];
    }

    /**
     * The number of tensors.
     *
     * @return the tensor count of the {@link Gradients} it was built for
     */
    public int size() {
        return norms.length;
    }

    /**
     * The global norm before clipping (with an all-reduce hook: the norm over every participant).
     *
     * @return the global norm of the last clip, NaN before the first
     */
    public double totalNorm() {
        return totalNorm;
    }

    /**
     * The coefficient {@code min(1, maxNorm / (norm + 1e-6))} that was applied, in double (NaN for a NaN
     * norm under {@link NonFinite#PROPAGATE}); 1 if nothing was written.
     *
     * @return the last clip's coefficient
     */
    public double coefficient() {
        return coefficient;
    }

    /**
     * The bound the step clipped to: the Clipper's fixed {@code maxNorm}, or the bound its adaptive
     * {@link Threshold} gave for this step's norm. NaN before the first step.
     *
     * @return the last clip's bound
     */
    public double maxNorm() {
        return maxNorm;
    }

    /**
     * Whether the gradients were written (scaled).
     *
     * @return true if the last clip scaled the gradients
     */
    public boolean clipped() {
        return clipped;
    }

    /**
     * The tensor's own norm, of the configured normType, before clipping.
     *
     * @param tensor the tensor's index, from 0 to {@link #size()} - 1
     * @return the norm
     * @throws IndexOutOfBoundsException if {@code tensor} is not a tensor's index
     */
    public double norm(int tensor) {
        return norms[checked(tensor)];
    }

    /**
     * The norm of the tensor with this name.
     *
     * @param name a tensor's name
     * @return the norm
     * @throws IllegalArgumentException if no tensor has that name
     */
    public double norm(String name) {
        return norm(index(name));
    }

    /**
     * The largest |g| in the tensor before clipping; NaN if it holds a NaN.
     *
     * @param tensor the tensor's index, from 0 to {@link #size()} - 1
     * @return the largest magnitude
     * @throws IndexOutOfBoundsException if {@code tensor} is not a tensor's index
     */
    public double maxAbs(int tensor) {
        return maxAbs[checked(tensor)];
    }

    /**
     * The number of NaN and infinite elements in the tensor.
     *
     * @param tensor the tensor's index, from 0 to {@link #size()} - 1
     * @return the count of non-finite elements
     * @throws IndexOutOfBoundsException if {@code tensor} is not a tensor's index
     */
    public long nonFiniteCount(int tensor) {
        return nonFinite[checked(tensor)];
    }

    /**
     * The tensor's name in the {@link Gradients} this report was built for.
     *
     * @param tensor the tensor's index, from 0 to {@link #size()} - 1
     * @return the name
     * @throws IndexOutOfBoundsException if {@code tensor} is not a tensor's index
     */
    public String name(int tensor) {
        return grads.name(checked(tensor));
    }

    /**
     * Whether any tensor holds a NaN or an infinity.
     *
     * @return true if any tensor's non-finite count is not zero
     */
    public boolean hasNonFinite() {
        for (long n : nonFinite) {
            if (n != 0) {
                return true;
            }
        }
        return false;
    }

    /**
     * The indices of the {@code k} tensors with the largest norms (all of them if there are fewer),
     * largest first (NaN first). For logs; allocates.
     *
     * @param k how many indices to return, >= 0
     * @return the indices, a new array
     * @throws IllegalArgumentException if {@code k} is negative
     */
    public int[] largest(int k) {
        if (k < 0) {
            throw new IllegalArgumentException("k must be >= 0, was " + k);
        }
        Integer[] order = new Integer[norms.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Double.compare(norms[b], norms[a]));
        int[] top = new int[Math.min(k, order.length)];
        for (int i = 0; i < top.length; i++) {
            top[i] = order[i];
        }
        return top;
    }

    /** Only the Gradients it was built for: another set of the same size would get its tensors' labels wrong. */
    boolean isFor(Gradients other) {
        return other == grads;
    }

    double[] norms() {
        return norms;
    }

    double[] maxAbsArray() {
        return maxAbs;
    }

    long[] nonFiniteArray() {
        return nonFinite;
    }

    void setMaxNorm(double maxNorm) {
        this.maxNorm = maxNorm;
    }

    void fill(double normType, double totalNorm, double coefficient, boolean clipped) {
        this.normType = normType;
        this.totalNorm = totalNorm;
        this.coefficient = coefficient;
        this.clipped = clipped;
        this.filled = true;
    }

    private int checked(int tensor) {
        if (tensor < 0 || tensor >= norms.length) {
            throw new IndexOutOfBoundsException("tensor " + tensor + " is not in 0.." + (norms.length - 1));
        }
        return tensor;
    }

    private int index(String name) {
        int i = grads.indexOf(name);
        if (i < 0) {
            throw new IllegalArgumentException("no tensor is named \"" + name + "\"");
        }
        return i;
    }

    /** One log line: the global norm, what was done, the largest tensor norm, and any non-finite tensors. */
    @Override
    public String toString() {
        if (!filled) {
            return "GradReport[not filled yet, " + size() + " tensors]";
        }
        StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "norm%s %.6g", normTypeLabel(), totalNorm));
        line.append(clipped ? String.format(Locale.ROOT, ", clipped x%.6g", coefficient) : ", not clipped");
        if (size() > 0) {
            int top = largestOne();
            line.append(String.format(Locale.ROOT, ", largest %s %.6g", grads.name(top), norms[top]));
        }
        int shown = 0;
        for (int i = 0; i < size(); i++) {
            if (nonFinite[i] != 0) {
                line.append(shown++ == 0 ? ", non-finite: " : ", ").append(grads.name(i)).append(" (")
                        .append(nonFinite[i]).append(')');
            }
        }
        return line.toString();
    }

    /** The first index of the largest norm (NaN counts as largest), without sorting: {@code largest(1)[0]}. */
    private int largestOne() {
        int top = 0;
        for (int i = 1; i < norms.length; i++) {
            if (Double.compare(norms[i], norms[top]) > 0) {
                top = i;
            }
        }
        return top;
    }

    private String normTypeLabel() {
        return normType == 2 ? "" : normType == Double.POSITIVE_INFINITY ? "[inf]" : "[" + normType + "]";
    }
}
