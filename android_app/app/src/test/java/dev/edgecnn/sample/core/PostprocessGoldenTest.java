package dev.edgecnn.sample.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.json.JSONArray;
import org.json.JSONObject;
import org.junit.Test;

/** Java postprocessing of the same output tensors gives Python's top-5 (indices and scores). */
public class PostprocessGoldenTest {

    @Test
    public void topFiveMatchesPythonForEveryGoldenOutput() throws Exception {
        JSONArray cases = Golden.json("postprocess.json").getJSONArray("cases");
        assertTrue(cases.length() >= 5);
        for (int i = 0; i < cases.length(); i++) {
            JSONObject c = cases.getJSONObject(i);
            String name = c.getString("name");
            String dtype = c.getString("dtype");
            JSONArray values = c.getJSONArray("tensor");
            Spec.TensorInfo out = new Spec.TensorInfo("out", new int[] {1, values.length()}, dtype,
                    (float) c.getDouble("scale"), c.getInt("zero_point"));
            ByteBuffer buf = ByteBuffer.allocate(out.elements() * out.bytesPerElement()).order(ByteOrder.LITTLE_ENDIAN);
            for (int k = 0; k < values.length(); k++) {
                if (dtype.equals("float32")) {
                    buf.putFloat((float) values.getDouble(k));
                } else {
                    buf.put((byte) values.getInt(k));
                }
            }
            float[] scores = Postprocess.scores(buf, out, c.getString("output_kind"));
            int[] top = Postprocess.topK(scores, 5);

            JSONArray wantTop = c.getJSONArray("top5");
            JSONArray wantScores = c.getJSONArray("scores");
            int[] want = new int[wantTop.length()];
            for (int k = 0; k < want.length; k++) {
                want[k] = wantTop.getInt(k);
            }
            assertArrayEquals(name + ": top-5 indices", want, top);
            boolean exact = c.getBoolean("exact");
            for (int k = 0; k < want.length; k++) {
                float w = (float) wantScores.getDouble(k);
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
