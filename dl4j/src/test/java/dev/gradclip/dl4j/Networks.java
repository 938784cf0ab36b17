package dev.gradclip.dl4j;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.deeplearning4j.nn.api.Model;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.graph.MergeVertex;
import org.deeplearning4j.nn.conf.layers.BatchNormalization;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.conf.layers.misc.FrozenLayer;
import org.deeplearning4j.nn.conf.layers.misc.FrozenLayerWithBackprop;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.deeplearning4j.nn.weights.WeightInit;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/** Small real networks with plain SGD, so that an update is the learning rate times the applied gradient. */
final class Networks {

    static final double LEARNING_RATE = 0.5;
    static final int FEATURES = 4;
    static final int CLASSES = 3;

    private Networks() {}

    private static NeuralNetConfiguration.Builder base(DataType type, boolean miniBatch) {
        return new NeuralNetConfiguration.Builder().seed(7).dataType(type).updater(new Sgd(LEARNING_RATE))
                .weightInit(WeightInit.XAVIER).miniBatch(miniBatch);
    }

    /** Dense, BatchNormalization, softmax output: parameters 0_W, 0_b, 1_gamma, 1_beta, 1_mean, 1_log10stdev, 2_W, 2_b. */
    static MultiLayerNetwork layers(DataType type, boolean miniBatch) {
        MultiLayerNetwork net = new MultiLayerNetwork(base(type, miniBatch).list()
                .layer(new DenseLayer.Builder().nIn(FEATURES).nOut(8).activation(Activation.TANH).build())
                .layer(new BatchNormalization.Builder().nOut(8).build())
                .layer(new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(8).nOut(CLASSES)
                        .activation(Activation.SOFTMAX).build())
                .build());
        net.init();
        return net;
    }

    /** A frozen dense layer (0), then as {@link #layers}: double precision. (DL4J's backprop stops at a FrozenLayer.) */
    static MultiLayerNetwork frozen(boolean withBackprop) {
        DenseLayer dense = new DenseLayer.Builder().nIn(FEATURES).nOut(8).activation(Activation.TANH).build();
        MultiLayerNetwork net = new MultiLayerNetwork(base(DataType.DOUBLE, true).list()
                .layer(withBackprop ? new FrozenLayerWithBackprop(dense) : new FrozenLayer(dense))
                .layer(new DenseLayer.Builder().nIn(8).nOut(8).activation(Activation.TANH).build())
                .layer(new BatchNormalization.Builder().nOut(8).build())
                .layer(new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(8).nOut(CLASSES)
                        .activation(Activation.SOFTMAX).build())
                .build());
        net.init();
        return net;
    }

    /** Two dense branches merged, BatchNormalization, output; vertex names with '_' in them. */
    static ComputationGraph graph(DataType type) {
        return graph(type, false);
    }

    /** The same graph, its branch "dense_b" frozen or not. */
    static ComputationGraph graph(DataType type, boolean frozenBranch) {
        DenseLayer branch = new DenseLayer.Builder().nIn(FEATURES).nOut(5).activation(Activation.RELU).build();
        ComputationGraph graph = new ComputationGraph(base(type, true).graphBuilder()
                .addInputs("in")
                .addLayer("dense_a", new DenseLayer.Builder().nIn(FEATURES).nOut(6).activation(Activation.TANH).build(), "in")
                .addLayer("dense_b", frozenBranch ? new FrozenLayer(branch) : branch, "in")
                .addVertex("merge", new MergeVertex(), "dense_a", "dense_b")
                .addLayer("batch_norm", new BatchNormalization.Builder().nOut(11).build(), "merge")
                .addLayer("out", new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(11).nOut(CLASSES)
                        .activation(Activation.SOFTMAX).build(), "batch_norm")
                .setOutputs("out")
                .build());
        graph.init();
        return graph;
    }

    /** A batch of features spread wide enough that the gradient norm is well above 1. */
    static DataSet batch(DataType type, int size, long seed) {
        Random random = new Random(seed);
        double[][] x = new double[size][FEATURES];
        double[][] y = new double[size][CLASSES];
        for (int i = 0; i < size; i++) {
            for (int j = 0; j < FEATURES; j++) {
                x[i][j] = 3 * random.nextGaussian();
            }
            y[i][random.nextInt(CLASSES)] = 1;
        }
        return new DataSet(Nd4j.create(x).castTo(type), Nd4j.create(y).castTo(type));
    }

    /** Every parameter by its DL4J name, copied to double. */
    static Map<String, INDArray> snapshot(Model net) {
        Map<String, INDArray> out = new LinkedHashMap<>();
        net.paramTable().forEach((name, value) -> out.put(name, value.castTo(DataType.DOUBLE).dup()));
        return out;
    }

    /** BatchNormalization's running statistics: updated by the layer itself, not gradients. */
    static boolean isStatistic(String name) {
        String param = name.substring(name.lastIndexOf('_') + 1);
        return param.equals("mean") || param.equals("var") || param.equals("log10stdev");
    }
}
