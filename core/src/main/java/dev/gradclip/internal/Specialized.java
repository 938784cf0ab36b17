package dev.gradclip.internal;

import dev.gradclip.DType;
import java.io.IOException;
import java.io.InputStream;
import java.lang.constant.ConstantDescs;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.List;

/**
 * One loop written once, compiled once per dtype: each call defines a hidden class from the bytes of
 * a loop template ({@link NormLoop}, {@link MapLoop}) with the dtype, the variant and the piece
 * length as class data. The template reads them into static finals, which C2 treats as constants,
 * so every copy is a straight-line loop for one dtype with its own profile, and the dtype costs no
 * branch and no vector boxing. (Lucene keeps one method per element type for the same reason; this
 * keeps one source.)
 */
final class Specialized {

    private Specialized() {}

    static MethodHandle normLoop(DType type, boolean squares, boolean max, int steps) {
        return define(NormLoop.class, List.of(type, squares, max, steps), MethodType.methodType(void.class, MemorySegment.class, long.class,
                int.class, double.class, BlockFigures.class));
    }

    static MethodHandle mapLoop(DType type, boolean clamp, int steps) {
        return define(MapLoop.class, List.of(type, clamp, steps), MethodType.methodType(void.class, MemorySegment.class, long.class,
                int.class, double.class));
    }

    /**
     * A hidden copy of {@code template} whose class data is {@code constants}: the dtype first, then
     * its variant flags, then its steps per piece.
     */
    private static MethodHandle define(Class<?> template, List<Object> constants, MethodType signature) {
        try (InputStream in = Specialized.class.getResourceAsStream(template.getSimpleName() + ".class")) {
            if (in == null) {
                throw new IllegalStateException("cannot read the bytes of " + template.getName());
            }
            MethodHandles.Lookup copy = MethodHandles.lookup()
                    .defineHiddenClassWithClassData(in.readAllBytes(), constants, true);
            return copy.findStatic(copy.lookupClass(), "run", signature);
        } catch (IOException | ReflectiveOperationException e) {
            throw new IllegalStateException("cannot specialize " + template.getName() + " for " + constants, e);
        }
    }

    /** For a template's static initializer, with its own lookup: the dtype of this copy. */
    static DType dtype(MethodHandles.Lookup copy) {
        return classData(copy, 0, DType.class);
    }

    /** For a template's static initializer, with its own lookup: variant flag {@code index} (1, 2, ...) of this copy. */
    static boolean variant(MethodHandles.Lookup copy, int index) {
        return classData(copy, index, Boolean.class);
    }

    /** For a template's static initializer, with its own lookup: the steps per piece of this copy, at {@code index}. */
    static int steps(MethodHandles.Lookup copy, int index) {
        return classData(copy, index, Integer.class);
    }

    private static <T> T classData(MethodHandles.Lookup copy, int index, Class<T> type) {
        try {
            return MethodHandles.classDataAt(copy, ConstantDescs.DEFAULT_NAME, type, index);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Rethrows what a loop threw, unchecked. */
    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException e) {
            throw e;
        }
        if (t instanceof Error e) {
            throw e;
        }
        throw new IllegalStateException(t);
    }
}
