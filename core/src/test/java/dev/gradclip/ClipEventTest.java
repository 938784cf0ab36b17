package dev.gradclip;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;
import jdk.jfr.EventType;
import jdk.jfr.FlightRecorder;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The {@code dev.gradclip.Clip} flight-recorder event: off unless a recording enables it, and then one
 * event per successful clip carrying what the clip did. (That a clip allocates nothing while the event is
 * off, even with a recording running, is {@code AllocationTest}'s: its JIT watch is a recording.)
 */
class ClipEventTest {

    @Test
    void theEventIsRegisteredAndDisabledByDefault() {
        try (Arena arena = Arena.ofConfined(); Clipper clipper = Clipper.builder().maxNorm(1).build()) {
            clipper.clip(Gradients.builder().add("g", arena.allocateFrom(ValueLayout.JAVA_FLOAT, 3f, 4f), DType.FLOAT32).build());
        }
        EventType type = FlightRecorder.getFlightRecorder().getEventTypes().stream()
                .filter(t -> t.getName().equals("dev.gradclip.Clip")).findFirst().orElseThrow();
        assertFalse(type.isEnabled());
        assertEquals("Gradient Clip", type.getLabel());
    }

    @Test
    void aRecordingThatEnablesItGetsOneEventPerClipWithItsFigures(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("clip.jfr");
        try (Arena arena = Arena.ofConfined(); Clipper clipper = Clipper.builder().maxNorm(1).threads(1).build();
                Recording recording = new Recording()) {
            MemorySegment a = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 3f, 4f);
            MemorySegment b = arena.allocateFrom(ValueLayout.JAVA_DOUBLE, 0.0, 0.0, 0.0);
            Gradients grads = Gradients.builder().add("a", a, DType.FLOAT32).add("b", b, DType.FLOAT64).build();
            recording.enable("dev.gradclip.Clip");
            recording.start();
            double clipped = clipper.clip(grads);            // norm 5: clips
            double unclipped = clipper.clip(grads);          // norm about 1: torch's rule still scales, by (1 - 1e-6)
            a.setAtIndex(ValueLayout.JAVA_FLOAT, 0, 0.03f);
            a.setAtIndex(ValueLayout.JAVA_FLOAT, 1, 0.04f);
            double small = clipper.clip(grads);              // norm 0.05: nothing written
            recording.stop();
            recording.dump(file);
            assertEquals(5.0, clipped);

            List<RecordedEvent> events = RecordingFile.readAllEvents(file).stream()
                    .filter(e -> e.getEventType().getName().equals("dev.gradclip.Clip")).toList();
            assertEquals(3, events.size(), events.toString());
            RecordedEvent first = events.get(0);
            assertEquals(2, first.getInt("tensors"));
            assertEquals(5L, first.getLong("elements"));
            assertEquals(2 * 4L + 3 * 8L, first.getLong("bytes"));
            assertEquals(1, first.getInt("threads"));
            assertEquals(5.0, first.getDouble("norm"));
            assertEquals(1.0, first.getDouble("maxNorm"));
            assertEquals(1.0 / (5.0 + 1e-6), first.getDouble("coefficient"));
            assertTrue(first.getBoolean("clipped"));
            assertFalse(first.getDuration().isNegative());
            assertEquals(unclipped, events.get(1).getDouble("norm"));
            RecordedEvent last = events.get(2);
            assertEquals(small, last.getDouble("norm"));
            assertEquals(1.0, last.getDouble("coefficient"));
            assertFalse(last.getBoolean("clipped"));
        }
    }
}
