package dev.edgecnn.sample.core;

import java.nio.ByteBuffer;

/** The output side: raw output tensor -> float scores -> top-k, as edgecnn's Python does it. */
public final class Postprocess {
    private Postprocess() {
    }

    /** {@code (q - zeroPoint) * scale} in float: preprocess.dequantize. */
    public static float dequantize(int q, float scale, int zeroPoint) {
        return ((float) q - (float) zeroPoint) * scale;
    }

    /**
     * Reads the output tensor (from position 0, in the buffer's byte order) as float scores:
     * float32 as is, int8/uint8 dequantized; softmax applied when the model outputs logits.
     */
    public static float[] scores(ByteBuffer buf, Spec.TensorInfo output, String outputKind) {
        int n = output.elements();
        float[] s = new float[n];
        buf.rewind();
        if (output.dtype.equals("float32")) {
            buf.asFloatBuffer().get(s);
        } else {
            boolean signed = output.dtype.equals("int8");
            for (int k = 0; k < n; k++) {
                byte b = buf.get(k);
                int q = signed ? b : b & 0xFF;
                s[k] = output.quantized() ? dequantize(q, output.scale, output.zeroPoint) : q;
            }
        }
        return "logits".equals(outputKind) ? softmax(s) : s;
    }

    /** Softmax in float, max subtracted first: preprocess.softmax (equal to it within float rounding). */
    public static float[] softmax(float[] z) {
        float max = Float.NEGATIVE_INFINITY;
        for (float v : z) {
            max = Math.max(max, v);
        }
        float[] e = new float[z.length];
        float sum = 0f;
        for (int k = 0; k < z.length; k++) {
            e[k] = (float) Math.exp(z[k] - max);
            sum += e[k];
        }
        for (int k = 0; k < z.length; k++) {
            e[k] = e[k] / sum;
        }
        return e;
    }

    /**
     * Indices of the k largest scores, largest first; ties go to the lower index and NaN sorts
     * last, as preprocess.top_k (numpy lexsort on (-score, index)).
     */
    public static int[] topK(float[] s, int k) {
        int n = Math.min(k, s.length);
        int[] out = new int[n];
        boolean[] taken = new boolean[s.length];
        for (int r = 0; r < n; r++) {
            int best = -1;
            for (int j = 0; j < s.length; j++) {
                if (taken[j]) {
                    continue;
                }
                // strict '>' keeps the lower index on ties; -0.0 == 0.0 here, as in numpy
                if (best < 0 || (Float.isNaN(s[best]) && !Float.isNaN(s[j])) || s[j] > s[best]) {
                    best = j;
                }
            }
            taken[best] = true;
            out[r] = best;
        }
        return out;
    }
}
