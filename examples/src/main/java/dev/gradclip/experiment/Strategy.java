package dev.gradclip.experiment;

import dev.gradclip.Clipper;
import dev.gradclip.DType;
import dev.gradclip.GradClip;
import dev.gradclip.Gradients;
import dev.gradclip.NonFinite;
import dev.gradclip.Threshold;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * The ways the experiment treats the gradients between the backward pass and the update: none,
 * three with calibrated thresholds (value, per-tensor and global clipping), and three that adapt
 * (AutoClip, ZClip, AGC). Every strategy skips a step whose global norm is NaN or infinite, so they
 * differ only in what they do to finite gradients.
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
            return globalClip(model, Threshold.fixed(thresholds.maxNorm()));
        }
    },

    /** Global clipping at the 10th percentile of every norm seen so far: AutoClip with its paper's percentile. */
    AUTOCLIP("autoclip") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            return globalClip(model, Threshold.autoClip(10));
        }
    },

    /**
     * Global clipping at ZClip's bound on spikes: the reference's alpha 0.97, z-threshold 2.5 and
     * 25 warm-up steps, without its cap of 1 (this model's norms have another scale), so that only
     * the adaptive part acts.
     */
    ZCLIP("zclip") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            return globalClip(model, Threshold.zClip(0.97, 2.5, 25, Double.POSITIVE_INFINITY));
        }
    },

    /**
     * Adaptive gradient clipping per unit (each row of W_in and W_rec, and each vector) at
     * {@link #AGC_CLIP_FACTOR}, timm's eps.
     */
    AGC("agc") {
        @Override
        Clip bind(Rnn model, Thresholds thresholds) {
            Gradients grads = shaped(model, model.gradients());
            Gradients params = shaped(model, model.parameters());
            return () -> {
                double norm = GradClip.totalNorm(grads);
                if (Double.isFinite(norm)) {
                    GradClip.adaptiveGradClip(grads, params, AGC_CLIP_FACTOR, 1e-3);
                }
                return norm;
            };
        }
    };

    /**
     * AGC's clip factor, the largest ratio of a unit's gradient norm to its weight norm: timm's
     * default, untuned, as the other adaptive strategies keep their references' defaults (a ratio
     * needs no calibration to this model's scale). docs/adaptive.md shows what 0.1 and 1 did.
     */
    static final double AGC_CLIP_FACTOR = 0.01;

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

    /** A Clipper with this threshold over all the model's gradients; the bound is the one each step used. */
    private static Clip globalClip(Rnn model, Threshold threshold) {
        Gradients grads = model.namedGradients();
        Clipper clipper = Clipper.builder().threshold(threshold).nonFinite(NonFinite.SKIP).threads(1).build();
        return new Clip() {
            @Override
            public double apply() {
                return clipper.clip(grads);
            }

            @Override
            public double bound() {
                return clipper.maxNorm();
            }

            @Override
            public void close() {
                clipper.close();
            }
        };
    }

    /** The model's tensors with their shapes, as torch has them: W_in [hidden, 2], W_rec [hidden, hidden], b, W_out [1, hidden], b_out. */
    private static Gradients shaped(Rnn model, List<MemorySegment> tensors) {
        long[][] shapes = {{model.hidden, AdditionProblem.INPUTS}, {model.hidden, model.hidden}, {model.hidden},
                {1, model.hidden}, {1}};
        Gradients.Builder builder = Gradients.builder();
        for (int k = 0; k < tensors.size(); k++) {
            builder.add(Rnn.TENSOR_NAMES.get(k), tensors.get(k), DType.FLOAT32, shapes[k]);
        }
        return builder.build();
    }

    /** One step's gradient treatment, bound to a model's gradients. */
    @FunctionalInterface
    interface Clip extends AutoCloseable {
        /**
         * Clips the gradients in place and returns their global L2 norm before clipping; when that
         * norm is not finite the caller skips the update.
         */
        double apply();

        /** The global-norm bound the last step clipped to; NaN for a strategy without one. */
        default double bound() {
            return Double.NaN;
        }

        @Override
        default void close() {}
    }
}
