package dev.gradclip.experiment;

import static org.junit.jupiter.api.Assertions.assertTrue;

import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/** The bound stated on {@link Rnn#tanh}: at most 3.6 float32 ulp from the exact value, never beyond +-1. */
class RnnTanhTest {

    @Test
    void tanhIsWithin3point6UlpAndNeverBeyondOne() {
        int lanes = FloatVector.SPECIES_PREFERRED.length();
        float[] in = new float[lanes];
        float[] out = new float[lanes];
        double worst = 0;
        for (float start = -20f; start <= 20f; start += 1e-4f * lanes) {
            for (int s = 0; s < lanes; s++) {
                in[s] = start + 1e-4f * s;
            }
            Rnn.tanh(FloatVector.fromArray(FloatVector.SPECIES_PREFERRED, in, 0)).intoArray(out, 0);
            for (int s = 0; s < lanes; s++) {
                double exact = Math.tanh(in[s]);
                worst = Math.max(worst, Math.abs(out[s] - exact) / Math.ulp((float) exact));
                assertTrue(Math.abs(out[s]) <= 1f, "tanh(" + in[s] + ") = " + out[s]);
            }
        }
        assertTrue(worst <= 3.6, "worst error " + worst + " ulp");
    }
}
