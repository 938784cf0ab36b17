package dev.gradclip.demo;

import java.util.ArrayList;
import java.util.List;

/**
 * Parameter tensor shapes of two well-known models, as lists of (name, element count): the
 * gradients a training step clips. Used by the main job and the benchmarks.
 */
public final class ModelShapes {

    /** One parameter tensor. */
    public record Tensor(String name, int elements) {}

    private ModelShapes() {}

    /** The shape set named on the command line: {@code gpt2-small} or {@code resnet50}. */
    public static List<Tensor> named(String name) {
        return switch (name) {
            case "gpt2-small" -> gpt2Small();
            case "resnet50" -> resnet50();
            default -> throw new IllegalArgumentException("unknown shape set '" + name + "': use gpt2-small or resnet50");
        };
    }

    public static long totalElements(List<Tensor> tensors) {
        return tensors.stream().mapToLong(Tensor::elements).sum();
    }

    /** GPT-2 small (Hugging Face layout, lm_head tied to wte): 148 tensors, 124,439,808 floats. */
    public static List<Tensor> gpt2Small() {
        int d = 768;
        List<Tensor> tensors = new ArrayList<>();
        tensors.add(new Tensor("wte.weight", 50257 * d));
        tensors.add(new Tensor("wpe.weight", 1024 * d));
        for (int layer = 0; layer < 12; layer++) {
            String h = "h." + layer + ".";
            tensors.add(new Tensor(h + "ln_1.weight", d));
            tensors.add(new Tensor(h + "ln_1.bias", d));
            tensors.add(new Tensor(h + "attn.c_attn.weight", d * 3 * d));
            tensors.add(new Tensor(h + "attn.c_attn.bias", 3 * d));
            tensors.add(new Tensor(h + "attn.c_proj.weight", d * d));
            tensors.add(new Tensor(h + "attn.c_proj.bias", d));
            tensors.add(new Tensor(h + "ln_2.weight", d));
            tensors.add(new Tensor(h + "ln_2.bias", d));
            tensors.add(new Tensor(h + "mlp.c_fc.weight", d * 4 * d));
            tensors.add(new Tensor(h + "mlp.c_fc.bias", 4 * d));
            tensors.add(new Tensor(h + "mlp.c_proj.weight", 4 * d * d));
            tensors.add(new Tensor(h + "mlp.c_proj.bias", d));
        }
        tensors.add(new Tensor("ln_f.weight", d));
        tensors.add(new Tensor("ln_f.bias", d));
        return tensors;
    }

    /** ResNet-50 (torchvision layout): 161 tensors, 25,557,032 floats. */
    public static List<Tensor> resnet50() {
        List<Tensor> tensors = new ArrayList<>();
        tensors.add(new Tensor("conv1.weight", 64 * 3 * 7 * 7));
        batchNorm(tensors, "bn1", 64);
        int[] blocks = {3, 4, 6, 3};
        int inputs = 64;
        for (int stage = 0; stage < blocks.length; stage++) {
            int planes = 64 << stage;
            for (int block = 0; block < blocks[stage]; block++) {
                String b = "layer" + (stage + 1) + "." + block + ".";
                tensors.add(new Tensor(b + "conv1.weight", planes * inputs));
                batchNorm(tensors, b + "bn1", planes);
                tensors.add(new Tensor(b + "conv2.weight", planes * planes * 3 * 3));
                batchNorm(tensors, b + "bn2", planes);
                tensors.add(new Tensor(b + "conv3.weight", 4 * planes * planes));
                batchNorm(tensors, b + "bn3", 4 * planes);
                if (block == 0) {
                    tensors.add(new Tensor(b + "downsample.0.weight", 4 * planes * inputs));
                    batchNorm(tensors, b + "downsample.1", 4 * planes);
                }
                inputs = 4 * planes;
            }
        }
        tensors.add(new Tensor("fc.weight", 1000 * 2048));
        tensors.add(new Tensor("fc.bias", 1000));
        return tensors;
    }

    private static void batchNorm(List<Tensor> tensors, String name, int channels) {
        tensors.add(new Tensor(name + ".weight", channels));
        tensors.add(new Tensor(name + ".bias", channels));
    }

    /** The tensor the demos spike: the largest of the middle of the list, where a bad layer would be. */
    public static int spikeIndex(List<Tensor> tensors) {
        int spike = tensors.size() / 2;
        for (int i = tensors.size() / 2; i < tensors.size() * 3 / 4; i++) {
            if (tensors.get(i).elements() > tensors.get(spike).elements()) {
                spike = i;
            }
        }
        return spike;
    }

    /**
     * Tensor {@code t}'s demo gradient, float32: uniform in ±1e-4, or ±0.1 for the spiked tensor (1000x
     * the others). It depends only on {@code t}, so any process can make any tensor.
     */
    public static void fillGradient(java.lang.foreign.MemorySegment floats, int t, int spike) {
        java.util.SplittableRandom random = new java.util.SplittableRandom(20261122L + t);
        float scale = t == spike ? 1e-1f : 1e-4f;
        for (long i = 0, n = floats.byteSize() / Float.BYTES; i < n; i++) {
            floats.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, i, scale * (2 * (float) random.nextDouble() - 1));
        }
    }
}
