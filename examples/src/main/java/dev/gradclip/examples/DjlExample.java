package dev.gradclip.examples;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.ArrayDataset;
import ai.djl.training.listener.TrainingListenerAdapter;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.translate.TranslateException;
import dev.gradclip.Clipper;
import dev.gradclip.GradReport;
import dev.gradclip.djl.GradClipListener;
import java.io.IOException;
import java.util.Locale;
import java.util.Random;

/**
 * A DJL model trained with gradclip's global-norm clip: a small MLP learns to tell three
 * interleaved spirals apart with plain SGD, and {@link GradClipListener} clips its gradients to
 * norm 0.5 on every batch, before {@code trainer.step()}. Each epoch prints the last clip's report
 * and how many of the epoch's batches were clipped.
 *
 * <p>Runs on DJL's PyTorch engine on the CPU; the JVM flags are
 * {@code --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Dai.djl.offline=true}.
 */
public final class DjlExample {

    private static final int POINTS_PER_CLASS = 200;
    private static final int CLASSES = 3;
    private static final int EPOCHS = 8;
    private static final double MAX_NORM = 0.5;

    private DjlExample() {}

    public static void main(String[] args) throws IOException, TranslateException {
        SequentialBlock mlp = new SequentialBlock()
                .add(Linear.builder().setUnits(64).build())
                .add(Activation::relu)
                .add(Linear.builder().setUnits(64).build())
                .add(Activation::relu)
                .add(Linear.builder().setUnits(CLASSES).build());

        Engine.getInstance().setRandomSeed(42); // the same weights and batches on every run
        try (Clipper clipper = Clipper.builder().maxNorm(MAX_NORM).build();
                Model model = Model.newInstance("spirals", Device.cpu())) {
            model.setBlock(mlp);
            GradClipListener clip = new GradClipListener(clipper);
            ClipCounter counter = new ClipCounter(clip);
            DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss())
                    .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(0.5f)).build())
                    .optDevices(new Device[] {Device.cpu()})
                    .addTrainingListeners(clip, counter); // the clip first: listeners run in order

            try (Trainer trainer = model.newTrainer(config)) {
                NDList spirals = spirals(trainer.getManager(), new Random(42));
                NDArray points = spirals.get(0);
                NDArray labels = spirals.get(1);
                ArrayDataset batches = new ArrayDataset.Builder()
                        .setData(points)
                        .optLabels(labels)
                        .setSampling(32, true)
                        .build();
                trainer.initialize(new Shape(1, 2));
                System.out.println("clipping with " + clipper);
                for (int epoch = 1; epoch <= EPOCHS; epoch++) {
                    counter.reset();
                    EasyTrain.fit(trainer, 1, batches, null);
                    float accuracy = accuracy(trainer, points, labels);
                    System.out.printf(Locale.ROOT, "epoch %d: accuracy %.3f, %d of %d batches clipped; last: %s%n",
                            epoch, accuracy, counter.clipped, counter.batches, clip.lastReport());
                }
            }
        }
    }

    /** Counts the batches the clip scaled; it reads {@link GradClipListener#lastReport()} after the clip ran. */
    private static final class ClipCounter extends TrainingListenerAdapter {
        private final GradClipListener clip;
        private int batches;
        private int clipped;

        ClipCounter(GradClipListener clip) {
            this.clip = clip;
        }

        void reset() {
            batches = 0;
            clipped = 0;
        }

        @Override
        public void onTrainingBatch(Trainer trainer, BatchData batchData) {
            GradReport report = clip.lastReport();
            batches++;
            if (report.clipped()) {
                clipped++;
            }
        }
    }

    /** The share of points the model puts in their own class. */
    private static float accuracy(Trainer trainer, NDArray points, NDArray labels) {
        try (NDManager scope = trainer.getManager().newSubManager()) {
            NDArray logits = trainer.evaluate(new NDList(points)).singletonOrThrow();
            logits.attach(scope);
            NDArray predicted = logits.argMax(1).toType(DataType.FLOAT32, false);
            return predicted.eq(labels).toType(DataType.FLOAT32, false).mean().getFloat();
        }
    }

    /** Three spirals of noisy 2-D points, one per class: the points (n, 2) and their labels (n). */
    private static NDList spirals(NDManager manager, Random random) {
        int n = POINTS_PER_CLASS * CLASSES;
        float[] points = new float[2 * n];
        float[] labels = new float[n];
        for (int c = 0; c < CLASSES; c++) {
            for (int i = 0; i < POINTS_PER_CLASS; i++) {
                int k = c * POINTS_PER_CLASS + i;
                double radius = (double) i / POINTS_PER_CLASS;
                double angle = 4 * radius + 2 * Math.PI * c / CLASSES + 0.2 * random.nextGaussian();
                points[2 * k] = (float) (radius * Math.cos(angle));
                points[2 * k + 1] = (float) (radius * Math.sin(angle));
                labels[k] = c;
            }
        }
        return new NDList(manager.create(points, new Shape(n, 2)), manager.create(labels, new Shape(n)));
    }
}
