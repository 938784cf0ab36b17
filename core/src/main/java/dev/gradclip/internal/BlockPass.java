package dev.gradclip.internal;

import dev.gradclip.DType;
import java.lang.foreign.MemorySegment;

/**
 * What one pass does with the blocks of a chunk, as the {@link Scheduler} walks them: chunk
 * {@code worker} is visited tensor by tensor, each tensor's share of the chunk block by block. The
 * worker index tells a pass which of its per-worker accumulators to use; a pass that keeps none
 * needs only {@link #block}.
 */
interface BlockPass {

    /** Before the first block of chunk {@code worker}, which may be empty. */
    default void beginChunk(int worker) {}

    /** Before the first block of tensor {@code tensor} in the chunk. */
    default void beginTensor(int worker, int tensor) {}

    /** Elements {@code from} to {@code from + count} of tensor {@code tensor}: one block. */
    void block(int worker, int tensor, DType type, MemorySegment segment, long from, int count);

    /**
     * After the tensor's last block in the chunk. {@code startsHere}: its first block is in this
     * chunk; {@code endsHere}: its last block is. A tensor that several chunks share ends in each.
     */
    default void endTensor(int worker, int tensor, boolean startsHere, boolean endsHere) {}
}
