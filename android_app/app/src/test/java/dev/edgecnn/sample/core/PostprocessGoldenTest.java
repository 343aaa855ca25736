package dev.edgecnn.sample.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import org.junit.Test;

/** Java postprocessing of the same output tensors gives Python's top-5 (indices and scores). */
public class PostprocessGoldenTest {

    @Test
    public void topFiveMatchesPythonForEveryGoldenOutput() throws IOException {
        List<Object> cases = Json.list(Golden.json("postprocess.json"), "cases");
        assertTrue(cases.size() >= 5);
        for (Object c : cases) {
            String name = Json.str(c, "name");
            String dtype = Json.str(c, "dtype");
            List<Object> values = Json.list(c, "tensor");
            Spec.TensorInfo out = new Spec.TensorInfo("out", new int[] {1, values.size()}, dtype,
                    (float) Json.num(c, "scale"), Json.integer(c, "zero_point"));
            ByteBuffer buf = ByteBuffer.allocate(out.elements() * out.bytesPerElement()).order(ByteOrder.LITTLE_ENDIAN);
            for (Object v : values) {
                if (dtype.equals("float32")) {
                    buf.putFloat((float) (double) (Double) v);
                } else {
                    buf.put((byte) Json.toInt(v, "tensor"));
                }
            }
            float[] scores = Postprocess.scores(buf, out, Json.str(c, "output_kind"));
            int[] top = Postprocess.topK(scores, 5);

            List<Object> wantTop = Json.list(c, "top5");
            List<Object> wantScores = Json.list(c, "scores");
            int[] want = new int[wantTop.size()];
            for (int k = 0; k < want.length; k++) {
                want[k] = Json.toInt(wantTop.get(k), "top5");
            }
            assertArrayEquals(name + ": top-5 indices", want, top);
            boolean exact = (Boolean) ((java.util.Map<?, ?>) c).get("exact");
            for (int k = 0; k < want.length; k++) {
                float w = (float) (double) (Double) wantScores.get(k);
                if (exact) {
                    assertEquals(name + ": score bits of rank " + k, Float.floatToIntBits(w),
                            Float.floatToIntBits(scores[top[k]]));
                } else {
                    // softmax: Math.exp vs numpy's float32 exp and summation order differ by ulps
                    assertEquals(name + ": softmax score of rank " + k, w, scores[top[k]], 1e-6f);
                }
            }
        }
    }

    @Test
    public void topKBreaksTiesByLowerIndexAndPutsNaNLast() {
        float[] s = {0.2f, Float.NaN, 0.7f, 0.2f, 0.7f, 0.1f};
        assertArrayEquals(new int[] {2, 4, 0, 3, 5}, Postprocess.topK(s, 5));
        assertArrayEquals(new int[] {2, 4, 0, 3, 5, 1}, Postprocess.topK(s, 10));
    }

    @Test
    public void softmaxOfEqualLogitsIsUniform() {
        float[] p = Postprocess.softmax(new float[] {3f, 3f, 3f, 3f});
        for (float v : p) {
            assertEquals(0.25f, v, 0f);
        }
    }
}
