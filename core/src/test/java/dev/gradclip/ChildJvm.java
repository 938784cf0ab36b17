package dev.gradclip;

import java.io.File;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * The class path for a child JVM that runs a probe of these tests. On the module path, surefire puts
 * the library on {@code jdk.module.path} and patches the test classes into its module, so neither is
 * on {@code java.class.path}: both are added here, and the child runs everything on its class path.
 */
final class ChildJvm {

    private ChildJvm() {}

    static String classPath() {
        Set<String> entries = new LinkedHashSet<>();
        add(entries, System.getProperty("jdk.module.path"));
        entries.add(location(ChildJvm.class));
        entries.add(location(GradClip.class));
        add(entries, System.getProperty("java.class.path"));
        return String.join(File.pathSeparator, entries);
    }

    private static void add(Set<String> entries, String path) {
        if (path != null) {
            for (String entry : path.split(File.pathSeparator)) {
                if (!entry.isEmpty()) {
                    entries.add(entry);
                }
            }
        }
    }

    private static String location(Class<?> type) {
        try {
            return Path.of(type.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }
}
