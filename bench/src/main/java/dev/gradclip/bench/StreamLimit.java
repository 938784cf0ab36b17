package dev.gradclip.bench;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * What the memory system allows: the least work that still touches the same bytes. A read pass
 * adds the floats into four vector accumulators (no widening, no squares); a read+write pass
 * multiplies each float by a float and stores it. The clip limit is one of each, as gradclip's
 * clip is a norm pass then a scale pass.
 */
final class StreamLimit {

    private static final VectorSpecies<Float> FLOATS = FloatVector.SPECIES_PREFERRED;
    private static final int WIDTH = FLOATS.length();
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final int CHUNK = dev.gradclip.internal.Kernels.BLOCK;

    private StreamLimit() {}

    static float read(List<MemorySegment> grads) {
        float sum = 0;
        for (int s = 0, count = grads.size(); s < count; s++) {
            MemorySegment g = grads.get(s);
            long n = g.byteSize() / Float.BYTES;
            for (long from = 0; from < n; from += CHUNK) {
                sum += readChunk(g, from, (int) Math.min(CHUNK, n - from));
            }
        }
        return sum;
    }

    /**
     * Chunks of the same length as gradclip's blocks, each its own int-indexed loop with fresh
     * accumulators: one long-indexed loop over a whole segment, with accumulators carried across
     * segments, measured up to 3x slower than this (docs/benchmarking.md, section "The streaming limit").
     */
    private static float readChunk(MemorySegment g, long from, int length) {
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        long base = from * Float.BYTES;
        int i = 0;
        for (; i + 4 * WIDTH <= length; i += 4 * WIDTH) {
            long at = base + (long) i * Float.BYTES;
            a0 = a0.add(FloatVector.fromMemorySegment(FLOATS, g, at, ORDER));
            a1 = a1.add(FloatVector.fromMemorySegment(FLOATS, g, at + WIDTH * Float.BYTES, ORDER));
            a2 = a2.add(FloatVector.fromMemorySegment(FLOATS, g, at + 2 * WIDTH * Float.BYTES, ORDER));
            a3 = a3.add(FloatVector.fromMemorySegment(FLOATS, g, at + 3 * WIDTH * Float.BYTES, ORDER));
        }
        float tail = 0;
        for (; i < length; i++) {
            tail += g.getAtIndex(ValueLayout.JAVA_FLOAT, from + i);
        }
        // Order does not matter here: the sum only keeps the loads alive.
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD) + tail;
    }

    static float read(float[][] grads) {
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        float tail = 0;
        for (float[] g : grads) {
            int i = 0;
            for (; i + 4 * WIDTH <= g.length; i += 4 * WIDTH) {
                a0 = a0.add(FloatVector.fromArray(FLOATS, g, i));
                a1 = a1.add(FloatVector.fromArray(FLOATS, g, i + WIDTH));
                a2 = a2.add(FloatVector.fromArray(FLOATS, g, i + 2 * WIDTH));
                a3 = a3.add(FloatVector.fromArray(FLOATS, g, i + 3 * WIDTH));
            }
            for (; i < g.length; i++) {
                tail += g[i];
            }
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD) + tail;
    }

    static void readWrite(List<MemorySegment> grads, float c) {
        for (int s = 0, count = grads.size(); s < count; s++) {
            MemorySegment g = grads.get(s);
            long n = g.byteSize() / Float.BYTES;
            for (long from = 0; from < n; from += CHUNK) {
                readWriteChunk(g, from, (int) Math.min(CHUNK, n - from), c);
            }
        }
    }

    private static void readWriteChunk(MemorySegment g, long from, int length, float c) {
        long base = from * Float.BYTES;
        int i = 0;
        for (; i + WIDTH <= length; i += WIDTH) {
            long at = base + (long) i * Float.BYTES;
            FloatVector.fromMemorySegment(FLOATS, g, at, ORDER).mul(c).intoMemorySegment(g, at, ORDER);
        }
        for (; i < length; i++) {
            g.setAtIndex(ValueLayout.JAVA_FLOAT, from + i, g.getAtIndex(ValueLayout.JAVA_FLOAT, from + i) * c);
        }
    }

    static void readWrite(float[][] grads, float c) {
        for (float[] g : grads) {
            int i = 0;
            for (; i + WIDTH <= g.length; i += WIDTH) {
                FloatVector.fromArray(FLOATS, g, i).mul(c).intoArray(g, i);
            }
            for (; i < g.length; i++) {
                g[i] *= c;
            }
        }
    }
}
