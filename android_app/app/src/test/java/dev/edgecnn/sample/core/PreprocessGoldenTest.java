package dev.edgecnn.sample.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * Java preprocessing gives the same bytes as edgecnn's Python (golden files written by
 * tools/make_golden.py): the fitted uint8 image, the float32 input tensor, and the int8 and uint8
 * quantized tensors, for a real 32x32 CIFAR image and larger, smaller, gray and non-square ones.
 */
public class PreprocessGoldenTest {

    @Test
    public void everyGoldenCaseMatchesPythonByteForByte() throws IOException {
        List<Object> cases = Json.list(Golden.json("preprocess.json"), "cases");
        assertTrue("expected at least 10 golden cases", cases.size() >= 10);
        for (Object c : cases) {
            String name = Json.str(c, "name");
            Spec.Preprocessing spec = Spec.Preprocessing.fromJson(Json.obj(c, "spec"));
            Image src = Golden.png(Json.str(c, "image"));
            Image fitted = Preprocess.fitImage(src, spec);
            assertEquals(name + ": fitted width", spec.width, fitted.width);
            assertEquals(name + ": fitted height", spec.height, fitted.height);
            assertSameBytes(name + ": fitted uint8 image", Golden.bytes(Json.str(c, "fitted")), fitted.data);

            Spec.TensorInfo f32 = tensor(spec, "float32", 0f, 0);
            ByteBuffer buf = ByteBuffer.allocate(f32.elements() * 4).order(ByteOrder.LITTLE_ENDIAN);
            Preprocess.fillInput(fitted, spec, f32, buf);
            assertSameBytes(name + ": float32 input tensor", Golden.bytes(Json.str(c, "float32")), buf.array());

            for (String dtype : new String[] {"int8", "uint8"}) {
                Map<String, Object> q = Json.obj(c, dtype);
                Spec.TensorInfo t = tensor(spec, dtype, (float) Json.num(q, "scale"), Json.integer(q, "zero_point"));
                ByteBuffer qb = ByteBuffer.allocate(t.elements());
                Preprocess.fillInput(fitted, spec, t, qb);
                assertSameBytes(name + ": " + dtype + " input tensor", Golden.bytes(Json.str(q, "file")), qb.array());
            }
        }
    }

    @Test
    public void bilinearResizeMatchesPythonByteForByte() throws IOException {
        List<Object> cases = Json.list(Golden.json("preprocess.json"), "resizes");
        assertTrue(cases.size() >= 3);
        for (Object c : cases) {
            int h = Json.integer(c, "height");
            int w = Json.integer(c, "width");
            Image out = Preprocess.resizeBilinear(Golden.png(Json.str(c, "image")), h, w);
            assertSameBytes(Json.str(c, "image") + " resized to " + w + "x" + h, Golden.bytes(Json.str(c, "expected")),
                    out.data);
        }
    }

    @Test
    public void quantizeRoundsHalfToEvenAndClips() throws IOException {
        for (Object c : Json.list(Golden.json("quantize.json"), "cases")) {
            List<Object> xs = Json.list(c, "x");
            List<Object> want = Json.list(c, "expected");
            float[] x = Spec.floats(xs, "x");
            String dtype = Json.str(c, "dtype");
            byte[] q = Preprocess.quantize(x, (float) Json.num(c, "scale"), Json.integer(c, "zero_point"), dtype);
            for (int k = 0; k < x.length; k++) {
                int got = dtype.equals("int8") ? q[k] : q[k] & 0xFF;
                assertEquals(dtype + " quantize(" + x[k] + ")", Json.toInt(want.get(k), "expected"), got);
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
