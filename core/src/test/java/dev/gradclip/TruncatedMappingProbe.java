package dev.gradclip;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * Run in a child JVM by {@link TruncatedMappingTest}: clips a memory-mapped file until the kernels
 * are C2-compiled, truncates the file, and clips again. Prints what the last call threw; a JVM
 * killed by SIGBUS prints nothing and exits non-zero.
 */
public final class TruncatedMappingProbe {

    public static void main(String[] args) throws Exception {
        DType type = DType.valueOf(args[0]);
        Path file = Files.createTempFile("gradclip-truncated", ".bin");
        long bytes = 1L << 20;
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE);
             Arena arena = Arena.ofShared()) {
            channel.write(ByteBuffer.allocate(1), bytes - 1);
            MemorySegment mapped = channel.map(FileChannel.MapMode.READ_WRITE, 0, bytes, arena);
            for (long i = 0; i < bytes; i += 2) {
                mapped.set(ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) 0x3c00); // 1.0 in float16, tiny elsewhere
            }
            Gradients grads = Gradients.of(type, List.of(mapped));
            for (int call = 0; call < 4000; call++) { // the norm and scale loops reach C2
                double norm = GradClip.totalNorm(grads, 2);
                GradClip.clipGradsWithNorm(grads, norm, norm * (1 + 1e-3));
            }
            channel.truncate(4096);
            try {
                GradClip.clipGradNorm(grads, 1e-3, 2);
                System.out.println("no fault");
            } catch (InternalError e) {
                System.out.println("InternalError: " + e.getMessage());
            }
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
