package dev.gradclip.examples;

import dev.gradclip.Clipper;
import dev.gradclip.GradReport;
import dev.gradclip.dl4j.GradClipListener;
import java.util.Locale;
import java.util.Random;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.nn.weights.WeightInit;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/**
 * A DL4J classifier trained with global-norm clipping: three interleaved spirals, a small MLP, plain
 * SGD, and a {@link GradClipListener} whose report is printed on a few steps. One batch has its
 * features blown up a hundredfold, as a corrupted record would: its gradient is clipped to
 * {@code maxNorm} and training carries on.
 *
 * <p>Arguments (all optional): {@code --steps=300 --max-norm=1.0 --batch=64}.
 */
public final class Dl4jExample {

    private static final int CLASSES = 3;

    private Dl4jExample() {}

    public static void main(String[] args) {
        int steps = intArg(args, "--steps=", 300);
        double maxNorm = doubleArg(args, "--max-norm=", 1.0);
        int batchSize = intArg(args, "--batch=", 64);
        int corrupted = steps / 2;

        MultiLayerNetwork net = new MultiLayerNetwork(new NeuralNetConfiguration.Builder()
                .seed(42)
                .updater(new Sgd(0.5))
                .weightInit(WeightInit.XAVIER)
                .list()
                .layer(new DenseLayer.Builder().nIn(2).nOut(32).activation(Activation.TANH).build())
                .layer(new DenseLayer.Builder().nIn(32).nOut(32).activation(Activation.TANH).build())
                .layer(new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(32).nOut(CLASSES)
                        .activation(Activation.SOFTMAX).build())
                .build());
        net.init();

        Random random = new Random(7);
        DataSet test = spirals(random, 600);
        try (Clipper clipper = Clipper.builder().maxNorm(maxNorm).build()) {
            GradClipListener clip = new GradClipListener(clipper);
            net.setListeners(clip);
            System.out.printf(Locale.ROOT, "%s%n%d parameters, batch %d, maxNorm %s; a corrupted batch at step %d%n",
                    clipper, net.numParams(), batchSize, maxNorm, corrupted);
            for (int step = 1; step <= steps; step++) {
                DataSet batch = spirals(random, batchSize);
                if (step == corrupted) {
                    batch.getFeatures().muli(100);
                }
                net.fit(batch);
                GradReport report = clip.lastReport();
                if (step <= 3 || step % 50 == 0 || step == corrupted) {
                    System.out.printf(Locale.ROOT, "step %3d  loss %7.4f  %s%n", step, net.score(), report);
                }
            }
        }
        System.out.printf(Locale.ROOT, "accuracy on %d held-out points: %.1f %%%n", test.numExamples(),
                100 * accuracy(net, test));
    }

    /** Points on three interleaved spiral arms with a little noise; the label is the arm. */
    static DataSet spirals(Random random, int n) {
        double[][] x = new double[n][2];
        double[][] y = new double[n][CLASSES];
        for (int i = 0; i < n; i++) {
            int arm = random.nextInt(CLASSES);
            double t = random.nextDouble();
            double angle = 4 * t + arm * 2 * Math.PI / CLASSES + 0.2 * random.nextGaussian();
            x[i][0] = t * Math.cos(angle);
            x[i][1] = t * Math.sin(angle);
            y[i][arm] = 1;
        }
        return new DataSet(Nd4j.create(x).castTo(Nd4j.defaultFloatingPointType()),
                Nd4j.create(y).castTo(Nd4j.defaultFloatingPointType()));
    }

    private static double accuracy(MultiLayerNetwork net, DataSet data) {
        INDArray predicted = net.output(data.getFeatures()).argMax(1);
        INDArray actual = data.getLabels().argMax(1);
        return predicted.eq(actual).castTo(org.nd4j.linalg.api.buffer.DataType.INT32).sumNumber().doubleValue()
                / data.numExamples();
    }

    private static int intArg(String[] args, String prefix, int fallback) {
        for (String arg : args) {
            if (arg.startsWith(prefix)) {
                return Integer.parseInt(arg.substring(prefix.length()));
            }
        }
        return fallback;
    }

    private static double doubleArg(String[] args, String prefix, double fallback) {
        for (String arg : args) {
            if (arg.startsWith(prefix)) {
                return Double.parseDouble(arg.substring(prefix.length()));
            }
        }
        return fallback;
    }
}
