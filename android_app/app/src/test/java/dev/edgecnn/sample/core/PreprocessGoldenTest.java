package dev.edgecnn.sample.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/**
 * Java preprocessing gives the same bytes as edgecnn's Python (golden files written by
 * tools/make_golden.py): the fitted uint8 image, the float32 input tensor, and the int8 and uint8
 * quantized tensors, for a real 32x32 CIFAR image and larger, smaller, gray and non-square ones.
 */
public class PreprocessGoldenTest {

    @Test
    public void everyGoldenCaseMatchesPythonByteForByte() throws Exception {
        JSONArray cases = Golden.json("preprocess.json").getJSONArray("cases");
        assertTrue("expected at least 10 golden cases", cases.length() >= 10);
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            String name = c.getString("name");
            Spec.Preprocessing spec = Spec.Preprocessing.fromJson(c.getJSONObject("spec"));
            Image src = Golden.png(c.getString("image"));
            Image fitted = Preprocess.fitImage(src, spec);
            assertEquals(name + ": fitted width", spec.width, fitted.width);
            assertEquals(name + ": fitted height", spec.height, fitted.height);
            assertSameBytes(name + ": fitted uint8 image", Golden.bytes(c.getString("fitted")), fitted.data);

            Spec.TensorInfo f32 = tensor(spec, "float32", 0f, 0);
            ByteBuffer buf = ByteBuffer.allocate(f32.elements() * 4).order(ByteOrder.LITTLE_ENDIAN);
            Preprocess.fillInput(fitted, spec, f32, buf);
            assertSameBytes(name + ": float32 input tensor", Golden.bytes(c.getString("float32")), buf.array());

            for (String dtype : new String[] {"int8", "uint8"}) {
                JSONObject q = c.getJSONObject(dtype);
                Spec.TensorInfo t = tensor(spec, dtype, (float) q.getDouble("scale"), q.getInt("zero_point"));
                ByteBuffer qb = ByteBuffer.allocate(t.elements());
                Preprocess.fillInput(fitted, spec, t, qb);
                assertSameBytes(name + ": " + dtype + " input tensor", Golden.bytes(q.getString("file")), qb.array());
            }
        }
    }

    @Test
    public void bilinearResizeMatchesPythonByteForByte() throws Exception {
        JSONArray cases = Golden.json("preprocess.json").getJSONArray("resizes");
        assertTrue(cases.length() >= 3);
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            int h = c.getInt("height");
            int w = c.getInt("width");
            Image out = Preprocess.resizeBilinear(Golden.png(c.getString("image")), h, w);
            assertSameBytes(c.getString("image") + " resized to " + w + "x" + h, Golden.bytes(c.getString("expected")),
                    out.data);
        }
    }

    @Test
    public void quantizeRoundsHalfToEvenAndClips() throws Exception {
        JSONArray cases = Golden.json("quantize.json").getJSONArray("cases");
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            JSONArray want = c.getJSONArray("expected");
            float[] x = Spec.floats(c.getJSONArray("x"), "x");
            String dtype = c.getString("dtype");
            byte[] q = Preprocess.quantize(x, (float) c.getDouble("scale"), c.getInt("zero_point"), dtype);
            for (int k = 0; k < x.length; k++) {
                int got = dtype.equals("int8") ? q[k] : q[k] & 0xFF;
                assertEquals(dtype + " quantize(" + x[k] + ")", want.getInt(k), got);
            }
        }
    }

    @Test
    public void nonSquareInputThatCannotBeCroppedIsRefused() {
        // A 28x40 (h x w) model input from a tall 20x60 image: the short side rule leaves it 28 wide.
        Spec.Preprocessing spec = new Spec.Preprocessing(28, 40, 3, "NHWC", 1.0, 1f / 255f,
                new float[] {0f, 0f, 0f}, new float[] {1f, 1f, 1f});
        Image tall = new Image(20, 60, 3, new byte[20 * 60 * 3]);
        try {
            Preprocess.fitImage(tall, spec);
            fail("expected a refusal");
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("cannot be centre-cropped"));
        }
    }

    @Test
    public void resizeOfAConstantImageIsConstant() {
        byte[] px = new byte[7 * 5 * 3];
        java.util.Arrays.fill(px, (byte) 200);
        Image out = Preprocess.resizeBilinear(new Image(7, 5, 3, px), 13, 3);
        assertEquals(3, out.width);
        assertEquals(13, out.height);
        for (byte b : out.data) {
            assertEquals(200, b & 0xFF);
        }
    }

    private static Spec.TensorInfo tensor(Spec.Preprocessing p, String dtype, float scale, int zp) {
        return new Spec.TensorInfo("input", new int[] {1, p.height, p.width, p.channels}, dtype, scale, zp);
    }

    static void assertSameBytes(String what, byte[] want, byte[] got) {
        assertEquals(what + ": length", want.length, got.length);
        int diffs = 0;
        int first = -1;
        for (int k = 0; k < want.length; k++) {
            if (want[k] != got[k]) {
                diffs++;
                if (first < 0) {
                    first = k;
                }
            }
        }
        if (diffs > 0) {
            fail(what + ": " + diffs + " of " + want.length + " bytes differ from Python, first at byte " + first
                    + " (python " + (want[first] & 0xFF) + ", java " + (got[first] & 0xFF) + ")");
        }
    }
}
