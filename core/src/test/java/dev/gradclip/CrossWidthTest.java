package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.gradclip.internal.KernelProvider;
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

/**
 * The same bits on every CPU: child JVMs with 128-, 256- and (where the CPU has it) 512-bit
 * vectors, the scalar fallback forced, and no Vector API at all print the same norms and clipped
 * buffers as this JVM, for every dtype and norm type 1, 2, +Infinity (and 3, 2.5), NaNs included
 * ({@link BitsProbe}). The NaN cases also run in the interpreter alone and in C1 alone, against the
 * rule's own bits ({@link NanCases#expected}), and repeated until C2 has compiled them: every call the same.
 */
class CrossWidthTest {

    private record Run(List<String> out, String err) {}

    /** Calls of the NaN cases in a child: enough for the passes to reach C2 (C1 in a C1-only JVM). */
    private static final int CALLS_THROUGH_THE_TIERS = 20_000;

    private static Run probe(Path dir, String... jvmFlags) throws IOException, InterruptedException {
        return probe(dir, "all", 1, jvmFlags);
    }

    /** Runs {@link BitsProbe} with {@code mode} and {@code calls} in a child JVM with the flags. */
    private static Run probe(Path dir, String mode, int calls, String... jvmFlags) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(List.of(jvmFlags));
        command.addAll(List.of("-cp", ChildJvm.classPath(), BitsProbe.class.getName(), mode,
                String.valueOf(calls)));
        Path out = dir.resolve("out.txt");
        Path err = dir.resolve("err.txt");
        Process process = new ProcessBuilder(command).redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertTrue(process.waitFor(180, TimeUnit.SECONDS), "probe timed out");
        String stderr = Files.readString(err, StandardCharsets.UTF_8);
        assertEquals(0, process.exitValue(), stderr);
        return new Run(Files.readAllLines(out, StandardCharsets.UTF_8), stderr);
    }

    private static void assertSameBitsAsThisJvm(Run run) {
        List<String> expected = BitsProbe.lines();
        assertEquals(expected, run.out().subList(1, run.out().size() - 1), "kernels in the child: " + run.out().get(0));
        assertTrue(run.out().getLast().startsWith("NaN cases: the same bits"), run.out().getLast());
    }

    /** The NaN cases' lines are the rule's bits, and every call gave them. */
    private static void assertNaNRule(Run run, int calls) {
        List<String> expected = NanCases.all().stream().map(c -> NanCases.line(c, NanCases.expected(c))).toList();
        assertEquals(expected, run.out().subList(1, run.out().size() - 1), "kernels in the child: " + run.out().get(0));
        assertEquals(BitsProbe.stableLine(calls), run.out().getLast());
    }

    @Test
    void theInterpreterWritesTheNaNRulesBits(@TempDir Path dir) throws Exception {
        Run run = probe(dir, "nan", 3, "--add-modules=jdk.incubator.vector", "-Xint");
        assertNaNRule(run, 3);
    }

    @Test
    void c1WritesTheNaNRulesBitsOnEveryCall(@TempDir Path dir) throws Exception {
        Run run = probe(dir, "nan", CALLS_THROUGH_THE_TIERS, "--add-modules=jdk.incubator.vector",
                "-XX:TieredStopAtLevel=1");
        assertNaNRule(run, CALLS_THROUGH_THE_TIERS);
    }

    @Test
    void withoutTheVectorModuleTheScalarKernelsGiveTheSameBitsAndOneWarningSaysWhichFlagToAdd(@TempDir Path dir)
            throws Exception {
        Run run = probe(dir);
        assertEquals(new ScalarKernels().description(), run.out().get(0));
        long warnings = run.err().lines().filter(line -> line.contains("--add-modules=jdk.incubator.vector")).count();
        assertEquals(1, warnings, run.err());
        assertSameBitsAsThisJvm(run);
    }

    @Test
    void forcedScalarKernelsGiveTheSameBitsAndDoNotWarn(@TempDir Path dir) throws Exception {
        Run run = probe(dir, "all", CALLS_THROUGH_THE_TIERS, "--add-modules=jdk.incubator.vector",
                "-Dgradclip.kernels=scalar");
        assertEquals(new ScalarKernels().description(), run.out().get(0));
        assertTrue(run.err().lines().noneMatch(line -> line.contains("WARNING") && !line.contains("incubator modules")),
                run.err());
        assertTrue(run.err().contains("gradclip kernels: " + new ScalarKernels().description()), "the choice is logged: "
                + run.err());
        assertSameBitsAsThisJvm(run);
    }

    @Test
    void vectors128BitGiveTheSameBits(@TempDir Path dir) throws Exception {
        Run run = probe(dir, "--add-modules=jdk.incubator.vector", "-XX:MaxVectorSize=16");
        // 128-bit hardware runs the scalar kernels (the 32 lanes need 256-bit vectors to be fast).
        assertEquals(new ScalarKernels().description(), run.out().get(0));
        assertSameBitsAsThisJvm(run);
    }

    @Test
    void vectors256BitGiveTheSameBits(@TempDir Path dir) throws Exception {
        Run run = probe(dir, "all", CALLS_THROUGH_THE_TIERS, "--add-modules=jdk.incubator.vector", "-XX:MaxVectorSize=32");
        if (!KernelProvider.kernels().description().startsWith("scalar")) {
            assertTrue(run.out().get(0).startsWith("vector"), run.out().get(0));
        }
        assertSameBitsAsThisJvm(run);
    }

    /**
     * Float16 by bit operations in the vector kernels, as on a CPU whose JDK has no float16
     * intrinsics: the same bits as the JDK's conversions (and SuperWord's vector ones) give here.
     */
    @Test
    void float16BitOperationsGiveTheSameBitsAsTheJdksConversions(@TempDir Path dir) throws Exception {
        Run run = probe(dir, "--add-modules=jdk.incubator.vector", "-Dgradclip.float16=bits");
        assertEquals(KernelProvider.kernels().description(), run.out().get(0));
        assertSameBitsAsThisJvm(run);
    }

    /**
     * Where the vector kernels would be slower than the scalar ones, the provider
     * picks the scalar ones and says why in its one line. Without FMA every {@code DoubleVector.fma}
     * lane is a BigDecimal computation (400-2000x slower than scalar here); without AVX2 the 256-bit
     * species are emulated. {@code -XX:UseAVX=0} also turns FMA off, so it runs the scalar float64 sum
     * through {@code SquareAdd}: the same bits as the hardware fma.
     */
    @Test
    void whereVectorsWouldBeSlowTheScalarKernelsRunAndGiveTheSameBits(@TempDir Path dir) throws Exception {
        String arch = System.getProperty("os.arch");
        List<List<String>> slowShapes = new ArrayList<>();
        slowShapes.add(List.of("-XX:-UseFMA"));
        if (arch.equals("amd64") || arch.equals("x86_64")) {
            slowShapes.add(List.of("-XX:UseAVX=1"));
            slowShapes.add(List.of("-XX:UseAVX=0"));
        }
        for (List<String> flags : slowShapes) {
            List<String> all = new ArrayList<>(List.of("--add-modules=jdk.incubator.vector"));
            all.addAll(flags);
            Run run = probe(dir, all.toArray(String[]::new));
            assertEquals(new ScalarKernels().description(), run.out().get(0), flags.toString());
            assertEquals(1, run.err().lines().filter(line -> line.contains("gradclip uses its scalar kernels")).count(),
                    flags + ": one line says why: " + run.err());
            if (flags.contains("-XX:-UseFMA")) {
                assertTrue(run.err().contains("Math.fma is not a hardware instruction"), run.err());
            }
            assertSameBitsAsThisJvm(run);
        }
    }

    @Test
    void vectors512BitGiveTheSameBitsWhereTheCpuHasThem(@TempDir Path dir) throws Exception {
        Run run = probe(dir, "--add-modules=jdk.incubator.vector", "-XX:MaxVectorSize=64");
        assertSameBitsAsThisJvm(run); // without AVX-512 the JVM caps the size and runs 256-bit vectors
    }
}
