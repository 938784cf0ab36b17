package dev.gradclip.mpi;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Starts a test main under {@code mpirun} in child JVMs of this JVM's java and class path, with a
 * hard time limit, and returns its exit status and output. Skips the calling test (a JUnit
 * assumption) when {@code mpirun} is not installed.
 */
public final class MpiRun {

    static final String HOW_TO_ENABLE = "mpirun not found on PATH, so the Open MPI integration tests are skipped."
            + " To run them, install Open MPI: apt-get install openmpi-bin libopenmpi-dev (Debian/Ubuntu; .ci/run does it)";

    public record Result(int exitCode, String output, List<String> command) {}

    private MpiRun() {}

    /** The mpirun on PATH, if any. */
    static Optional<Path> mpirun() {
        String path = System.getenv("PATH");
        if (path == null) {
            return Optional.empty();
        }
        for (String dir : path.split(File.pathSeparator)) {
            Path candidate = Path.of(dir.isEmpty() ? "." : dir, "mpirun");
            if (Files.isExecutable(candidate)) {
                return Optional.of(candidate);
            }
        }
        return Optional.empty();
    }

    /** This JVM's java launcher, so the ranks run on the same JDK 25 as the tests. */
    static String java() {
        return ProcessHandle.current().info().command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }

    /**
     * Runs {@code mainClass} on {@code ranks} ranks. Kills the job (mpirun and every descendant) if it
     * runs longer than {@code timeoutSeconds}, and reports that as exit code -1.
     */
    public static Result run(int ranks, long timeoutSeconds, Class<?> mainClass, String... args) throws IOException, InterruptedException {
        Optional<Path> mpirun = mpirun();
        assumeTrue(mpirun.isPresent(), HOW_TO_ENABLE);
        List<String> command = new ArrayList<>(List.of(mpirun.get().toString(), "--allow-run-as-root", "--oversubscribe",
                "-np", Integer.toString(ranks), java(), "--add-modules=jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED", "-Xmx512m", "-XX:+UseSerialGC",
                "-cp", System.getProperty("java.class.path"), mainClass.getName()));
        command.addAll(List.of(args));
        Path log = Files.createTempFile("gradclip-mpirun-", ".log");
        try {
            // Output goes to a file, not a pipe, so a chatty job can never block on a full pipe.
            Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            boolean finished = process.waitFor(timeoutSeconds, TimeUnit.SECONDS);
            if (!finished) {
                process.descendants().forEach(ProcessHandle::destroyForcibly);
                process.destroyForcibly();
                process.waitFor(10, TimeUnit.SECONDS);
            }
            String output = Files.readString(log);
            return new Result(finished ? process.exitValue() : -1, output, command);
        } finally {
            Files.deleteIfExists(log);
        }
    }
}
