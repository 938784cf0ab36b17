package dev.gradclip.dl4j;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.management.ThreadMXBean;
import dev.gradclip.Clipper;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.optimize.api.BaseTrainingListener;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.DataSet;

/**
 * The listener's own call allocates nothing once built and compiled, measured around that call alone
 * (the framework's step allocates plenty around it): first called directly, then inside real steps.
 */
class ListenerAllocationTest {

    private static final ThreadMXBean THREADS = (ThreadMXBean) ManagementFactory.getThreadMXBean();

    /** Wraps the listener and counts the bytes its onGradientCalculation allocates on the training thread. */
    private static final class Measured extends BaseTrainingListener {
        final GradClipListener inner;
        long bytes;
        int calls;

        Measured(GradClipListener inner) {
            this.inner = inner;
        }

        @Override
        public void onGradientCalculation(Model model) {
            long before = THREADS.getCurrentThreadAllocatedBytes();
            inner.onGradientCalculation(model);
            bytes += THREADS.getCurrentThreadAllocatedBytes() - before;
            calls++;
        }
    }

    private static long allocated(Runnable call, int calls) {
        long before = THREADS.getCurrentThreadAllocatedBytes();
        for (int i = 0; i < calls; i++) {
            call.run();
        }
        return THREADS.getCurrentThreadAllocatedBytes() - before;
    }

    /**
     * Warm-up: 3 real steps and 3,000 direct calls; then windows of 1,000 direct calls, and then of 20
     * real steps, until one window allocates nothing ({@link #untilClean}).
     */
    private static void assertAllocationFree(Model net, Consumer<DataSet> fit, Runnable setBatch) {
        try (Clipper clipper = Clipper.builder().maxNorm(1e-3).build(); Arena arena = Arena.ofConfined()) {
            GradClipListener listener = new GradClipListener(clipper);
            Measured measured = new Measured(listener);
            if (net instanceof MultiLayerNetwork m) {
                m.setListeners(measured);
            } else {
                ((ComputationGraph) net).setListeners(measured);
            }
            for (int step = 0; step < 3; step++) {
                fit.accept(Networks.batch(DataType.FLOAT, 16, step));
            }
            setBatch.run(); // a fresh gradient, before any update
            net.computeGradientAndScore(org.deeplearning4j.nn.workspace.LayerWorkspaceMgr.noWorkspaces());
            setBatch.run(); // batchSize() reads the input, which computing may have cleared
            MemorySegment gradient = Nd4jSegments.of(net.getGradientsViewArray());
            MemorySegment backup = arena.allocate(gradient.byteSize()).copyFrom(gradient);
            Runnable call = () -> {
                MemorySegment.copy(backup, 0, gradient, 0, gradient.byteSize()); // so that every call clips
                listener.onGradientCalculation(net);
            };
            allocated(call, 3000);
            long[] direct = untilClean(() -> allocated(call, 1000));
            assertEquals(0, direct[direct.length - 1], "bytes allocated in each window of 1,000 direct calls: "
                    + Arrays.toString(direct));
            assertTrue(listener.lastReport().clipped(), "the measured calls clipped");

            DataSet batch = Networks.batch(DataType.FLOAT, 16, 99);
            long[] steps = untilClean(() -> {
                measured.bytes = 0;
                measured.calls = 0;
                for (int step = 0; step < 20; step++) {
                    fit.accept(batch);
                }
                assertEquals(20, measured.calls);
                return measured.bytes;
            });
            assertEquals(0, steps[steps.length - 1], "bytes allocated by the listener in each window of 20 real steps: "
                    + Arrays.toString(steps));
        }
    }

    /**
     * Runs measurement windows until one allocates nothing, at most 40, and returns each window's
     * bytes. A listener that allocated per call would allocate in every window; the JIT's compilations
     * and deoptimizations (which re-create objects C2 had removed) come and go, and on a loaded machine
     * they can fall into any one window.
     */
    private static long[] untilClean(LongSupplier window) {
        long[] bytes = new long[40];
        for (int w = 0; w < bytes.length; w++) {
            bytes[w] = window.getAsLong();
            if (bytes[w] == 0) {
                return Arrays.copyOf(bytes, w + 1);
            }
        }
        return bytes;
    }

    @Test
    void multiLayerNetwork() {
        MultiLayerNetwork net = Networks.layers(DataType.FLOAT, true);
        DataSet batch = Networks.batch(DataType.FLOAT, 16, 50);
        assertAllocationFree(net, net::fit, () -> {
            net.setInput(batch.getFeatures());
            net.setLabels(batch.getLabels());
        });
    }

    @Test
    void computationGraph() {
        ComputationGraph net = Networks.graph(DataType.FLOAT);
        DataSet batch = Networks.batch(DataType.FLOAT, 16, 50);
        assertAllocationFree(net, net::fit, () -> {
            net.setInputs(batch.getFeatures());
            net.setLabels(batch.getLabels());
        });
    }

    /** The probe sees allocation where there is some: the first call builds the views. */
    @Test
    void theMeasurementSeesTheFirstCallsBuild() {
        MultiLayerNetwork net = Networks.layers(DataType.FLOAT, true);
        try (Clipper clipper = Clipper.builder().maxNorm(1).build()) {
            Measured measured = new Measured(new GradClipListener(clipper));
            net.setListeners(measured);
            net.fit(Networks.batch(DataType.FLOAT, 16, 1));
            assertEquals(1, measured.calls);
            assertTrue(measured.bytes > 0, "building allocated " + measured.bytes + " bytes");
        }
    }
}
