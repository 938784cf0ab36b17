package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * The tensors of one set as the passes see them: segments, types, names, and the layout of their
 * blocks. A tensor's blocks start at its first element, so a tensor's block sums do not depend on
 * the other tensors, the thread count or the way the set is sharded.
 *
 * <p>Built once from validated tensors ({@link dev.gradclip.Gradients}, the units of adaptive
 * clipping) and never changed; only the chunk plans for the worker counts seen are added, copy on
 * write.
 */
public final class TensorTable {

    private final MemorySegment[] segments;
    private final DType[] types;
    private final String[] names;
    private final int size;
    /** {@code blockStart[i]} is the global number of tensor i's first block; {@code blockStart[size]} all blocks. */
    private final long[] blockStart;
    /** Bytes before tensor i; {@code byteStart[size]} all bytes. */
    private final long[] byteStart;
    /** One plan per worker count seen, so that Clippers of different thread counts never rebuild them. */
    private volatile Plan[] plans = NO_PLANS;
    private static final Plan[] NO_PLANS = {};
    /** The one-worker plan, {@code [0, blocks]}. */
    private final long[] whole;
    /**
     * Whether every segment is accessible from any thread (none is confined): a segment's access
     * never changes, so this is known once, and a call need not ask each segment again.
     */
    private final boolean anyThread;
    /** A thread that owns no arena, never started: a segment it may access is confined to no thread. */
    private static final Thread NO_OWNER = new Thread(() -> {}, "gradclip-access-probe");

    /** Chunk boundaries (global block numbers) for a worker count. */
    private record Plan(int workers, long[] bounds) {}

    private TensorTable(MemorySegment[] segments, DType[] types, String[] names) {
        this.segments = segments;
        this.types = types;
        this.names = names;
        this.size = segments.length;
        this.blockStart = new long[size + 1];
        this.byteStart = new long[size + 1];
        for (int i = 0; i < size; i++) {
            long elements = elements(i);
            blockStart[i + 1] = blockStart[i] + (elements + Kernels.BLOCK - 1) / Kernels.BLOCK;
            byteStart[i + 1] = byteStart[i] + segments[i].byteSize();
        }
        this.whole = new long[] {0, blockStart[size]};
        boolean shared = true;
        for (int i = 0; i < size && shared; i++) {
            shared = segments[i].isAccessibleBy(NO_OWNER);
        }
        this.anyThread = shared;
    }

    /** A table over validated tensors; the arrays are copied. */
    public static TensorTable of(MemorySegment[] segments, DType[] types, String[] names) {
        return new TensorTable(segments.clone(), types.clone(), names.clone());
    }

    public int size() {
        return size;
    }

    public MemorySegment segment(int i) {
        return segments[i];
    }

    public DType type(int i) {
        return types[i];
    }

    public long elements(int i) {
        return segments[i].byteSize() / types[i].byteSize();
    }

    public long blockStart(int i) {
        return blockStart[i];
    }

    public long blocks() {
        return blockStart[size];
    }

    public long bytes() {
        return byteStart[size];
    }

    /** The tensor's name as given. */
    public String name(int i) {
        return names[i];
    }

    /** The tensor for messages, by name and index: {@code "fc1.weight" (grads[3])}, or {@code grads[3]} if that is its name. */
    public String label(int i) {
        String name = name(i);
        String index = SegmentChecks.name(i);
        return name.equals(index) ? index : '"' + name + "\" (" + index + ')';
    }

    /** The tensor that holds global block {@code block}. */
    public int tensorOfBlock(long block) {
        int low = 0;
        int high = size - 1;
        while (low < high) { // the last tensor whose first block is <= block, skipping empty tensors
            int mid = (low + high + 1) >>> 1;
            if (blockStart[mid] <= block) {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        return low;
    }

    /**
     * Chunk boundaries for {@code workers}: worker w takes global blocks {@code bounds[w]} to
     * {@code bounds[w + 1]}, about an equal share of the bytes each, whole blocks only.
     */
    public long[] chunks(int workers) {
        if (workers == 1) {
            return whole;
        }
        Plan[] known = plans;
        for (Plan plan : known) {
            if (plan.workers == workers) {
                return plan.bounds;
            }
        }
        Plan[] more = Arrays.copyOf(known, known.length + 1); // copy on write: readers never lock
        more[known.length] = new Plan(workers, bounds(workers));
        plans = more;
        return more[known.length].bounds;
    }

    private long[] bounds(int workers) {
        long[] bounds = new long[workers + 1];
        if (blocks() == 0) {
            return bounds;
        }
        long total = bytes();
        int tensor = 0;
        for (int w = 1; w < workers; w++) {
            long target = Math.round((double) total * w / workers);
            while (tensor < size - 1 && byteStart[tensor + 1] <= target) {
                tensor++;
            }
            long blockBytes = (long) Kernels.BLOCK * types[tensor].byteSize();
            long within = Math.min((target - byteStart[tensor] + blockBytes - 1) / blockBytes,
                    blockStart[tensor + 1] - blockStart[tensor]);
            bounds[w] = Math.max(bounds[w - 1], blockStart[tensor] + Math.max(0, within));
        }
        bounds[workers] = blocks();
        return bounds;
    }

    /** Per-call checks of what can change between calls: live arenas and the calling thread's access. */
    public void checkAccess() {
        Thread current = Thread.currentThread();
        for (int i = 0; i < size; i++) {
            MemorySegment segment = segments[i];
            if (!segment.scope().isAlive()) {
                throw new IllegalStateException(label(i) + " cannot be read: its arena is closed");
            }
            if (!segment.isAccessibleBy(current)) {
                throw new WrongThreadException(label(i) + " is confined to another thread than " + current);
            }
        }
    }

    /** Whether worker threads may read and write every segment (none is confined to the caller). */
    public boolean accessibleBy(Thread worker) {
        if (anyThread) {
            return true;
        }
        for (int i = 0; i < size; i++) {
            if (!segments[i].isAccessibleBy(worker)) {
                return false;
            }
        }
        return true;
    }

    /** A read-only segment that holds elements cannot be scaled. */
    public void checkWritable(String what) {
        for (int i = 0; i < size; i++) {
            if (segments[i].isReadOnly() && segments[i].byteSize() > 0) {
                throw new IllegalArgumentException(label(i) + " is read-only but has to be " + what);
            }
        }
    }
}
