package dev.edgecnn.sample.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/**
 * The model's own TFLite Metadata, read by the app as edgecnn's Python reads it: the golden models
 * of tools/make_golden.py (written by edgecnn's metadata writer) give the same labels, output kind
 * and derived preprocessing, and the same input tensor bytes for an image; a model without
 * metadata falls back to the bundle; a damaged model is an IllegalArgumentException, nothing else.
 */
public class ModelMetadataGoldenTest {

    private static JSONArray cases() throws Exception {
        return Golden.json("metadata.json").getJSONArray("cases");
    }

    @Test
    public void readsLabelsNormalizationAndPreprocessingAsPythonDoes() throws Exception {
        JSONArray cases = cases();
        assertEquals(3, cases.length());
        for (int k = 0; k < cases.length(); k++) {
            JSONObject c = cases.getJSONObject(k);
            String what = c.getString("model");
            ModelMetadata md = ModelMetadata.read(ByteBuffer.wrap(Golden.bytes(what)));
            assertNotNull(what, md);
            JSONArray labels = c.getJSONArray("labels");
            assertEquals(what, labels.length(), md.labels.size());
            for (int i = 0; i < labels.length(); i++) {
                assertEquals(what, labels.getString(i), md.labels.get(i));
            }
            assertEquals(what, c.getString("output_kind"), md.outputKind);
            assertEquals(c.getString("name"), md.name);
            assertEquals(c.getString("author"), md.author);
            assertEquals(c.getString("license"), md.license);
            JSONObject norm = c.getJSONObject("normalization");
            assertBits(what + " mean", Spec.floats(norm.getJSONArray("mean"), "mean"), md.mean);
            assertBits(what + " std", Spec.floats(norm.getJSONArray("std"), "std"), md.std);

            Spec.Preprocessing want = Spec.Preprocessing.fromJson(c.getJSONObject("preprocessing"));
            Spec.Preprocessing got = md.preprocessing(1.0);
            assertEquals(what, want.height, got.height);
            assertEquals(what, want.width, got.width);
            assertEquals(what, want.channels, got.channels);
            assertEquals(what, want.cropFraction, got.cropFraction, 0.0);
            assertEquals(what + " scale", Float.floatToIntBits(want.scale), Float.floatToIntBits(got.scale));
            assertBits(what + " spec mean", want.mean, got.mean);
            assertBits(what + " spec std", want.std, got.std);

            // The image the app would feed: the same bytes as Python's preprocessing of it.
            JSONObject in = c.getJSONObject("input");
            assertEquals(what, in.getString("dtype"), md.input.dtype);
            Image fitted = Preprocess.fitImage(Golden.png(c.getString("image")), got);
            ByteBuffer buf = ByteBuffer.allocate(md.input.elements() * md.input.bytesPerElement())
                    .order(ByteOrder.LITTLE_ENDIAN);
            Preprocess.fillInput(fitted, got, md.input, buf);
            assertArrayEquals(what, Golden.bytes(in.getString("file")), buf.array());
        }
    }

    @Test
    public void aModelWithoutMetadataFallsBackToTheBundle() throws Exception {
        String bare = Golden.json("metadata.json").getString("bare");
        ByteBuffer model = ByteBuffer.wrap(Golden.bytes(bare));
        assertNull(ModelMetadata.read(model));
        Spec spec = Spec.parse(SpecTest.spec(SpecTest.INT8_IN, SpecTest.INT8_OUT));
        String[] labels = {"a", "b", "c"};
        ModelMetadata.Effective e = ModelMetadata.effective(model, spec, labels);
        assertEquals("bundle spec", e.source);
        assertTrue(e.preprocessing == spec.preprocessing && e.labels == labels);

        ModelMetadata.Effective own = ModelMetadata.effective(
                ByteBuffer.wrap(Golden.bytes(cases().getJSONObject(0).getString("model"))), spec, labels);
        assertEquals("model metadata", own.source);
        assertArrayEquals(new String[] {"red", "green", "blue"}, own.labels);
        assertEquals(0.875, own.preprocessing.cropFraction, 0.0);  // from the model's edgecnn.json
    }

    @Test
    public void damagedModelsAreRefusedWithOneKindOfException() throws Exception {
        Random rng = new Random(7);
        int refused = 0;
        for (int k = 0; k < 3; k++) {
            byte[] good = Golden.bytes(cases().getJSONObject(k).getString("model"));
            List<byte[]> damaged = new ArrayList<>();
            for (int cut : new int[] {0, 3, 7, 8, 16, 64, good.length / 3, good.length / 2, good.length - 200,
                good.length - 23, good.length - 1}) {
                damaged.add(java.util.Arrays.copyOf(good, Math.max(0, cut)));
            }
            for (int n = 0; n < 300; n++) {
                byte[] d = good.clone();
                for (int j = 0; j < 1 + rng.nextInt(4); j++) {
                    d[rng.nextInt(d.length)] = (byte) rng.nextInt(256);
                }
                damaged.add(d);
            }
            for (byte[] d : damaged) {
                try {
                    ModelMetadata md = ModelMetadata.read(ByteBuffer.wrap(d));
                    if (md != null) {
                        md.preprocessing(1.0);
                    }
                } catch (IllegalArgumentException e) {
                    assertTrue(e.getMessage(), e.getMessage().startsWith("malformed TFLite metadata"));
                    refused++;
                }
            }
        }
        assertTrue("no damaged model was refused", refused > 30);
    }

    private static void assertBits(String what, float[] want, float[] got) {
        assertEquals(what, want.length, got.length);
        for (int i = 0; i < want.length; i++) {
            assertEquals(what, Float.floatToIntBits(want[i]), Float.floatToIntBits(got[i]));
        }
    }
}
