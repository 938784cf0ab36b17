package dev.gradclip;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The adaptive thresholds as their reference implementations compute them, written out plainly
 * and independently of the library: AutoClip (pseeth/autoclip {@code autoclip.py}) keeps a list and
 * sorts it in full on every step, then takes numpy's linear percentile; ZClip follows
 * bluorion-com/ZClip {@code zclip/zclip.py} line by line. Both skip non-finite norms, as
 * {@code Threshold} does (the references would append them).
 */
final class ThresholdReference {

    private ThresholdReference() {}

    /** One step: takes the norm, returns the bound. */
    interface Rule {
        double step(double norm);
    }

    /** numpy.percentile(values, p) with the default method, "linear", on a sorted copy. */
    static double percentile(List<Double> values, double p) {
        double[] a = values.stream().mapToDouble(Double::doubleValue).toArray();
        Arrays.sort(a);
        int n = a.length;
        double q = p / 100;
        double virtual = (n - 1) * q;
        double previous = Math.floor(virtual);
        double next = previous + 1;
        if (virtual >= n - 1) { // numpy's _get_indexes: both indexes become -1, the last element
            previous = -1;
            next = -1;
        }
        double gamma = virtual - previous;
        double lo = a[previous < 0 ? n - 1 : (int) previous];
        double hi = a[next < 0 ? n - 1 : (int) next];
        double diff = hi - lo; // numpy's _lerp
        double lerp = lo + diff * gamma;
        if (gamma >= 0.5) {
            lerp = hi - diff * (1 - gamma);
        }
        return lerp;
    }

    static Rule autoClip(double percentile) {
        List<Double> history = new ArrayList<>();
        return norm -> {
            if (!Double.isFinite(norm)) {
                return history.isEmpty() ? Double.POSITIVE_INFINITY : percentile(history, percentile);
            }
            history.add(norm);
            return percentile(history, percentile);
        };
    }

    /** zclip.py, mode "zscore", clip_option "adaptive_scaling", clip_factor 1, no skip on spikes, eps 1e-6. */
    static Rule zClip(double alpha, double zThresh, int warmupSteps, double maxGradNorm) {
        return new Rule() {
            final double eps = 1e-6;
            final List<Double> buffer = new ArrayList<>();
            boolean initialized;
            double mean;
            double var;

            void initializeEma() {
                double sum = 0;
                for (double x : buffer) {
                    sum += x;
                }
                mean = sum / buffer.size();
                double squares = 0;
                for (double x : buffer) {
                    squares += (x - mean) * (x - mean);
                }
                var = squares / buffer.size();
                initialized = true;
                buffer.clear();
            }

            void updateEma(double gradNorm) {
                mean = alpha * mean + (1 - alpha) * gradNorm;
                var = alpha * var + (1 - alpha) * ((gradNorm - mean) * (gradNorm - mean));
            }

            /** _compute_clip_val: the adaptive threshold on a spike, or null. */
            Double computeClipVal(double gradNorm) {
                double std = Math.pow(var, 0.5);
                double z = (gradNorm - mean) / (std + eps);
                if (z > zThresh) {
                    double eta = z / zThresh;
                    return mean + (zThresh * std) / eta;
                }
                return null;
            }

            @Override
            public double step(double totalNorm) {
                if (!Double.isFinite(totalNorm)) {
                    return maxGradNorm;
                }
                if (!initialized) {
                    buffer.add(totalNorm);
                    if (buffer.size() >= warmupSteps) {
                        initializeEma();
                    }
                    return maxGradNorm; // clip_grad_norm_(max_grad_norm) during the warm-up
                }
                Double clipVal = computeClipVal(totalNorm);
                updateEma(clipVal != null ? clipVal : totalNorm);
                // The step's bound: the capped spike threshold on a spike, max_grad_norm otherwise.
                return clipVal != null ? Math.min(clipVal, maxGradNorm) : maxGradNorm;
            }
        };
    }
}
