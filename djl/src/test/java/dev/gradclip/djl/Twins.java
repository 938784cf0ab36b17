package dev.gradclip.djl;

import ai.djl.Device;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.core.Linear;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.EasyTrain;
import ai.djl.training.Trainer;
import ai.djl.training.dataset.Batch;
import ai.djl.training.listener.TrainingListener;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.Tracker;
import ai.djl.translate.Batchifier;
import ai.djl.util.Pair;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;

/**
 * Small real DJL training set-ups for the tests: a model, its trainer with plain SGD (no momentum,
 * no weight decay, so an update is {@code -learningRate * gradient}), deterministic weights and
 * batches, and the weights read out as doubles.
 */
final class Twins {

    static final int BATCH = 16;
    static final int INPUTS = 5;
    static final int OUTPUTS = 3;

    private Twins() {}

    /** Linear(8), tanh, Linear(3). */
    static Block mlp() {
        return new SequentialBlock()
                .add(Linear.builder().setUnits(8).build())
                .add(Activation::tanh)
                .add(Linear.builder().setUnits(OUTPUTS).build());
    }

    /** One Linear(3): its gradient has a closed form. */
    static Block linear() {
        return Linear.builder().setUnits(OUTPUTS).build();
    }

    /** A model of this block whose parameters are of this type (on {@link #trainer}'s initialization). */
    static Model model(Block block, DataType type) {
        Model model = Model.newInstance("twin", Device.cpu());
        model.setBlock(block);
        model.setDataType(type);
        return model;
    }

    /**
     * A trainer with SGD at this learning rate, the L2 loss (half the mean squared error) and these
     * listeners, whose model's weights are drawn from {@code Random(seed)} in parameter order.
     */
    static Trainer trainer(Model model, float learningRate, long seed, TrainingListener... listeners) {
        Random random = new Random(seed);
        DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.l2Loss())
                .optOptimizer(Optimizer.sgd().setLearningRateTracker(Tracker.fixed(learningRate)).build())
                .optDevices(new Device[] {Device.cpu()})
                .optInitializer((manager, shape, type) -> floats(manager, random, shape, 0.5f).toType(type, false),
                        parameter -> true)
                .addTrainingListeners(listeners);
        Trainer trainer = model.newTrainer(config);
        trainer.initialize(new Shape(BATCH, INPUTS));
        return trainer;
    }

    static NDArray floats(NDManager manager, Random random, Shape shape, float scale) {
        float[] values = new float[Math.toIntExact(shape.size())];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) (scale * random.nextGaussian());
        }
        return manager.create(values, shape);
    }

    /** Batches of inputs and targets, the same for every trainer that is handed the same seed. */
    static Supplier<Pair<float[], float[]>> batches(long seed, float targetScale) {
        Random random = new Random(seed);
        return () -> {
            float[] x = new float[BATCH * INPUTS];
            float[] y = new float[BATCH * OUTPUTS];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) random.nextGaussian();
            }
            for (int i = 0; i < y.length; i++) {
                y[i] = (float) (targetScale * random.nextGaussian());
            }
            return new Pair<>(x, y);
        };
    }

    /** One training batch: forward, backward and the listeners ({@code EasyTrain.trainBatch}), without the step. */
    static void backward(Trainer trainer, Pair<float[], float[]> data, DataType type) {
        NDManager manager = trainer.getManager().newSubManager();
        NDArray x = manager.create(data.getKey(), new Shape(BATCH, INPUTS)).toType(type, false);
        NDArray y = manager.create(data.getValue(), new Shape(BATCH, OUTPUTS)).toType(type, false);
        try (Batch batch = new Batch(manager, new NDList(x), new NDList(y), BATCH, Batchifier.STACK,
                Batchifier.STACK, 0, 1)) {
            EasyTrain.trainBatch(trainer, batch);
        }
    }

    /** The model's parameters in block order. */
    static List<Parameter> parameters(Model model) {
        List<Parameter> list = new ArrayList<>();
        for (Pair<String, Parameter> entry : model.getBlock().getParameters()) {
            list.add(entry.getValue());
        }
        return list;
    }

    /** Every parameter's values (or, with {@code gradients}, its gradient's), as doubles, concatenated in block order. */
    static double[] values(Model model, boolean trainedOnly, boolean gradients) {
        List<double[]> parts = new ArrayList<>();
        int n = 0;
        for (Parameter parameter : parameters(model)) {
            if (trainedOnly && !parameter.requiresGradient()) {
                continue;
            }
            NDArray array = parameter.getArray();
            double[] part;
            if (gradients) {
                try (NDArray gradient = array.getGradient(); NDArray wide = gradient.toType(DataType.FLOAT64, true)) {
                    part = wide.toDoubleArray();
                }
            } else {
                try (NDArray wide = array.toType(DataType.FLOAT64, true)) {
                    part = wide.toDoubleArray();
                }
            }
            parts.add(part);
            n += part.length;
        }
        double[] all = new double[n];
        int at = 0;
        for (double[] part : parts) {
            System.arraycopy(part, 0, all, at, part.length);
            at += part.length;
        }
        return all;
    }

    /** Sets every parameter of {@code to} to the values of {@code from}'s, in place (the arrays stay the same). */
    static void copyWeights(Model from, Model to) {
        List<Parameter> source = parameters(from);
        List<Parameter> target = parameters(to);
        for (int i = 0; i < source.size(); i++) {
            target.get(i).getArray().muli(0).addi(source.get(i).getArray());
        }
    }

    static double[] minus(double[] a, double[] b) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i] - b[i];
        }
        return d;
    }

    static double norm(double[] v) {
        double sum = 0;
        for (double x : v) {
            sum += x * x;
        }
        return Math.sqrt(sum);
    }

    /** {@code |a - k b| / |a|}: how far {@code a} is from the multiple {@code k} of {@code b}. */
    static double distanceFromMultiple(double[] a, double k, double[] b) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i] - k * b[i];
        }
        return norm(d) / norm(a);
    }
}
