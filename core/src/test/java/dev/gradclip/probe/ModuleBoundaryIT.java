package dev.gradclip.probe;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The packaged jar as users get it (run by failsafe after {@code package}): its module descriptor
 * exports only {@code dev.gradclip}; on the class path, on the module path and in a jlink image it
 * starts without {@code --add-modules jdk.incubator.vector}, warns once and clips with the scalar
 * kernels, and with the flag it picks the vector kernels. Every run must print the same clip.
 */
class ModuleBoundaryIT {

    private static final String FLAG = "--add-modules=jdk.incubator.vector";

    private static final Path JAR = Path.of(System.getProperty("gradclip.jar", "target/gradclip.jar"));
    private static final Path PROBES = Path.of(System.getProperty("gradclip.test.classes", "target/test-classes"));
    private static final String JAVA_HOME = System.getProperty("java.home");

    private record Run(List<String> out, String err) {
        String line(String prefix) {
            return out.stream().filter(l -> l.startsWith(prefix)).findFirst().orElse("(no " + prefix + " line)");
        }

        long warnings() {
            return err.lines().filter(l -> l.contains(FLAG) && l.contains("WARNING")).count();
        }
    }

    private static Run run(Path dir, String java, List<String> args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(java));
        command.addAll(args);
        command.add(ModuleProbe.class.getName());
        Path out = dir.resolve("out.txt");
        Path err = dir.resolve("err.txt");
        Process process = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertTrue(process.waitFor(120, TimeUnit.SECONDS), "probe timed out: " + command);
        Run run = new Run(Files.readAllLines(out, StandardCharsets.UTF_8), Files.readString(err, StandardCharsets.UTF_8));
        assertEquals(0, process.exitValue(), command + "\n" + run.out + "\n" + run.err);
        assertTrue(run.line("norm").startsWith("norm 5.0 -> 0.59999"), "the clip printed " + run.out);
        return run;
    }

    private static String java() {
        return Path.of(JAVA_HOME, "bin", "java").toString();
    }

    /**
     * Runs the probe with {@code args}, then with the flag in front: scalar kernels and one warning
     * without it, vector kernels and none with it, and the same clipped bits. Returns the run without.
     */
    private static Run assertTheFlagChoosesTheKernels(Path dir, String java, List<String> args)
            throws IOException, InterruptedException {
        Run plain = run(dir, java, args);
        assertTrue(plain.line("clipper").contains("scalar"), plain.out.toString());
        assertEquals(1, plain.warnings(), plain.err);
        List<String> flagged = new ArrayList<>(List.of(FLAG));
        flagged.addAll(args);
        Run vector = run(dir, java, flagged);
        assertTrue(vector.line("clipper").contains("vector ("), vector.out.toString());
        assertEquals(0, vector.warnings(), vector.err);
        assertEquals(plain.line("norm"), vector.line("norm"));
        return plain;
    }

    @Test
    void theDescriptorExportsOnlyThePublicPackageAndRequiresTheVectorModuleStatically() throws IOException {
        try (JarFile jar = new JarFile(JAR.toFile(), true, JarFile.OPEN_READ, Runtime.version())) {
            var descriptor = java.lang.module.ModuleDescriptor.read(jar.getInputStream(jar.getEntry("module-info.class")));
            assertEquals("dev.gradclip", descriptor.name());
            assertEquals(List.of("dev.gradclip"), descriptor.exports().stream().map(e -> e.source()).toList());
            assertTrue(descriptor.exports().stream().allMatch(e -> !e.isQualified()));
            assertTrue(descriptor.requires().stream().anyMatch(r -> r.name().equals("jdk.incubator.vector")
                    && r.modifiers().contains(java.lang.module.ModuleDescriptor.Requires.Modifier.STATIC)));
            assertTrue(descriptor.requires().stream().allMatch(r -> r.name().startsWith("java.") || r.name().startsWith("jdk.")),
                    "no dependency outside the JDK: " + descriptor.requires());
            List<String> packages = jar.stream().map(e -> e.getName()).filter(n -> n.endsWith(".class"))
                    .filter(n -> !n.equals("module-info.class"))
                    .map(n -> n.substring(0, n.lastIndexOf('/'))).distinct().sorted().toList();
            assertEquals(List.of("dev/gradclip", "dev/gradclip/internal"), packages);
        }
    }

    @Test
    void onTheModulePathOnlyTheApiIsExportedAndTheFlagChoosesTheKernels(@TempDir Path dir) throws Exception {
        Run plain = assertTheFlagChoosesTheKernels(dir, java(),
                List.of("--module-path", JAR.toString(), "--add-modules=dev.gradclip", "-cp", PROBES.toString()));
        assertEquals("module dev.gradclip", plain.line("module"));
        assertEquals("exports dev.gradclip true", plain.line("exports dev.gradclip "));
        assertEquals("exports dev.gradclip.internal false", plain.line("exports dev.gradclip.internal"));
    }

    @Test
    void onTheClassPathTheJarIsAnOrdinaryLibraryAndTheFlagChoosesTheKernels(@TempDir Path dir) throws Exception {
        Run plain = assertTheFlagChoosesTheKernels(dir, java(), List.of("-cp", JAR + File.pathSeparator + PROBES));
        assertEquals("module unnamed", plain.line("module"));
    }

    @Test
    void jlinkBuildsAnImageThatRunsWithAndWithoutTheVectorModule(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("image");
        Path jlink = Path.of(JAVA_HOME, "bin", "jlink");
        Process process = new ProcessBuilder(jlink.toString(), "--module-path", JAR.toString(),
                "--add-modules", "dev.gradclip,jdk.incubator.vector", "--output", image.toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("jlink.txt").toFile()).start();
        assertTrue(process.waitFor(300, TimeUnit.SECONDS), "jlink timed out");
        assertEquals(0, process.exitValue(), Files.readString(dir.resolve("jlink.txt")));
        String imageJava = image.resolve("bin").resolve("java").toString();
        Run plain = assertTheFlagChoosesTheKernels(dir, imageJava,
                List.of("--add-modules=dev.gradclip", "-cp", PROBES.toString()));
        assertEquals("module dev.gradclip", plain.line("module"));
    }
}
