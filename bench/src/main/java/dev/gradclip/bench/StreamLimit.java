package dev.gradclip.bench;

import java.lang.foreign.MemorySegment;
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

    private StreamLimit() {}

    static float read(List<MemorySegment> grads) {
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        FloatVector a2 = a0;
        FloatVector a3 = a0;
        float tail = 0;
        for (int s = 0, count = grads.size(); s < count; s++) {
            MemorySegment g = grads.get(s);
            long n = g.byteSize() / Float.BYTES;
            long i = 0;
            for (; i + 4 * WIDTH <= n; i += 4 * WIDTH) {
                long at = i * Float.BYTES;
                a0 = a0.add(FloatVector.fromMemorySegment(FLOATS, g, at, ORDER));
                a1 = a1.add(FloatVector.fromMemorySegment(FLOATS, g, at + WIDTH * Float.BYTES, ORDER));
                a2 = a2.add(FloatVector.fromMemorySegment(FLOATS, g, at + 2 * WIDTH * Float.BYTES, ORDER));
                a3 = a3.add(FloatVector.fromMemorySegment(FLOATS, g, at + 3 * WIDTH * Float.BYTES, ORDER));
            }
            for (; i < n; i++) {
                tail += g.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i);
            }
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
            long i = 0;
            for (; i + WIDTH <= n; i += WIDTH) {
                long at = i * Float.BYTES;
                FloatVector.fromMemorySegment(FLOATS, g, at, ORDER).mul(c).intoMemorySegment(g, at, ORDER);
            }
            for (; i < n; i++) {
                g.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, g.getAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i) * c);
            }
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
