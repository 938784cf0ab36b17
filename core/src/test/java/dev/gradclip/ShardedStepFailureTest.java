package dev.gradclip;

import dev.gradclip.testing.ShardedGrads;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.LongRange;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A sharded step that one participant cannot do: every participant throws at that same step (the
 * failing one its own error, the others an {@link IllegalStateException}), nothing is written on any
 * participant, and the next step runs in lockstep with the unsplit norm. Each participant runs a
 * sequence of steps on its own thread with one Clipper, catching what a step throws and going on, as a
 * training loop that logs and continues would.
 */
class ShardedStepFailureTest {

    private static final double MAX_NORM = 1.0;
    private static final double[] NORM_TYPES = {1, 2, Double.POSITIVE_INFINITY};
    private static final int[] SIZES = {0, 1, 5, 33, 4097};
    private static final DType[] TYPES = DType.values();

    /** What is wrong with one participant's call, and what that participant must throw. */
    enum Fault {
        READ_ONLY(IllegalArgumentException.class),
        CLOSED_ARENA(IllegalStateException.class),
        WRONG_THREAD(WrongThreadException.class),
        REPORT_FOR_OTHER_GRADS_OF_THE_SAME_SIZE(IllegalArgumentException.class),
        REPORT_FOR_ANOTHER_SIZE(IllegalArgumentException.class),
        NULL_GRADS(NullPointerException.class),
        NULL_REPORT(NullPointerException.class);

        final Class<? extends RuntimeException> thrown;

        Fault(Class<? extends RuntimeException> thrown) {
            this.thrown = thrown;
        }
    }

    /** One participant's call in one step: its arguments, the bytes it starts from, what it must throw. */
    private record Call(Gradients grads, GradReport report, List<MemorySegment> segments, List<byte[]> before,
                        Fault fault) {}

    /** One step over every participant: the calls, and for a step without fault the unsplit clip's norm and bytes. */
    private record Step(List<Call> calls, long normBits, List<List<byte[]>> clipped, boolean faulty) {}

    /** A participant's outcome of one step: the norm's bits, or what it threw. */
    private record Outcome(long normBits, RuntimeException error) {}

    /** Tensors for one participant in one step: 1 to 3, mixed dtypes and sizes, at the given scale; the first of 33 elements if {@code nonEmpty}. */
    private static List<ShardedGrads.Tensor> tensors(SplittableRandom random, String prefix, double scale, boolean nonEmpty) {
        List<ShardedGrads.Tensor> tensors = new ArrayList<>();
        int count = 1 + random.nextInt(3);
        for (int t = 0; t < count; t++) {
            DType type = TYPES[random.nextInt(TYPES.length)];
            int n = t == 0 && nonEmpty ? 33 : SIZES[random.nextInt(SIZES.length)];
            MemorySegment bytes = MemorySegment.ofArray(new byte[n * type.byteSize()]);
            for (int i = 0; i < n; i++) {
                ShardedGrads.set(bytes, type, i, scale * random.nextGaussian());
            }
            tensors.add(new ShardedGrads.Tensor(prefix + "." + t, type, bytes.toArray(ValueLayout.JAVA_BYTE)));
        }
        return tensors;
    }

    private static Gradients gradients(List<ShardedGrads.Tensor> tensors, List<MemorySegment> segments) {
        Gradients.Builder builder = Gradients.builder();
        for (int k = 0; k < tensors.size(); k++) {
            builder.add(tensors.get(k).name(), segments.get(k), tensors.get(k).type());
        }
        return builder.build();
    }

    private static List<MemorySegment> copies(Arena arena, List<ShardedGrads.Tensor> tensors) {
        List<MemorySegment> segments = new ArrayList<>();
        for (ShardedGrads.Tensor tensor : tensors) {
            byte[] bytes = tensor.bytes();
            MemorySegment segment = arena.allocate(Math.max(1, bytes.length), 8).asSlice(0, bytes.length);
            segment.copyFrom(MemorySegment.ofArray(bytes));
            segments.add(segment);
        }
        return segments;
    }

    private static List<byte[]> bytesOf(List<MemorySegment> segments) {
        List<byte[]> bytes = new ArrayList<>();
        for (MemorySegment segment : segments) {
            bytes.add(segment.toArray(ValueLayout.JAVA_BYTE));
        }
        return bytes;
    }

    /**
     * One step: each participant's tensors, with {@code faults[p]} (or null) applied to participant p.
     * {@code clips} scales the tensors so that the global norm is above {@code MAX_NORM}, else far below.
     * The unsplit clip of all the tensors gives the expected norm and bytes.
     */
    private static Step step(SplittableRandom random, Arena shared, Arena confined, int step, Fault[] faults,
                             boolean readOnlyBystander, boolean clips, double normType) {
        int participants = faults.length;
        double scale = clips ? 10 : 1e-6; // far above MAX_NORM, or far below it for every norm type
        List<List<ShardedGrads.Tensor>> tensors = new ArrayList<>();
        for (int p = 0; p < participants; p++) {
            tensors.add(tensors(random, "s" + step + ".p" + p, scale, faults[p] == Fault.READ_ONLY));
        }
        List<ShardedGrads.Tensor> all = new ArrayList<>();
        tensors.forEach(all::addAll);
        List<MemorySegment> whole = copies(shared, all);
        long normBits;
        try (Clipper clipper = Clipper.builder().maxNorm(MAX_NORM).normType(normType).build()) {
            normBits = Double.doubleToRawLongBits(clipper.clip(gradients(all, whole)));
        }
        double norm = Double.longBitsToDouble(normBits);
        boolean readOnlyFault = Arrays.asList(faults).contains(Fault.READ_ONLY);
        assertTrue(clips ? !readOnlyFault || norm > 2 * MAX_NORM : norm < 0.5 * MAX_NORM, "step " + step + ": norm " + norm);
        boolean faulty = false;
        List<Call> calls = new ArrayList<>();
        List<List<byte[]>> clipped = new ArrayList<>();
        int offset = 0;
        for (int p = 0; p < participants; p++) {
            List<ShardedGrads.Tensor> mine = tensors.get(p);
            clipped.add(bytesOf(whole.subList(offset, offset + mine.size())));
            offset += mine.size();
            Fault fault = faults[p];
            faulty |= fault != null;
            Arena arena = fault == Fault.WRONG_THREAD ? confined : shared;
            List<MemorySegment> segments = copies(arena, mine);
            List<byte[]> before = bytesOf(segments);
            if (fault == Fault.CLOSED_ARENA) {
                Arena closing = Arena.ofShared();
                segments = copies(closing, mine);
                closing.close();
            } else if (fault == Fault.READ_ONLY || (readOnlyBystander && p == participants - 1)) {
                segments.replaceAll(MemorySegment::asReadOnly);
            }
            Gradients grads = gradients(mine, segments);
            GradReport report = new GradReport(grads);
            if (fault == Fault.REPORT_FOR_OTHER_GRADS_OF_THE_SAME_SIZE) {
                report = new GradReport(gradients(mine, copies(shared, mine)));
            } else if (fault == Fault.REPORT_FOR_ANOTHER_SIZE) {
                List<ShardedGrads.Tensor> more = new ArrayList<>(mine);
                more.add(new ShardedGrads.Tensor("extra", DType.FLOAT32, new byte[4]));
                report = new GradReport(gradients(more, copies(shared, more)));
            }
            calls.add(new Call(fault == Fault.NULL_GRADS ? null : grads, fault == Fault.NULL_REPORT ? null : report,
                    segments, before, fault));
        }
        return new Step(calls, normBits, clipped, faulty);
    }

    /** Runs every participant through every step on its own thread, each with its own Clipper over {@code hooks.get(p)}. */
    private static List<List<Outcome>> run(List<Step> steps, List<AllReduce> hooks, double normType) throws InterruptedException {
        int participants = hooks.size();
        List<Object> results = InProcessAllReduceTest.runAll(participants, p -> {
            List<Outcome> outcomes = new ArrayList<>();
            try (Clipper clipper = Clipper.builder().maxNorm(MAX_NORM).normType(normType).allReduce(hooks.get(p)).build()) {
                for (Step step : steps) {
                    Call call = step.calls().get(p);
                    try {
                        outcomes.add(new Outcome(Double.doubleToRawLongBits(clipper.clip(call.grads(), call.report())), null));
                    } catch (RuntimeException e) {
                        outcomes.add(new Outcome(0, e));
                    }
                }
            }
            return outcomes;
        });
        List<List<Outcome>> outcomes = new ArrayList<>();
        for (Object result : results) {
            if (!(result instanceof List<?> list)) {
                throw new AssertionError("a participant failed outside a step", (Throwable) result);
            }
            @SuppressWarnings("unchecked")
            List<Outcome> mine = (List<Outcome>) list;
            outcomes.add(mine);
        }
        return outcomes;
    }

    /** Every participant's outcome of every step against what the step allows. */
    private static void check(List<Step> steps, List<List<Outcome>> outcomes, boolean ranked) {
        for (int s = 0; s < steps.size(); s++) {
            Step step = steps.get(s);
            // A read-only shard fails the step only if the step gets to scale: not when another fault stops it first.
            boolean otherFaults = step.calls().stream().anyMatch(c -> c.fault() != null && c.fault() != Fault.READ_ONLY);
            int lowestFailing = -1;
            int highestFailing = -1;
            for (int p = step.calls().size() - 1; p >= 0; p--) {
                if (culprit(step.calls().get(p).fault(), otherFaults)) {
                    lowestFailing = p;
                    highestFailing = Math.max(highestFailing, p);
                }
            }
            for (int p = 0; p < step.calls().size(); p++) {
                Call call = step.calls().get(p);
                Outcome outcome = outcomes.get(p).get(s);
                String where = "step " + s + ", participant " + p + " (fault " + call.fault() + ")";
                if (!step.faulty()) {
                    assertNull(outcome.error(), where);
                    assertEquals(step.normBits(), outcome.normBits(), where + ": the norm must be the unsplit one");
                    for (int k = 0; k < call.segments().size(); k++) {
                        assertArrayEquals(step.clipped().get(p).get(k), call.segments().get(k).toArray(ValueLayout.JAVA_BYTE),
                                where + ", tensor " + k);
                    }
                    continue;
                }
                if (culprit(call.fault(), otherFaults)) {
                    assertInstanceOf(call.fault().thrown, outcome.error(), where);
                } else {
                    IllegalStateException e = assertInstanceOf(IllegalStateException.class, outcome.error(), where);
                    String message = e.getMessage();
                    if (ranked) {
                        assertTrue(message.contains("rank " + lowestFailing + " ") || message.contains("rank " + lowestFailing + ","),
                                where + ": " + message);
                        assertTrue(message.contains("rank " + highestFailing), where + ": " + message);
                    } else {
                        assertTrue(message.contains("a participant whose hook gives no rank"), where + ": " + message);
                    }
                    assertTrue(message.contains("nothing was written on any participant"), message);
                }
                if (call.report() != null) { // left as it was: fresh, so unfilled and all zeros
                    assertTrue(call.report().toString().contains("not filled"), where + ": the report was filled: " + call.report());
                    for (int i = 0; i < call.report().size(); i++) {
                        assertEquals(0.0, call.report().maxAbs(i), where + ": the report's tensor " + i + " was filled");
                    }
                }
                if (call.fault() != Fault.CLOSED_ARENA) {
                    for (int k = 0; k < call.segments().size(); k++) {
                        assertArrayEquals(call.before().get(k), call.segments().get(k).toArray(ValueLayout.JAVA_BYTE),
                                where + ": tensor " + k + " was written");
                    }
                }
            }
        }
    }

    private static boolean culprit(Fault fault, boolean otherFaults) {
        return fault != null && (fault != Fault.READ_ONLY || !otherFaults);
    }

    /** One all-reduce for {@code participants} threads: each participant's view with its rank, or the shared instance (no ranks). */
    private static List<AllReduce> hooks(int participants, boolean ranked) {
        InProcessAllReduce hook = new InProcessAllReduce(participants, Duration.ofSeconds(20));
        List<AllReduce> hooks = new ArrayList<>();
        for (int p = 0; p < participants; p++) {
            hooks.add(ranked ? hook.participant(p) : hook);
        }
        return hooks;
    }

    /** Step 0: one participant has the fault; step 1: nobody has. For every fault, every norm type and each participant. */
    @ParameterizedTest
    @EnumSource(Fault.class)
    void aFaultOnOneParticipantFailsEveryParticipantAtThatStepAndTheNextStepIsInLockstep(Fault fault) throws InterruptedException {
        for (double normType : NORM_TYPES) {
            for (int participants = 2; participants <= 3; participants++) {
                for (int failing = 0; failing < participants; failing++) {
                    SplittableRandom random = new SplittableRandom(31L * participants + failing);
                    try (Arena shared = Arena.ofShared(); Arena confined = Arena.ofConfined()) {
                        Fault[] faults = new Fault[participants];
                        faults[failing] = fault;
                        List<Step> steps = List.of(
                                step(random, shared, confined, 0, faults, false, true, normType),
                                step(random, shared, confined, 1, new Fault[participants], false, true, normType));
                        boolean ranked = failing != 1;
                        check(steps, run(steps, hooks(participants, ranked), normType), ranked);
                    }
                }
            }
        }
    }

    /** Participant 0 holds a read-only [30], participant 1 a writable [40]: both must throw, neither write. */
    @org.junit.jupiter.api.Test
    void aReadOnlyShardOnParticipantZeroLeavesParticipantOneUnscaled() throws InterruptedException {
        InProcessAllReduce hook = new InProcessAllReduce(2, Duration.ofSeconds(20));
        float[][] values = {{30}, {40}};
        List<Object> outcomes = InProcessAllReduceTest.runAll(2, p -> {
            MemorySegment segment = MemorySegment.ofArray(values[p]);
            Gradients grads = Gradients.of(DType.FLOAT32, List.of(p == 0 ? segment.asReadOnly() : segment));
            try (Clipper clipper = Clipper.builder().maxNorm(MAX_NORM).allReduce(hook.participant(p)).build()) {
                return clipper.clip(grads);
            }
        });
        IllegalArgumentException own = assertInstanceOf(IllegalArgumentException.class, outcomes.get(0));
        assertTrue(own.getMessage().contains("grads[0] is read-only but has to be scaled"), own.getMessage());
        IllegalStateException other = assertInstanceOf(IllegalStateException.class, outcomes.get(1));
        assertTrue(other.getMessage().contains("rank 0 holds a read-only tensor"), other.getMessage());
        assertEquals(30f, values[0][0]);
        assertEquals(40f, values[1][0]);
    }

    /**
     * The flags cost no garbage: a good sharded step (with a report, which scales) allocates nothing
     * after warm-up. The least of three windows, so that a one-off JIT event in one does not count.
     */
    @org.junit.jupiter.api.Test
    void aGoodShardedStepAllocatesNothingAfterWarmUp() throws InterruptedException {
        com.sun.management.ThreadMXBean threads =
                (com.sun.management.ThreadMXBean) java.lang.management.ManagementFactory.getThreadMXBean();
        InProcessAllReduce hook = new InProcessAllReduce(2, Duration.ofSeconds(20));
        List<Object> outcomes = InProcessAllReduceTest.runAll(2, p -> {
            float[] values = new float[100];
            Arrays.fill(values, 3 + p);
            Gradients grads = Gradients.of(values);
            GradReport report = new GradReport(grads);
            try (Clipper clipper = Clipper.builder().maxNorm(MAX_NORM).threads(1).allReduce(hook.participant(p)).build()) {
                for (int i = 0; i < 20_000; i++) {
                    Arrays.fill(values, 3 + p);
                    clipper.clip(grads, report);
                }
                long least = Long.MAX_VALUE;
                for (int window = 0; window < 3; window++) {
                    long before = threads.getCurrentThreadAllocatedBytes();
                    for (int i = 0; i < 2_000; i++) {
                        Arrays.fill(values, 3 + p);
                        clipper.clip(grads, report);
                    }
                    least = Math.min(least, threads.getCurrentThreadAllocatedBytes() - before);
                }
                assertTrue(report.clipped());
                return least;
            }
        });
        for (Object bytes : outcomes) {
            // One object per step would be at least 32 KB here.
            assertTrue((Long) bytes < 1_000, "2000 sharded steps allocated " + bytes + " bytes");
        }
    }

    /**
     * Random sequences of steps: faults on any participants (several at once too), read-only shards on
     * steps that write nothing (fine), and good steps, which must give the unsplit norm and bytes.
     */
    @Property(tries = 25)
    void randomSequencesOfFaultyAndGoodStepsStayInLockstep(@ForAll @IntRange(min = 2, max = 4) int participants,
            @ForAll @IntRange(min = 0, max = 2) int normTypeIndex, @ForAll @LongRange(min = 0, max = 1_000_000) long seed)
            throws InterruptedException {
        double normType = NORM_TYPES[normTypeIndex];
        SplittableRandom random = new SplittableRandom(seed);
        Fault[] kinds = Fault.values();
        try (Arena shared = Arena.ofShared(); Arena confined = Arena.ofConfined()) {
            List<Step> steps = new ArrayList<>();
            for (int s = 0; s < 6; s++) {
                Fault[] faults = new Fault[participants];
                int kind = random.nextInt(4);
                if (kind == 0) {
                    int failing = random.nextInt(1, participants + 1);
                    for (int f = 0; f < failing; f++) {
                        faults[random.nextInt(participants)] = kinds[random.nextInt(kinds.length)];
                    }
                }
                boolean clips = kind != 1 || random.nextBoolean();
                boolean readOnlyBystander = kind == 1 && !clips; // read-only and nothing to write: fine
                if (Arrays.stream(faults).anyMatch(f -> f == Fault.READ_ONLY)) {
                    clips = true;
                }
                steps.add(step(random, shared, confined, s, faults, readOnlyBystander, clips, normType));
            }
            boolean ranked = seed % 3 != 0;
            check(steps, run(steps, hooks(participants, ranked), normType), ranked);
        }
    }
}
