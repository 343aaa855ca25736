package dev.edgecnn.sample.core;

import java.nio.ByteBuffer;

/**
 * The Java port of edgecnn's preprocessing ({@code edgecnn/data/preprocess.py}); it must give the
 * same bytes, which the golden-vector tests check against files written by Python.
 *
 * <p>Every step uses float (IEEE binary32) arithmetic in the same order as numpy's float32 code:
 * Java never fuses a*b+c into an FMA, and numpy's elementwise ufuncs do not either, so the results
 * agree bit for bit. Rounding is half-even ({@link Math#rint}) where Python uses round()/np.rint
 * and half-up ({@code floor(v + 0.5f)}) where Python does that.
 */
public final class Preprocess {

    private Preprocess() {
    }

    /** Any 1/3/4-channel image -> the spec's channels, resized and centre-cropped to its input size. */
    public static Image fitImage(Image img, Spec.Preprocessing spec) {
        img = toChannels(img, spec.channels);
        int th = spec.height;
        int tw = spec.width;
        int h = img.height;
        int w = img.width;
        int shortSide = (int) Math.rint(Math.min(th, tw) / spec.cropFraction);
        if (Math.min(h, w) != shortSide) {
            int nh;
            int nw;
            if (h <= w) {
                nh = shortSide;
                nw = Math.max(tw, (int) Math.rint((double) w * shortSide / h));
            } else {
                nh = Math.max(th, (int) Math.rint((double) h * shortSide / w));
                nw = shortSide;
            }
            img = resizeBilinear(img, nh, nw);
        }
        if (img.height < th || img.width < tw) {
            // preprocess.py would slice with a negative offset here; refuse instead of guessing.
            throw new IllegalArgumentException("a " + img.width + "x" + img.height + " image cannot be centre-cropped"
                    + " to " + tw + "x" + th + " with crop_fraction " + spec.cropFraction);
        }
        return crop(img, (img.height - th) / 2, (img.width - tw) / 2, th, tw);
    }

    /** Drops alpha; gray -> RGB by repeating; RGB -> gray by ITU-R 601 luma. */
    static Image toChannels(Image img, int channels) {
        if (img.channels == 4) {
            img = dropAlpha(img);
        }
        if (img.channels == channels) {
            return img;
        }
        int n = img.width * img.height;
        byte[] out = new byte[n * channels];
        if (channels == 3) {
            for (int k = 0; k < n; k++) {
                out[3 * k] = out[3 * k + 1] = out[3 * k + 2] = img.data[k];
            }
        } else {
            for (int k = 0; k < n; k++) {
                out[k] = (byte) luma(img.data[3 * k] & 0xFF, img.data[3 * k + 1] & 0xFF, img.data[3 * k + 2] & 0xFF);
            }
        }
        return new Image(img.width, img.height, channels, out);
    }

    /** ITU-R 601 luma in exact integer arithmetic, as preprocess.fit_image computes it. */
    static int luma(int r, int g, int b) {
        return (299 * r + 587 * g + 114 * b + 500) / 1000;
    }

    private static Image dropAlpha(Image img) {
        int n = img.width * img.height;
        byte[] out = new byte[n * 3];
        for (int k = 0; k < n; k++) {
            System.arraycopy(img.data, 4 * k, out, 3 * k, 3);
        }
        return new Image(img.width, img.height, 3, out);
    }

    static Image crop(Image img, int top, int left, int h, int w) {
        int c = img.channels;
        byte[] out = new byte[h * w * c];
        for (int y = 0; y < h; y++) {
            System.arraycopy(img.data, ((top + y) * img.width + left) * c, out, y * w * c, w * c);
        }
        return new Image(w, h, c, out);
    }

    /** Bilinear, half-pixel centres, edge clamp, float math, rounded half-up: preprocess.resize_bilinear. */
    public static Image resizeBilinear(Image img, int outH, int outW) {
        if (img.height == outH && img.width == outW) {
            return new Image(outW, outH, img.channels, img.data.clone());
        }
        int c = img.channels;
        int[] y0 = new int[outH];
        int[] y1 = new int[outH];
        float[] fy = new float[outH];
        int[] x0 = new int[outW];
        int[] x1 = new int[outW];
        float[] fx = new float[outW];
        coords(outH, img.height, y0, y1, fy);
        coords(outW, img.width, x0, x1, fx);
        byte[] out = new byte[outH * outW * c];
        int o = 0;
        for (int y = 0; y < outH; y++) {
            for (int x = 0; x < outW; x++) {
                for (int ch = 0; ch < c; ch++) {
                    float a = img.get(y0[y], x0[x], ch);
                    float b = img.get(y0[y], x1[x], ch);
                    float d = img.get(y1[y], x0[x], ch);
                    float e = img.get(y1[y], x1[x], ch);
                    float top = a + (b - a) * fx[x];
                    float bot = d + (e - d) * fx[x];
                    float v = top + (bot - top) * fy[y];
                    out[o++] = (byte) clampByte((float) Math.floor(v + 0.5f));
                }
            }
        }
        return new Image(outW, outH, c, out);
    }

    private static void coords(int nOut, int nIn, int[] i0, int[] i1, float[] frac) {
        float s = (float) nIn / (float) nOut;
        for (int k = 0; k < nOut; k++) {
            float x = ((float) k + 0.5f) * s - 0.5f;
            x = Math.min(Math.max(x, 0f), (float) (nIn - 1));
            int f = (int) Math.floor(x);
            i0[k] = f;
            i1[k] = Math.min(f + 1, nIn - 1);
            frac[k] = x - (float) f;
        }
    }

    private static int clampByte(float v) {
        return v < 0f ? 0 : v > 255f ? 255 : (int) v;
    }

    /** {@code (u8 * scale - mean) / std} per channel, in float: preprocess.normalize. */
    public static float[] normalize(Image fitted, Spec.Preprocessing spec) {
        if (fitted.channels != spec.channels || fitted.height != spec.height || fitted.width != spec.width) {
            throw new IllegalArgumentException("normalize expects a fitted " + spec.width + "x" + spec.height + "x"
                    + spec.channels + " image");
        }
        int c = spec.channels;
        float[] out = new float[fitted.data.length];
        for (int k = 0; k < out.length; k++) {
            int ch = k % c;
            float x = (float) (fitted.data[k] & 0xFF) * spec.scale;
            out[k] = (x - spec.mean[ch]) / spec.std[ch];
        }
        return out;
    }

    /** {@code clip(rint(x / scale) + zeroPoint)} to int8 or uint8 (returned as raw bytes): preprocess.quantize. */
    public static byte[] quantize(float[] x, float scale, int zeroPoint, String dtype) {
        int lo;
        int hi;
        if (dtype.equals("int8")) {
            lo = -128;
            hi = 127;
        } else if (dtype.equals("uint8")) {
            lo = 0;
            hi = 255;
        } else {
            throw new IllegalArgumentException("quantize to int8 or uint8, not " + dtype);
        }
        float zp = (float) zeroPoint;
        byte[] out = new byte[x.length];
        for (int k = 0; k < x.length; k++) {
            float q = (float) Math.rint(x[k] / scale) + zp;
            out[k] = (byte) (q < lo ? lo : q > hi ? hi : (int) q);
        }
        return out;
    }

    /**
     * Writes the model input for a fitted image into {@code buf} (position 0, the caller's byte
     * order): float32 values, or bytes quantized with the input tensor's scale and zero point.
     */
    public static void fillInput(Image fitted, Spec.Preprocessing spec, Spec.TensorInfo input, ByteBuffer buf) {
        float[] x = normalize(fitted, spec);
        if (x.length != input.elements()) {
            throw new IllegalArgumentException("input tensor " + input + " does not take " + x.length + " values");
        }
        buf.rewind();
        if (input.dtype.equals("float32")) {
            buf.asFloatBuffer().put(x);
        } else {
            buf.put(quantize(x, input.scale, input.zeroPoint, input.dtype));
        }
        buf.rewind();
    }
}
