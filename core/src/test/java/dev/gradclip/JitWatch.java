package dev.gradclip;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import javax.management.JMException;
import javax.management.MBeanServer;
import javax.management.ObjectName;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedMethod;
import jdk.jfr.consumer.RecordingStream;

/**
 * Tells whether the JIT was idle over a stretch of time, from the JVM's own records: JFR's
 * {@code jdk.Compilation} events (every compilation, with its start and end) and
 * {@code jdk.Deoptimization} events, and the compile queue ({@code Compiler.queue}) before and after.
 *
 * <p>Why allocation tests need it: after warm-up a hot path's allocations are gone only because C2
 * removed them (escape analysis). While a compilation is pending the caller runs C1 or interpreted
 * code, which allocates what C2 would not, and a deoptimization re-creates the objects C2 had removed,
 * on the thread that deoptimizes. On a loaded two-core machine both go on long after a fixed number of
 * warm-up calls (a run here recompiled {@code ScalarKernels.scaleTail} after an uncommon trap about
 * thirty times within one measured window, four minutes into the JVM), so an allocation count is only
 * meaningful over a stretch in which the JIT did nothing.
 */
final class JitWatch implements AutoCloseable {

    /** JFR's timestamps and {@link Instant#now()} come from different clocks: widen each stretch by this. */
    private static final Duration MARGIN = Duration.ofMillis(100);

    private final RecordingStream stream = new RecordingStream();
    private final List<Instant[]> activity = new ArrayList<>(); // [start, end] of each compilation or deoptimization
    private long flushes; // guarded by this

    JitWatch() {
        stream.enable("jdk.Compilation").withThreshold(Duration.ZERO);
        stream.enable("jdk.Deoptimization").withoutStackTrace();
        stream.onEvent("jdk.Compilation", this::record);
        stream.onEvent("jdk.Deoptimization", this::record);
        stream.onFlush(this::flushed);
        stream.startAsync();
    }

    private synchronized void record(RecordedEvent event) {
        RecordedMethod method = event.hasField("method") ? event.getValue("method") : null;
        String type = method == null || method.getType() == null ? "" : method.getType().getName();
        if (type.startsWith("jdk.jfr.") || type.startsWith("jdk.internal.jfr.")) {
            return; // this watch's own parser warming up
        }
        activity.add(new Instant[] {event.getStartTime(), event.getEndTime()});
    }

    private synchronized void flushed() {
        flushes++;
        notifyAll();
    }

    /**
     * Whether the JIT compiled or deoptimized anything from {@code from} to {@code to}, or has
     * compilations queued or running now. Waits for the events up to {@code to} to arrive (two flushes).
     */
    synchronized boolean wasBusy(Instant from, Instant to) throws InterruptedException {
        long wanted = flushes + 2;
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (flushes < wanted) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new AssertionError("JFR delivered no events for 60 s");
            }
            wait(Math.max(1, left / 1_000_000));
        }
        Instant start = from.minus(MARGIN);
        Instant end = to.plus(MARGIN);
        boolean busy = false;
        for (Instant[] span : activity) {
            busy |= !span[1].isBefore(start) && !span[0].isAfter(end);
        }
        activity.removeIf(span -> span[1].isBefore(start));
        return busy || !compileQueueIdle();
    }

    /** Whether no compilation is running or queued ({@code jcmd Compiler.queue}, read in-process). */
    static boolean compileQueueIdle() {
        for (String line : compileQueue().lines().toList()) {
            String trimmed = line.strip();
            boolean header = trimmed.isEmpty() || trimmed.equals("Empty") || trimmed.endsWith(":");
            if (!header) {
                return false; // a running compilation ("C2 CompilerThread0 ...") or a queued one ("579  4  ...")
            }
        }
        return true;
    }

    static String compileQueue() {
        try {
            MBeanServer server = ManagementFactory.getPlatformMBeanServer();
            ObjectName commands = new ObjectName("com.sun.management:type=DiagnosticCommand");
            return (String) server.invoke(commands, "compilerQueue", new Object[] {new String[0]},
                    new String[] {String[].class.getName()});
        } catch (JMException e) {
            throw new IllegalStateException("cannot read the compile queue", e);
        }
    }

    @Override
    public void close() {
        stream.close();
    }
}
