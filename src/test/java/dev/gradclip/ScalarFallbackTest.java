package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.internal.GlobalNorm;
import dev.gradclip.internal.ScalarKernels;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The library in a JVM without the Vector API: it works, warns once, and agrees with the vector path. */
class ScalarFallbackTest {

    private record Run(List<String> out, String err) {}

    private static Run probe(Path dir, String... jvmFlags) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(List.of(jvmFlags));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), FallbackProbe.class.getName()));
        Path out = dir.resolve("out.txt");
        Path err = dir.resolve("err.txt");
        Process process = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "probe timed out");
        String stderr = Files.readString(err, StandardCharsets.UTF_8);
        assertEquals(0, process.exitValue(), stderr);
        return new Run(Files.readAllLines(out, StandardCharsets.UTF_8), stderr);
    }

    @Test
    void withoutTheVectorModuleTheScalarKernelsRunAndOneWarningSaysWhichFlagToAdd(@TempDir Path dir) throws Exception {
        Run run = probe(dir);
        assertEquals(new ScalarKernels().description(), run.out().get(0));
        long warnings = run.err().lines().filter(line -> line.contains("--add-modules=jdk.incubator.vector")).count();
        assertEquals(1, warnings, run.err());
        assertAgreesWithThisJvm(run.out());
    }

    @Test
    void theScalarKernelsCanBeForcedWithAPropertyAndThenDoNotWarn(@TempDir Path dir) throws Exception {
        Run run = probe(dir, "--add-modules=jdk.incubator.vector", "-Dgradclip.kernels=scalar");
        assertEquals(new ScalarKernels().description(), run.out().get(0));
        assertTrue(run.err().lines().noneMatch(line -> line.contains("WARNING") && !line.contains("incubator modules")), run.err());
        assertAgreesWithThisJvm(run.out());
    }

    /** The norm within the error bounds of both paths; each clipped value within one ulp. */
    private static void assertAgreesWithThisJvm(List<String> out) {
        float[][] grads = FallbackProbe.data();
        double expected = GradClip.clipGradNorm(grads, 1.0);
        double fallback = Double.longBitsToDouble(Long.parseUnsignedLong(out.get(1), 16));
        double bound = 2 * GlobalNorm.relativeErrorBound(ScalarKernels.MIN_LANES);
        assertTrue(bound <= 2e-13);
        assertEquals(expected, fallback, expected * bound);
        int line = 2;
        for (float[] tensor : grads) {
            for (float g : tensor) {
                float got = Float.intBitsToFloat(Integer.parseUnsignedInt(out.get(line++), 16));
                assertEquals(g, got, Math.ulp(g), "line " + line);
            }
        }
        assertEquals(out.size(), line);
    }
}
