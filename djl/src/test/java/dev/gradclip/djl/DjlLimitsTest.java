package dev.gradclip.djl;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Limits of DJL 0.36 with PyTorch 2.7.1 that the documentation states, checked in a child JVM
 * because they abort the JVM: when a DJL upgrade lifts one, this test fails and the bfloat16 path
 * can be tested on real arrays.
 */
class DjlLimitsTest {

    /** Child JVM: loads the engine, says so, then asks DJL for a (3) array of the named type. */
    public static void main(String[] args) {
        try (NDManager manager = NDManager.newBaseManager(Device.cpu(), "PyTorch")) {
            manager.zeros(new Shape(3), DataType.FLOAT32);
            System.out.println("engine loaded");
            System.out.flush();
            DataType type = DataType.valueOf(args[0]);
            System.out.println("created " + manager.zeros(new Shape(3), type).getDataType());
        }
    }

    @Test
    void creatingABfloat16ArrayAbortsTheJvm(@TempDir Path workingDirectory) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        // On the module path the test classes are patched into the module: name every entry for a class-path child.
        String classPath = Stream.of(System.getProperty("test.classes"), System.getProperty("jdk.module.path"),
                        System.getProperty("java.class.path"))
                .filter(entry -> entry != null && !entry.isEmpty())
                .collect(Collectors.joining(File.pathSeparator));
        Path log = workingDirectory.resolve("child.log");
        // The working directory is a temporary one: an abort may leave a core file there.
        Process child = new ProcessBuilder(java, "--enable-native-access=ALL-UNNAMED", "-Dai.djl.offline=true",
                "-cp", classPath, DjlLimitsTest.class.getName(), "BFLOAT16")
                .directory(workingDirectory.toFile())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        boolean exited = child.waitFor(180, TimeUnit.SECONDS);
        if (!exited) {
            child.destroyForcibly().waitFor();
        }
        String output = Files.readString(log);
        assertTrue(exited, "the child JVM did not end in 180 s: " + output);
        List<String> lines = output.lines().filter(line -> !line.startsWith("SLF4J")).toList();
        assertTrue(lines.contains("engine loaded"), output);
        assertTrue(lines.contains("terminate called without an active exception"), output);
        assertTrue(lines.stream().noneMatch(line -> line.startsWith("created")), output);
        assertEquals(134, child.exitValue(), "128 + SIGABRT: " + output);
    }
}
