package dev.gradclip.probe;

import dev.gradclip.Clipper;
import dev.gradclip.DType;
import dev.gradclip.Gradients;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Run by {@code ModuleBoundaryIT} in child JVMs against the packaged jar, on the class path, on the
 * module path and in a jlink image: prints the module gradclip is in, which packages it exports, and
 * the kernels a clip used, then clips [3, 4] to 1 and prints the result.
 */
public final class ModuleProbe {

    private ModuleProbe() {}

    public static void main(String[] args) {
        Module module = Clipper.class.getModule();
        System.out.println("module " + (module.isNamed() ? module.getName() : "unnamed"));
        System.out.println("exports dev.gradclip " + module.isExported("dev.gradclip"));
        System.out.println("exports dev.gradclip.internal " + module.isExported("dev.gradclip.internal"));
        try (Arena arena = Arena.ofConfined(); Clipper clipper = Clipper.builder().maxNorm(1).build()) {
            MemorySegment g = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 3f, 4f);
            double norm = clipper.clip(Gradients.builder().add("g", g, DType.FLOAT32).build());
            System.out.println("clipper " + clipper);
            System.out.println("norm " + norm + " -> " + g.getAtIndex(ValueLayout.JAVA_FLOAT, 0) + ", "
                    + g.getAtIndex(ValueLayout.JAVA_FLOAT, 1));
        }
    }
}
