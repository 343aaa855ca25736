package dev.edgecnn.sample.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

/** The app accepts the tensors edgecnn bundles and refuses, with a message, what it cannot feed. */
public class SpecTest {
    static final String PRE = "{\"input_size\": [32, 32], \"channels\": 3, \"channel_order\": \"RGB\","
            + " \"layout\": \"NHWC\", \"crop_fraction\": 1.0, \"resize\": \"bilinear\","
            + " \"scale\": 0.00392156862745098, \"mean\": [0.4914, 0.4822, 0.4465],"
            + " \"std\": [0.247, 0.2435, 0.2616], \"dtype\": \"float32\"}";

    static String spec(String input, String output) {
        return "{\"schema\": 1, \"model\": \"quicknet\", \"artifact\": \"quicknet_int8.tflite\","
                + " \"model_file\": \"model.tflite\", \"labels_file\": \"labels.txt\", \"preprocessing\": " + PRE + ","
                + " \"input\": " + input + ", \"output\": " + output + ", \"output_kind\": \"probabilities\","
                + " \"images\": [{\"file\": \"images/00_cat.png\", \"label\": \"cat\", \"label_index\": 3},"
                + " {\"file\": \"images/01_x.png\", \"label\": \"x\", \"label_index\": null}]}";
    }

    static final String INT8_IN = "{\"name\": \"in\", \"shape\": [1, 32, 32, 3], \"dtype\": \"int8\","
            + " \"scale\": 0.0188, \"zero_point\": -6}";
    static final String INT8_OUT = "{\"name\": \"out\", \"shape\": [1, 10], \"dtype\": \"int8\","
            + " \"scale\": 0.00390625, \"zero_point\": -128}";

    @Test
    public void parsesABundleSpec() {
        Spec s = Spec.parse(spec(INT8_IN, INT8_OUT));
        assertEquals("model.tflite", s.modelFile);
        assertEquals(10, s.numClasses());
        assertEquals(32, s.preprocessing.height);
        assertEquals(0.0188f, s.input.scale, 0f);
        assertEquals(-6, s.input.zeroPoint);
        assertTrue(s.input.quantized());
        assertEquals(2, s.images.size());
        assertEquals(3, s.images.get(0).labelIndex);
        assertEquals(-1, s.images.get(1).labelIndex);
        assertEquals(Float.floatToIntBits(1f / 255f), Float.floatToIntBits(s.preprocessing.scale));
    }

    @Test
    public void refusesWhatTheAppCannotFeed() {
        String[][] bad = {
            {"{\"shape\": [1, 3, 32, 32], \"dtype\": \"float32\"}", INT8_OUT, "does not match"},
            {"{\"shape\": [2, 32, 32, 3], \"dtype\": \"float32\"}", INT8_OUT, "does not match"},
            {"{\"shape\": [1, 32, 32, 3], \"dtype\": \"float16\"}", INT8_OUT, "dtype float16"},
            {"{\"shape\": [1, 32, 32, 3], \"dtype\": \"int8\"}", INT8_OUT, "no quantization scale"},
            {INT8_IN, "{\"shape\": [1, 10, 1], \"dtype\": \"float32\"}", "not [1, num_classes]"},
            {INT8_IN, "{\"shape\": [10], \"dtype\": \"float32\"}", "not [1, num_classes]"},
        };
        for (String[] b : bad) {
            try {
                Spec.parse(spec(b[0], b[1]));
                fail("accepted " + b[0] + " -> " + b[1]);
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage(), e.getMessage().contains(b[2]));
            }
        }
    }

    @Test
    public void refusesAnotherSchemaAndLayout() {
        try {
            Spec.parse(spec(INT8_IN, INT8_OUT).replace("\"schema\": 1", "\"schema\": 2"));
            fail();
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("schema 2"));
        }
        try {
            Spec.parse(spec(INT8_IN, INT8_OUT).replace("\"NHWC\"", "\"NCHW\""));
            fail();
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("NCHW"));
        }
    }

    @Test
    public void refusesMalformedJsonAndWrongTypesNamingTheKey() {
        String good = spec(INT8_IN, INT8_OUT);
        String[][] bad = {
            {good.substring(0, good.length() - 1), "invalid bundle spec"},
            {good.replace("\"schema\": 1", "\"schema\": 1.5"), "'schema' must be an integer"},
            {good.replace("\"quicknet\"", "3"), "'model' must be a string"},
            {good.replace("\"zero_point\": -6", "\"zero_point\": \"-6\""), "'zero_point' must be an integer"},
            {good.replace("\"crop_fraction\": 1.0", "\"crop_fraction\": \"1\""), "'crop_fraction' must be a number"},
            {good.replace("[0.4914, 0.4822, 0.4465]", "[0.4914, \"x\", 0.4465]"), "'mean' must hold numbers"},
            {good.replace("\"output_kind\": \"probabilities\",", ""), "output_kind"},
        };
        for (String[] b : bad) {
            try {
                Spec.parse(b[0]);
                fail("accepted " + b[0]);
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage(), e.getMessage().contains(b[1]));
            }
        }
    }
}
