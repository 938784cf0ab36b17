package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/**
 * The NaN-bits rule ({@link GradClip}, "NaN bits") holds on every call, however the JIT has compiled
 * the passes by then: each case of {@link NanCases} runs 20,000 times in this JVM (the passes start
 * interpreted, move to C1 and then to C2, and the vector loops with them) and every call writes the
 * bits the rule gives. {@link CrossWidthTest} runs the same cases in fresh JVMs: interpreter only,
 * C1 only, the scalar kernels and 128-bit vectors.
 */
class NanBitsTest {

    static final int CALLS = 20_000;

    @Test
    void everyPassWritesTheRulesNaNBitsOnEveryCall() {
        java.util.List<NanCases.Case> cases = NanCases.all();
        java.util.List<long[]> expected = cases.stream().map(NanCases::expected).toList();
        java.util.List<NanCases.Tensor> tensors = cases.stream().map(NanCases.Tensor::new).toList();
        try (Clipper clipper = NanCases.clipper()) {
            for (int call = 1; call <= CALLS; call++) {
                for (int k = 0; k < cases.size(); k++) {
                    long[] got = tensors.get(k).run(clipper);
                    if (!java.util.Arrays.equals(expected.get(k), got)) {
                        assertEquals(NanCases.line(cases.get(k), expected.get(k)), NanCases.line(cases.get(k), got),
                                "call " + call);
                    }
                }
            }
        }
    }

    /** Forty bfloat16 ones with element 7 = 0xffc1, clipped to 1, keep 0xffc1; the others become 0x7fc0. */
    @Test
    void aBfloat16NaNKeepsItsBitsAndTheOthersBecomeTheCanonicalNaN() {
        for (int call = 1; call <= CALLS; call++) {
            short[] halves = new short[40];
            java.util.Arrays.fill(halves, (short) 0x3f80);
            halves[7] = (short) 0xffc1;
            GradClip.clipGradNorm(Gradients.of(DType.BFLOAT16, java.util.List.of(java.lang.foreign.MemorySegment.ofArray(halves))), 1);
            for (int i = 0; i < halves.length; i++) {
                assertEquals(i == 7 ? 0xffc1 : 0x7fc0, halves[i] & 0xffff, "element " + i + ", call " + call);
            }
        }
    }
}
