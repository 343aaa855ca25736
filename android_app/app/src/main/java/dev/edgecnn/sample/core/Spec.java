package dev.edgecnn.sample.core;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import org.json.JSONArray;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * The bundle spec, {@code assets/edgecnn.json}, written by {@code edgecnn bundle android}: the
 * model's preprocessing (edgecnn's PreprocessSpec) and its input/output tensors. Nothing about a
 * model is compiled into the app; everything comes from here and from the model's own tensors.
 *
 * <p>{@link #check()} refuses what the app cannot run, with the same rules as the Python side
 * ({@code edgecnn/bundle.py}): NHWC, 1 or 3 channels, batch 1, one float32/int8/uint8 input and one
 * float32/int8/uint8 output of shape [1, num_classes].
 *
 * <p>The JSON is read with {@code org.json}, which Android ships (the JVM tests use the same
 * implementation from Debian's {@code libandroid-json-java}). Its getters convert between types
 * ({@code getInt} truncates 1.5, {@code getString} accepts a number); the typed helpers at the end
 * refuse that instead, so a malformed spec fails here with the key named.
 */
public final class Spec {
    /** The one asset name the app knows; every other file name comes from inside it. */
    public static final String ASSET_NAME = "edgecnn.json";
    public static final int SCHEMA = 1;

    public final String model;
    public final String artifact;
    public final String modelFile;
    public final String labelsFile;
    public final Preprocessing preprocessing;
    public final TensorInfo input;
    public final TensorInfo output;
    /** "probabilities" (the model ends in softmax) or "logits" (the app applies softmax). */
    public final String outputKind;
    public final List<SampleImage> images;

    private Spec(String model, String artifact, String modelFile, String labelsFile, Preprocessing pp,
                 TensorInfo input, TensorInfo output, String outputKind, List<SampleImage> images) {
        this.model = model;
        this.artifact = artifact;
        this.modelFile = modelFile;
        this.labelsFile = labelsFile;
        this.preprocessing = pp;
        this.input = input;
        this.output = output;
        this.outputKind = outputKind;
        this.images = Collections.unmodifiableList(images);
    }

    /** Parses and checks the bundle spec; throws IllegalArgumentException naming the problem. */
    public static Spec parse(String json) {
        try {
            return parse(new JSONObject(json));
        } catch (JSONException e) {
            throw new IllegalArgumentException("invalid bundle spec: " + e.getMessage(), e);
        }
    }

    private static Spec parse(JSONObject root) throws JSONException {
        int schema = integer(root, "schema");
        if (schema != SCHEMA) {
            throw new IllegalArgumentException("bundle spec schema " + schema + " is not supported (expected "
                    + SCHEMA + "): re-run `edgecnn bundle android` with a matching edgecnn");
        }
        List<SampleImage> images = new ArrayList<>();
        if (root.has("images")) {
            JSONArray list = root.getJSONArray("images");
            for (int k = 0; k < list.length(); k++) {
                JSONObject o = list.getJSONObject(k);
                int idx = o.isNull("label_index") ? -1 : integer(o, "label_index");
                images.add(new SampleImage(str(o, "file"), str(o, "label"), idx));
            }
        }
        Spec spec = new Spec(str(root, "model"), str(root, "artifact"), str(root, "model_file"),
                str(root, "labels_file"), Preprocessing.fromJson(root.getJSONObject("preprocessing")),
                TensorInfo.fromJson(root.getJSONObject("input"), "input"),
                TensorInfo.fromJson(root.getJSONObject("output"), "output"),
                str(root, "output_kind"), images);
        spec.check();
        return spec;
    }

    /** Throws IllegalArgumentException if the app cannot run this model as described. */
    public void check() {
        Preprocessing p = preprocessing;
        if (!"NHWC".equals(p.layout)) {
            throw new IllegalArgumentException("layout " + p.layout + " is not supported: the app feeds NHWC");
        }
        checkInput(input, p);
        checkOutput(output);
        if (!"probabilities".equals(outputKind) && !"logits".equals(outputKind)) {
            throw new IllegalArgumentException("output_kind '" + outputKind + "' is not probabilities or logits");
        }
    }

    /** The input tensor must be [1, H, W, C] with the spec's H, W and C. */
    public static void checkInput(TensorInfo t, Preprocessing p) {
        int[] want = {1, p.height, p.width, p.channels};
        if (!Arrays.equals(t.shape, want)) {
            throw new IllegalArgumentException("input shape " + Arrays.toString(t.shape) + " does not match the "
                    + "preprocessing spec " + Arrays.toString(want) + " (NHWC, batch 1)");
        }
        checkDtype(t, "input");
    }

    /** The output tensor must be [1, num_classes]. */
    public static void checkOutput(TensorInfo t) {
        if (t.shape.length != 2 || t.shape[0] != 1 || t.shape[1] < 1) {
            throw new IllegalArgumentException("output shape " + Arrays.toString(t.shape)
                    + " is not [1, num_classes]");
        }
        checkDtype(t, "output");
    }

    private static void checkDtype(TensorInfo t, String what) {
        if (!t.dtype.equals("float32") && !t.dtype.equals("int8") && !t.dtype.equals("uint8")) {
            throw new IllegalArgumentException(what + " dtype " + t.dtype + " is not float32, int8 or uint8");
        }
        if (!t.dtype.equals("float32") && !(t.scale > 0f)) {
            throw new IllegalArgumentException(what + " is " + t.dtype + " but has no quantization scale");
        }
    }

    public int numClasses() {
        return output.shape[1];
    }

    /** edgecnn's PreprocessSpec (edgecnn/data/preprocess.py), as floats where Python uses float32. */
    public static final class Preprocessing {
        public final int height;
        public final int width;
        public final int channels;
        public final String layout;
        public final double cropFraction;
        public final float scale;
        public final float[] mean;
        public final float[] std;

        public Preprocessing(int height, int width, int channels, String layout, double cropFraction, float scale,
                             float[] mean, float[] std) {
            if (height < 1 || width < 1) {
                throw new IllegalArgumentException("input_size must be positive, got " + height + "x" + width);
            }
            if (channels != 1 && channels != 3) {
                throw new IllegalArgumentException("channels must be 1 or 3, got " + channels);
            }
            if (!(cropFraction > 0.0 && cropFraction <= 1.0)) {
                throw new IllegalArgumentException("crop_fraction must be in (0, 1], got " + cropFraction);
            }
            if (mean.length != channels || std.length != channels) {
                throw new IllegalArgumentException("mean and std need " + channels + " values each");
            }
            for (float s : std) {
                if (!(s > 0f)) {
                    throw new IllegalArgumentException("std values must be positive");
                }
            }
            this.height = height;
            this.width = width;
            this.channels = channels;
            this.layout = layout;
            this.cropFraction = cropFraction;
            this.scale = scale;
            this.mean = mean.clone();
            this.std = std.clone();
        }

        public static Preprocessing fromJson(JSONObject d) throws JSONException {
            JSONArray size = d.getJSONArray("input_size");
            if (size.length() != 2) {
                throw new IllegalArgumentException("input_size must be [height, width]");
            }
            String order = d.has("channel_order") ? str(d, "channel_order") : "RGB";
            if (!"RGB".equals(order)) {
                throw new IllegalArgumentException("channel_order " + order + " is not supported (RGB only)");
            }
            String resize = d.has("resize") ? str(d, "resize") : "bilinear";
            if (!"bilinear".equals(resize)) {
                throw new IllegalArgumentException("resize " + resize + " is not supported (bilinear only)");
            }
            return new Preprocessing(toInt(size.get(0), "input_size"), toInt(size.get(1), "input_size"),
                    integer(d, "channels"), d.has("layout") ? str(d, "layout") : "NHWC",
                    num(d, "crop_fraction"), (float) num(d, "scale"),
                    floats(d.getJSONArray("mean"), "mean"), floats(d.getJSONArray("std"), "std"));
        }
    }

    /** One tensor: shape, dtype ("float32", "int8", "uint8") and its quantization. */
    public static final class TensorInfo {
        public final String name;
        public final int[] shape;
        public final String dtype;
        public final float scale;
        public final int zeroPoint;

        public TensorInfo(String name, int[] shape, String dtype, float scale, int zeroPoint) {
            this.name = name;
            this.shape = shape.clone();
            this.dtype = dtype;
            this.scale = scale;
            this.zeroPoint = zeroPoint;
        }

        public static TensorInfo fromJson(JSONObject d, String what) throws JSONException {
            JSONArray s = d.getJSONArray("shape");
            int[] shape = new int[s.length()];
            for (int k = 0; k < shape.length; k++) {
                shape[k] = toInt(s.get(k), what + " shape");
            }
            return new TensorInfo(d.has("name") ? str(d, "name") : what, shape, str(d, "dtype"),
                    d.has("scale") ? (float) num(d, "scale") : 0f,
                    d.has("zero_point") ? integer(d, "zero_point") : 0);
        }

        /** Integer tensor with a scale: values are {@code (q - zeroPoint) * scale}. */
        public boolean quantized() {
            return !dtype.equals("float32") && scale > 0f;
        }

        public int elements() {
            int n = 1;
            for (int v : shape) {
                n *= v;
            }
            return n;
        }

        public int bytesPerElement() {
            return dtype.equals("float32") ? 4 : 1;
        }

        /** Same tensor contract (shape, dtype, quantization); names may differ between runtimes. */
        public boolean sameAs(TensorInfo o) {
            return Arrays.equals(shape, o.shape) && dtype.equals(o.dtype)
                    && (!quantized() || (Float.compare(scale, o.scale) == 0 && zeroPoint == o.zeroPoint));
        }

        @Override
        public String toString() {
            return dtype + Arrays.toString(shape) + (quantized() ? " scale=" + scale + " zp=" + zeroPoint : "");
        }
    }

    /** A test image bundled with its true label (label_index -1 when the model has no such class). */
    public static final class SampleImage {
        public final String file;
        public final String label;
        public final int labelIndex;

        public SampleImage(String file, String label, int labelIndex) {
            this.file = file;
            this.label = label;
            this.labelIndex = labelIndex;
        }
    }

    static float[] floats(JSONArray values, String what) throws JSONException {
        float[] out = new float[values.length()];
        for (int k = 0; k < out.length; k++) {
            Object v = values.get(k);
            if (!(v instanceof Number)) {
                throw new IllegalArgumentException("'" + what + "' must hold numbers");
            }
            out[k] = (float) ((Number) v).doubleValue();  // np.float32(python_float): one rounding
        }
        return out;
    }

    // ---- strict typed access: org.json's getters convert, these name the key and refuse

    static String str(JSONObject o, String key) throws JSONException {
        Object v = o.get(key);
        if (!(v instanceof String)) {
            throw new IllegalArgumentException("'" + key + "' must be a string");
        }
        return (String) v;
    }

    static double num(JSONObject o, String key) throws JSONException {
        Object v = o.get(key);
        if (!(v instanceof Number)) {
            throw new IllegalArgumentException("'" + key + "' must be a number");
        }
        return ((Number) v).doubleValue();
    }

    static int integer(JSONObject o, String key) throws JSONException {
        return toInt(o.get(key), key);
    }

    static int toInt(Object v, String what) {
        double d = v instanceof Number ? ((Number) v).doubleValue() : Double.NaN;
        if (d != Math.rint(d) || Math.abs(d) > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("'" + what + "' must be an integer, got " + v);
        }
        return (int) d;
    }
}
