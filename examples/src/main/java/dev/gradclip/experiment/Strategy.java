package dev.gradclip.experiment;

import dev.gradclip.Clipper;
import dev.gradclip.GradClip;
import dev.gradclip.Gradients;
import dev.gradclip.NonFinite;
import java.util.ArrayList;
import java.util.List;

/**
 * The four ways the experiment treats the gradients between the backward pass and the update.
 * Every strategy skips a step whose global norm is NaN or infinite, so they differ only in what
 * they do to finite gradients.
 */
enum Strategy {

    /** Plain SGD. */
    NONE("none") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            Gradients grads = model.namedGradients();
            return () -> GradClip.totalNorm(grads);
        }
    },

    /** Every element clamped to [-clipValue, clipValue], as torch's clip_grad_value_: bends the direction. */
    VALUE("value") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            Gradients grads = model.namedGradients();
            return () -> {
                double norm = GradClip.totalNorm(grads);
                if (Double.isFinite(norm)) {
                    GradClip.clipGradValue(grads, thresholds.clipValue());
                }
                return norm;
            };
        }
    },

    /**
     * Each tensor clipped to maxNorm on its own, the bug of seed 001: the same Clipper as
     * {@link #GLOBAL}, called once per tensor, which bends the direction across tensors.
     */
    PER_TENSOR("per-tensor") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            Gradients grads = model.namedGradients();
            List<Gradients> tensors = new ArrayList<>();
            for (int k = 0; k < grads.size(); k++) {
                tensors.add(Gradients.builder().add(grads.name(k), grads.segment(k), grads.dtype(k)).build());
            }
            Clipper clipper = clipper(thresholds);
            return new Clip() {
                @Override
                public double apply() {
                    double norm = GradClip.totalNorm(grads);
                    if (Double.isFinite(norm)) {
                        for (Gradients tensor : tensors) {
                            clipper.clip(tensor);
                        }
                    }
                    return norm;
                }

                @Override
                public void close() {
                    clipper.close();
                }
            };
        }
    },

    /** One norm over all tensors, one common coefficient: keeps the direction. */
    GLOBAL("global") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            Gradients grads = model.namedGradients();
            Clipper clipper = clipper(thresholds);
            return new Clip() {
                @Override
                public double apply() {
                    return clipper.clip(grads);
                }

                @Override
                public void close() {
                    clipper.close();
                }
            };
        }
    };

    private final String label;

    Strategy(String label) {
        this.label = label;
    }

    /** The name used in tables, CSV files and plots. */
    String label() {
        return label;
    }

    /** This strategy's clip step for one model's gradients. */
    abstract Clip bind(Rnn model, Thresholds thresholds);

    /**
     * SKIP writes nothing when the norm is not finite (the loop then skips the step). One thread:
     * the runs are already spread over the cores, and 1,100 floats are far below any hand-off's cost.
     */
    private static Clipper clipper(Thresholds thresholds) {
        return Clipper.builder().maxNorm(thresholds.maxNorm()).nonFinite(NonFinite.SKIP).threads(1).build();
    }

    /** One step's gradient treatment, bound to a model's gradients. */
    @FunctionalInterface
    interface Clip extends AutoCloseable {
        /**
         * Clips the gradients in place and returns their global L2 norm before clipping; when that
         * norm is not finite the caller skips the update.
         */
        double apply();

        @Override
        default void close() {}
    }
}
