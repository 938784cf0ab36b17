package dev.gradclip;

/**
 * The element type of a gradient buffer. Elements are in native byte order, at any alignment.
 *
 * <p>Norms are accumulated in double for every type. The 32- and 16-bit types widen exactly to
 * double, and so do their squares (at most 24 + 24 significant bits), so only additions round.
 */
public enum DType {
    /** IEEE 754 binary32. */
    FLOAT32(4),
    /** IEEE 754 binary64. Squares are not exact in double, so the kernels scale where they could overflow or underflow. */
    FLOAT64(8),
    /** IEEE 754 binary16 (half precision): 5 exponent bits, 10 fraction bits, largest finite 65504. */
    FLOAT16(2),
    /** bfloat16: the high 16 bits of a binary32 (8 exponent bits, 7 fraction bits). */
    BFLOAT16(2);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /**
     * Bytes per element.
     *
     * @return 8, 4 or 2
     */
    public int byteSize() {
        return byteSize;
    }
}
