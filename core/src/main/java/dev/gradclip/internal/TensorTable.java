package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.RandomAccess;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * The tensors of one call as the passes see them: segments, types, names, and the layout of their
 * blocks. A tensor's blocks start at its first element, so a tensor's block sums do not depend on
 * the other tensors, the thread count or the way the set is sharded.
 *
 * <p>{@link dev.gradclip.Gradients} builds one, validated, and never changes it. The 0.1
 * {@code List<MemorySegment>} entry points reload a per-thread table on each call, allocation-free.
 */
public final class TensorTable {

    private MemorySegment[] segments;
    private DType[] types;
    /** Null for the 0.1 lists, whose tensors are named {@code grads[i]}. */
    private String[] names;
    private int size;
    /** {@code blockStart[i]} is the global number of tensor i's first block; {@code blockStart[size]} all blocks. */
    private long[] blockStart;
    /** Bytes before tensor i; {@code byteStart[size]} all bytes. */
    private long[] byteStart;
    /** One plan per worker count seen, so that Clippers of different thread counts never rebuild them. */
    private volatile Plan[] plans = NO_PLANS;
    private static final Plan[] NO_PLANS = {};
    /** The one-worker plan, {@code [0, blocks]}, kept current by {@link #layout()}: reloading allocates nothing. */
    private final long[] whole = new long[2];

    /** Chunk boundaries (global block numbers) for a worker count. */
    private record Plan(int workers, long[] bounds) {}

    private TensorTable(int capacity) {
        allocate(capacity);
    }

    private void allocate(int capacity) {
        segments = new MemorySegment[capacity];
        types = new DType[capacity];
        blockStart = new long[capacity + 1];
        byteStart = new long[capacity + 1];
    }

    /** A table over validated tensors; the arrays are copied. */
    public static TensorTable of(MemorySegment[] segments, DType[] types, String[] names) {
        TensorTable table = new TensorTable(segments.length);
        System.arraycopy(segments, 0, table.segments, 0, segments.length);
        System.arraycopy(types, 0, table.types, 0, types.length);
        table.names = names.clone();
        table.size = segments.length;
        table.layout();
        return table;
    }

    /** An empty, reloadable table for the 0.1 float32 lists. */
    public static TensorTable reusable() {
        return new TensorTable(0);
    }

    /**
     * Loads a 0.1 float32 list and checks it: the list is read once ({@code size()} and each
     * {@code get(i)} once, or one iteration), and every check and pass then works from that snapshot,
     * so a list changed by another thread during the call can neither slip an unchecked segment past
     * the checks nor have a segment scaled twice. A {@code RandomAccess} list is read by index,
     * allocation-free; another list (a {@code LinkedList}), and a {@code CopyOnWriteArrayList} (whose
     * iterator is a consistent snapshot), through one iterator. Throws, before any write, as
     * {@link SegmentChecks} says; {@link #release()} afterwards in any case.
     */
    public void load(List<MemorySegment> floats) {
        if (floats == null) {
            throw new NullPointerException("grads is null");
        }
        int n = floats.size();
        reserve(n, 0);
        int count = 0;
        if (floats instanceof RandomAccess && !(floats instanceof CopyOnWriteArrayList)) {
            for (; count < n; count++) {
                segments[count] = floats.get(count);
            }
        } else {
            for (MemorySegment segment : floats) {
                reserve(count + 1, count);
                segments[count++] = segment;
            }
        }
        size = count;
        for (int i = 0; i < count; i++) {
            SegmentChecks.checkShape(segments[i], DType.FLOAT32, i, SegmentChecks::name);
            types[i] = DType.FLOAT32;
        }
        checkAccess();
        Overlaps.requireDisjoint(segments, count, SegmentChecks::name);
        layout();
        plans = NO_PLANS;
    }

    /** Room for {@code n} tensors, keeping the first {@code kept} segments. */
    private void reserve(int n, int kept) {
        if (segments.length < n) {
            MemorySegment[] old = segments;
            allocate(Math.max(n, 2 * segments.length));
            System.arraycopy(old, 0, segments, 0, kept);
        }
    }

    /**
     * Drops the references to the last call's segments, so the per-thread table keeps no memory
     * alive, and a table grown past {@link Overlaps#RETAINED} tensors, so a thread keeps at most a
     * few MB for the next call.
     */
    public void release() {
        if (segments.length > Overlaps.RETAINED) {
            allocate(0);
        } else {
            Arrays.fill(segments, 0, size, null);
        }
        size = 0;
    }

    private void layout() {
        for (int i = 0; i < size; i++) {
            long elements = elements(i);
            blockStart[i + 1] = blockStart[i] + (elements + Kernels.BLOCK - 1) / Kernels.BLOCK;
            byteStart[i + 1] = byteStart[i] + segments[i].byteSize();
        }
        whole[1] = blockStart[size];
    }

    /** How many tensors the table can hold without growing: a reusable table keeps at most {@link Overlaps#RETAINED}. */
    public int capacity() {
        return segments.length;
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

    /** The tensor's name as given, or {@code grads[i]}. */
    public String name(int i) {
        return names == null ? SegmentChecks.name(i) : names[i];
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
        Plan[] more = java.util.Arrays.copyOf(known, known.length + 1); // copy on write: readers never lock
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
