package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A mapped file truncated under a clip throws InternalError instead of killing the JVM with SIGBUS.
 * C2's Vector API loads do not mark their method as an unsafe accessor, so the
 * JVM's fault handler cannot turn a fault there into an exception (bench/repro shows it without
 * gradclip); each vector loop makes one scalar read to carry the mark. This runs in a child JVM, so
 * a regression fails the test instead of the test run.
 */
class TruncatedMappingTest {

    @ParameterizedTest
    @EnumSource(DType.class)
    void aTruncatedMappingThrowsInternalErrorInCompiledKernels(DType type, @TempDir Path dir) throws Exception {
        Path out = dir.resolve("out.txt");
        Process process = new ProcessBuilder(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules=jdk.incubator.vector", "-XX:ErrorFile=" + dir.resolve("hs_err.log"),
                "-cp", ChildJvm.classPath(), TruncatedMappingProbe.class.getName(), type.name())
                .redirectOutput(out.toFile()).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "probe timed out");
        List<String> lines = Files.readAllLines(out, StandardCharsets.UTF_8);
        assertEquals(0, process.exitValue(), "the JVM died: " + lines);
        assertTrue(lines.stream().anyMatch(line -> line.startsWith("InternalError")), lines.toString());
    }
}
