package dev.gradclip.demo;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** The shape sets match the published parameter counts of the models. */
class ModelShapesTest {

    @Test
    void gpt2SmallHas148TensorsAnd124439808Floats() {
        assertEquals(148, ModelShapes.gpt2Small().size());
        assertEquals(124_439_808L, ModelShapes.totalElements(ModelShapes.gpt2Small()));
    }

    @Test
    void resnet50Has161TensorsAnd25557032Floats() {
        assertEquals(161, ModelShapes.resnet50().size());
        assertEquals(25_557_032L, ModelShapes.totalElements(ModelShapes.resnet50()));
    }

    @Test
    void unknownNamesAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> ModelShapes.named("gpt5"));
    }
}
