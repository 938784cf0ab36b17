package dev.gradclip.internal;

import jdk.jfr.Category;
import jdk.jfr.DataAmount;
import jdk.jfr.Description;
import jdk.jfr.Enabled;
import jdk.jfr.EventType;
import jdk.jfr.Label;
import jdk.jfr.Name;
import jdk.jfr.StackTrace;

/**
 * One {@code Clipper.clip} call as a JDK Flight Recorder event, {@code dev.gradclip.Clip}: disabled
 * unless a recording enables it (e.g. {@code -XX:StartFlightRecording:+dev.gradclip.Clip#enabled=true}).
 * The clip creates the event only while it is enabled and a recording runs, so a clip allocates
 * nothing otherwise. Fields are filled only for a clip that succeeded.
 */
@Name("dev.gradclip.Clip")
@Label("Gradient Clip")
@Category({"gradclip"})
@Description("One global-norm clip: the norm over every tensor, and the coefficient it scaled them by")
@Enabled(false)
@StackTrace(false)
public final class ClipEvent extends jdk.jfr.Event {

    private static final EventType TYPE = EventType.getEventType(ClipEvent.class);

    @Label("Tensors")
    public int tensors;

    @Label("Elements")
    public long elements;

    @Label("Bytes")
    @DataAmount
    public long bytes;

    @Label("Threads")
    @Description("The threads that took part in the passes over the gradients")
    public int threads;

    @Label("Norm")
    @Description("The global norm before clipping (NaN or infinity when a gradient was not finite)")
    public double norm;

    @Label("Max Norm")
    @Description("The threshold this step used")
    public double maxNorm;

    @Label("Coefficient")
    @Description("What every element was multiplied by; 1 when nothing was written")
    public double coefficient;

    @Label("Clipped")
    @Description("Whether any element was written")
    public boolean clipped;

    /** A started event when a recording wants it, else null (nothing is allocated). */
    public static ClipEvent startIfEnabled() {
        if (!TYPE.isEnabled()) {
            return null;
        }
        ClipEvent event = new ClipEvent();
        event.begin();
        return event;
    }
}
