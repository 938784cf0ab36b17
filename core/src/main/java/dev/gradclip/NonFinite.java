package dev.gradclip;

/** What a {@link Clipper} does when the global norm is NaN or infinite. */
public enum NonFinite {
    /**
     * Clip anyway, as torch does by default ({@code error_if_nonfinite=False}): a NaN norm makes
     * every element NaN; an infinite norm gives the coefficient 0, so finite elements become zeros
     * and infinite ones NaN.
     */
    PROPAGATE,
    /**
     * Write nothing and throw an {@link ArithmeticException} that names the first tensor holding a
     * NaN or an infinity, by name and index, and how many it holds; or says that every element is
     * finite and the norm itself overflowed.
     */
    ERROR,
    /**
     * Write nothing and return the norm, so the training loop can skip the step; a
     * {@link GradReport} says which tensors hold non-finite values.
     */
    SKIP
}
