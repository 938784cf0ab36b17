package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.ByteOrder;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Vector API kernels. Loaded only by {@link KernelProvider}, after it has checked that
 * {@code jdk.incubator.vector} is present, so the static species below are safe to initialize.
 *
 * <p>One loop shape per kind of pass, each written once: {@link NormLoop} (8 accumulators of 4
 * doubles = the 32 logical lanes of {@link Kernels}) and {@link MapLoop} (scale, clamp). The dtype
 * enters only where bytes become numbers (load and widen) and where numbers become bytes (round and
 * store), and each dtype runs its own compiled copy of the loop ({@link Specialized}).
 *
 * <p>256-bit vectors on every CPU that has them, AVX-512 included: the 32 lanes need 8 of them, which
 * fits AVX2's 16 registers beside the loads (4 accumulators of 8 doubles would fit AVX-512 too, with
 * the same bits, but Zen 4 splits 512-bit operations in two anyway). Narrower hardware uses the
 * scalar kernels, which give the same bits.
 *
 * <p><b>Faults.</b> A memory-mapped file truncated while it is clipped makes reads past its new end
 * fault. HotSpot turns such a fault into an {@link InternalError} only in methods marked as unsafe
 * accessors, and C2 marks a method for scalar segment accesses but not for the Vector API's loads
 * (JDK 25; bench/repro/ reproduces it without gradclip): a C2-compiled vector loop dies with SIGBUS
 * and takes the JVM with it. So each loop makes one scalar read of its first element, which costs
 * one load per block and carries the mark; {@code TruncatedMappingTest} checks the result.
 */
public final class VectorKernels implements Kernels {

    static final VectorSpecies<Double> DOUBLES = DoubleVector.SPECIES_256;
    static final int WIDTH = 4;
    /** The norm loop's half-width loads, each widened once to a vector of doubles (one vcvtps2pd per 4 floats). */
    static final VectorSpecies<Float> FLOATS_4 = FloatVector.SPECIES_128;
    static final VectorSpecies<Integer> INTS_4 = IntVector.SPECIES_128;
    /** The map loop works on whole vectors of floats (8 lanes), or of doubles for float64. */
    static final VectorSpecies<Float> FLOATS_8 = FloatVector.SPECIES_256;
    static final VectorSpecies<Short> SHORTS_8 = ShortVector.SPECIES_128;
    static final VectorSpecies<Integer> INTS_8 = IntVector.SPECIES_256;
    static final VectorSpecies<Long> LONGS = LongVector.SPECIES_256;
    static final ByteOrder ORDER = ByteOrder.nativeOrder();

    /**
     * Per-thread scratch of the float16 loops ({@link MapLoop}, {@link NormLoop}): a block copied out of a
     * heap segment, and a block widened to float. One per thread, for both loops: a thread runs one at a time.
     */
    static final class Float16Scratch {
        final short[] halves = new short[BLOCK];
        final float[] widened = new float[BLOCK];
    }

    static final ThreadLocal<Float16Scratch> FLOAT16_SCRATCH = ThreadLocal.withInitial(Float16Scratch::new);

    /** {@code HALVING_h} moves lane {@code j + h} onto lane {@code j}, for the fold inside a vector. */
    static final VectorShuffle<Double> HALVING_2 = VectorShuffle.fromOp(DOUBLES, j -> (j + 2) % WIDTH);
    static final VectorShuffle<Double> HALVING_1 = VectorShuffle.fromOp(DOUBLES, j -> (j + 1) % WIDTH);

    /**
     * The loops, one hidden-class copy per dtype, variant and block length ({@link Specialized}): the same bytecode,
     * compiled by C2 with the dtype a constant, so each copy's vectors stay in registers. One shared
     * loop with the dtype as an argument boxed its vectors once two dtypes had run (merging vectors from
     * different load paths): 5 MB and 10x the time per call (docs/performance.md, section "One loop per dtype").
     */
    private static final MethodHandle[][][][] NORM = normLoops();
    private static final MethodHandle[][][] MAP = mapLoops();

    /**
     * Steps per piece in the copies that run blocks shorter than {@link Kernels#BLOCK}: a tensor's last
     * block, and AGC's units (GPT-2's rows are 768 and 3,072 elements). Full blocks run copies whose
     * piece holds the whole block, one step loop each. (The float16 scale through the JDK's
     * conversions has no step loop to cut, so its two copies are the same.) The two lengths are two compiled copies because
     * neither shape is fast for both: as one loop per block, 768-element blocks from DRAM cost 1.8x per
     * element what 4,096-element blocks cost, and in pieces of 32 steps they cost the same; but pieces
     * of 32 steps made a 4,096-element block in cache 44 % slower (docs/performance.md, section "One
     * copy per block length").
     */
    static final int SHORT_STEPS = 32;
    /** Steps per piece in the copies that run full blocks: at least a whole block in every loop (a step is 4 to 16 elements). */
    static final int FULL_STEPS = Kernels.BLOCK;

    /** Throws UnsupportedOperationException where 256-bit vectors are not intrinsified. */
    public VectorKernels() {
        int preferred = DoubleVector.SPECIES_PREFERRED.vectorBitSize();
        if (preferred < DOUBLES.vectorBitSize()) {
            throw new UnsupportedOperationException("preferred vectors are " + preferred
                    + "-bit, narrower than the 256 bits the SIMD kernels use");
        }
    }

    @Override
    public void normBlock(DType type, boolean squares, boolean max, MemorySegment segment, long from, int count,
                          double scale, BlockFigures out) {
        try {
            NORM[type.ordinal()][squares ? 1 : 0][max ? 1 : 0][count < BLOCK ? 1 : 0].invokeExact(segment, from, count, scale, out);
        } catch (Throwable t) {
            throw Specialized.rethrow(t);
        }
    }

    @Override
    public void scaleBlock(DType type, MemorySegment segment, long from, int count, double c) {
        if (!(c > 0) || type != DType.FLOAT64 && !Clipping.floatCoefficient(c)) {
            // Factors 0 and NaN (written from the bits), and norms beyond ~8.5e37 x maxNorm (multiplied in
            // double): rare enough for the scalar loop.
            ScalarKernels.scaleTail(type, segment, from, from + count, c);
            return;
        }
        map(type, false, segment, from, count, c);
    }

    @Override
    public void clampBlock(DType type, MemorySegment segment, long from, int count, double bound) {
        map(type, true, segment, from, count, bound);
    }

    private static void map(DType type, boolean clamp, MemorySegment segment, long from, int count, double arg) {
        try {
            MAP[type.ordinal()][clamp ? 1 : 0][count < BLOCK ? 1 : 0].invokeExact(segment, from, count, arg);
        } catch (Throwable t) {
            throw Specialized.rethrow(t);
        }
    }

    /**
     * Indexed by dtype ordinal, squares, max, short (a block shorter than {@link Kernels#BLOCK}). A call
     * through the array is not inlined, but runs the compiled loop.
     */
    private static MethodHandle[][][][] normLoops() {
        MethodHandle[][][][] loops = new MethodHandle[DType.values().length][2][2][2];
        for (DType type : DType.values()) {
            for (int squares = 0; squares < 2; squares++) {
                for (int max = 0; max < 2; max++) {
                    for (int isShort = 0; isShort < 2; isShort++) {
                        loops[type.ordinal()][squares][max][isShort] = Specialized.normLoop(type, squares == 1, max == 1,
                                isShort == 1 ? SHORT_STEPS : FULL_STEPS);
                    }
                }
            }
        }
        return loops;
    }

    /** Indexed by dtype ordinal, clamp (else scale), short. */
    private static MethodHandle[][][] mapLoops() {
        MethodHandle[][][] loops = new MethodHandle[DType.values().length][2][2];
        for (DType type : DType.values()) {
            for (int clamp = 0; clamp < 2; clamp++) {
                for (int isShort = 0; isShort < 2; isShort++) {
                    loops[type.ordinal()][clamp][isShort] = Specialized.mapLoop(type, clamp == 1,
                            isShort == 1 ? SHORT_STEPS : FULL_STEPS);
                }
            }
        }
        return loops;
    }

    @Override
    public String description() {
        return "vector (256-bit doubles, 8 accumulators, " + LANES + " lanes)";
    }
}
