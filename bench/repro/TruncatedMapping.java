// Minimal reproducer (no gradclip code): read a memory-mapped file with the
// Vector API / scalar MemorySegment accessors while the file gets truncated.
//
// Run (JDK 25, source-file mode):
//   java --add-modules jdk.incubator.vector TruncatedMapping.java MODE
// MODE: vector | scalar             -> truncate, then sum the whole mapping again
//       vector-thread | scalar-thread -> truncate from a 2nd thread while summing
//       vectormarked                 -> diagnostic: vector loop plus ONE scalar
//                                       seg.get in the same method (see sumVectorMarked)
// -Diters=N sets the number of warm-up passes (default 60; use 1 with -Xint).
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.FileChannel.MapMode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

public class TruncatedMapping {
    static final VectorSpecies<Float> S = FloatVector.SPECIES_256; // AVX2 width
    static final long SIZE = 64L << 20;   // 64 MiB = 16 Mi floats
    static final long SMALL = 4096;       // size after truncation: one page

    // Vector sum over the whole segment: the code path under suspicion.
    static float sumVector(MemorySegment seg) {
        FloatVector acc = FloatVector.zero(S);
        long step = S.vectorByteSize();
        for (long off = 0; off + step <= seg.byteSize(); off += step) {
            acc = acc.add(FloatVector.fromMemorySegment(S, seg, off, ByteOrder.nativeOrder()));
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    // Diagnostic: same vector loop, plus one scalar MemorySegment read in the same
    // compiled method. C2 flags an nmethod as "has unsafe access" when it inlines a
    // scalar Unsafe access; the SIGBUS handler only turns faults into InternalError
    // for flagged nmethods. If this mode survives while "vector" crashes, the vector
    // load intrinsic is what fails to set that flag.
    static float sumVectorMarked(MemorySegment seg) {
        float first = seg.get(ValueLayout.JAVA_FLOAT, 0);   // the only change
        FloatVector acc = FloatVector.zero(S);
        long step = S.vectorByteSize();
        for (long off = 0; off + step <= seg.byteSize(); off += step) {
            acc = acc.add(FloatVector.fromMemorySegment(S, seg, off, ByteOrder.nativeOrder()));
        }
        return acc.reduceLanes(VectorOperators.ADD) + first * 0f;
    }

    // Scalar sum over the whole segment: the reference behaviour.
    static float sumScalar(MemorySegment seg) {
        float acc = 0f;
        for (long off = 0; off < seg.byteSize(); off += 4) {
            acc += seg.get(ValueLayout.JAVA_FLOAT, off);
        }
        return acc;
    }

    static String mode;

    static float sum(boolean vector, MemorySegment seg) {
        if (!vector) return sumScalar(seg);
        return mode.startsWith("vectormarked") ? sumVectorMarked(seg) : sumVector(seg);
    }

    public static void main(String[] args) throws Exception {
        mode = args.length > 0 ? args[0] : "vector";
        boolean vector = mode.startsWith("vector");
        boolean threaded = mode.endsWith("-thread");
        System.out.println("java.vm.version=" + System.getProperty("java.vm.version")
                + " mode=" + mode + " species=" + S);

        Path file = Files.createTempFile("truncmap", ".bin");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ,
                StandardOpenOption.WRITE, StandardOpenOption.DELETE_ON_CLOSE);
             Arena arena = Arena.ofShared()) {
            // Size the file and map it READ_WRITE into a shared arena.
            ch.truncate(0);
            ch.write(java.nio.ByteBuffer.wrap(new byte[1]), SIZE - 1);
            MemorySegment seg = ch.map(MapMode.READ_WRITE, 0, SIZE, arena);
            // Fill with 1.0f so the expected sum is known (and pages are backed).
            for (long off = 0; off < SIZE; off += 4) seg.set(ValueLayout.JAVA_FLOAT, off, 1f);

            // Warm up until the sum loop is C2-compiled (check with -XX:+PrintCompilation).
            // 60 passes over 16 Mi floats is plenty; use -Diters=1 with -Xint (slow).
            int iters = Integer.getInteger("iters", 60);
            float s = 0;
            for (int i = 0; i < iters; i++) s = sum(vector, seg);
            System.out.println("warm-up done, sum=" + s);

            if (!threaded) {
                // Simple variant: shrink the file, then read the whole (now mostly
                // unbacked) mapping. Pages beyond EOF raise SIGBUS on access.
                truncate(ch);
                tryRead(vector, seg, "after truncate");
            } else {
                // Threaded variant: truncate from a 2nd thread while the compiled
                // loop is running over the mapping.
                Thread t = new Thread(() -> {
                    try { Thread.sleep(5); truncate(ch); } catch (Exception e) { throw new RuntimeException(e); }
                });
                t.start();
                for (int i = 0; i < 200 && t.isAlive() || i < 5; i++) {
                    if (!tryRead(vector, seg, "iteration " + i)) break;
                }
                t.join();
                tryRead(vector, seg, "after join");
            }
        }
        System.out.println("JVM survived: exiting normally");
    }

    static void truncate(FileChannel ch) throws IOException {
        ch.truncate(SMALL);
        System.out.println("file truncated to " + ch.size() + " bytes");
    }

    // Returns true if the read completed, false if an InternalError was thrown.
    static boolean tryRead(boolean vector, MemorySegment seg, String what) {
        try {
            float s = sum(vector, seg);
            System.out.println(what + ": sum=" + s + " (no fault)");
            return true;
        } catch (InternalError e) {
            System.out.println(what + ": caught " + e);
            return false;
        }
    }
}
