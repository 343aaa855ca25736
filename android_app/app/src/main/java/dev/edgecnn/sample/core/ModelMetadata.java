package dev.edgecnn.sample.core;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.json.JSONException;
import org.json.JSONObject;

/**
 * TFLite Metadata read from the model file itself (the port of edgecnn's
 * {@code contract/tflite_metadata.py} and {@code contract/model_metadata.py}): labels, the
 * normalization and the output kind that MediaPipe and the TFLite Task Library read, so that the
 * app runs a model that describes itself the way those clients do, and agrees with edgecnn.
 *
 * <p>Where things are: {@code Model.metadata} names a buffer "TFLITE_METADATA" holding a
 * {@code ModelMetadata} flatbuffer (metadata_schema.fbs, identifier M001); the labels file and
 * edgecnn's {@code edgecnn.json} (its crop fraction and output kind) are STORED entries of a ZIP
 * archive appended after the model flatbuffer.
 *
 * <p>The model is untrusted input: every offset is checked against the buffer before it is
 * followed, vectors and strings have caps, the walk follows the schema's fixed shape, and the
 * archive must be small and uncompressed. Anything malformed is an IllegalArgumentException
 * naming it. No flatbuffers or TensorFlow library: plain {@link ByteBuffer} reads.
 */
public final class ModelMetadata {
    static final String METADATA_NAME = "TFLITE_METADATA";
    static final String EDGECNN_FILE = "edgecnn.json";
    static final int MAX_METADATA_BYTES = 1 << 20;
    static final int MAX_VECTOR = 1 << 16;
    static final int MAX_STRING = 1 << 16;
    static final int MAX_ENTRIES = 64;
    static final int MAX_ASSOCIATED_BYTES = 16 << 20;

    public final String name;
    public final String description;
    public final String version;
    public final String author;
    public final String license;
    /** The labels file of the output tensor, or null when the metadata names none. */
    public final List<String> labels;
    /** NormalizationOptions of the input in pixel units, or null when there are none. */
    public final float[] mean;
    public final float[] std;
    /** "probabilities" or "logits". */
    public final String outputKind;
    /** The centre-crop fraction from edgecnn.json, or NaN when the file has none. */
    public final double cropFraction;
    public final Spec.TensorInfo input;
    public final Spec.TensorInfo output;

    private ModelMetadata(Map<String, String> text, List<String> labels, float[] mean, float[] std, String outputKind,
                          double cropFraction, Spec.TensorInfo input, Spec.TensorInfo output) {
        this.name = text.get("name");
        this.description = text.get("description");
        this.version = text.get("version");
        this.author = text.get("author");
        this.license = text.get("license");
        this.labels = labels == null ? null : Collections.unmodifiableList(labels);
        this.mean = mean;
        this.std = std;
        this.outputKind = outputKind;
        this.cropFraction = cropFraction;
        this.input = input;
        this.output = output;
    }

    /** The metadata of a .tflite model, or null when it carries none. */
    public static ModelMetadata read(ByteBuffer model) {
        ByteBuffer b = model.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        b.position(0);
        Table root = root(b, "TFL3");
        Spec.TensorInfo[] io = modelIo(root);
        Table entry = null;
        for (Table e : root.tables(6, 1024)) {
            if (METADATA_NAME.equals(e.string(0))) {
                if (entry != null) {
                    throw bad("two TFLITE_METADATA entries");
                }
                entry = e;
            }
        }
        if (entry == null) {
            return null;
        }
        Table buffer = root.tableAt(4, entry.uint(1), 1 << 24);
        int[] range = buffer.vector(0, 1, MAX_METADATA_BYTES);
        if (range == null || range[1] == 0) {
            return null;
        }
        ByteBuffer meta = slice(b, range[0], range[1]);
        return parse(root(meta, "M001"), associatedFiles(b), io[0], io[1]);
    }

    private static ModelMetadata parse(Table mm, Map<String, byte[]> files, Spec.TensorInfo in, Spec.TensorInfo out) {
        Map<String, String> text = new HashMap<>();
        String[] keys = {"name", "description", "version", "subgraphs", "author", "license"};
        for (int slot : new int[] {0, 1, 2, 4, 5}) {
            String v = mm.string(slot);
            text.put(keys[slot], v == null ? "" : v);
        }
        List<Table> subgraphs = mm.tables(3, 16);
        if (subgraphs.size() != 1) {
            throw bad("metadata of " + subgraphs.size() + " subgraphs");
        }
        List<Table> ins = subgraphs.get(0).tables(2, 16);
        List<Table> outs = subgraphs.get(0).tables(3, 16);
        if (ins.size() != 1 || outs.size() != 1) {
            throw bad("metadata of " + ins.size() + " inputs and " + outs.size() + " outputs");
        }
        float[][] norm = normalization(ins.get(0));
        Table tout = outs.get(0);
        List<String> labels = null;
        for (Table f : tout.tables(6, 64)) {
            if (f.ubyte(2) == 2 && labels == null) {  // AssociatedFileType.TENSOR_AXIS_LABELS
                byte[] data = files.get(f.string(0));
                if (data == null) {
                    throw bad("the labels file " + f.string(0) + " is named but not carried");
                }
                labels = labels(data);
            }
        }
        if (labels != null && labels.size() != out.elements()) {
            throw bad(labels.size() + " labels for " + out.elements() + " output scores");
        }
        String kind = null;
        double crop = Double.NaN;
        boolean declared = false;
        for (Table f : mm.tables(6, 64)) {
            declared |= EDGECNN_FILE.equals(f.string(0));
        }
        if (declared && files.containsKey(EDGECNN_FILE)) {
            try {
                JSONObject doc = new JSONObject(decode(files.get(EDGECNN_FILE)));
                if (doc.has("output_kind")) {
                    kind = Spec.str(doc, "output_kind");
                }
                if (doc.has("preprocessing")) {
                    crop = Spec.num(doc.getJSONObject("preprocessing"), "crop_fraction");
                }
            } catch (JSONException e) {
                throw bad(EDGECNN_FILE + ": " + e.getMessage());
            }
        }
        if (kind == null) {
            String outName = tout.string(0);
            kind = "probability".equals(outName) || "probabilities".equals(outName) || unitStats(tout)
                    ? "probabilities" : "logits";
        }
        if (!"probabilities".equals(kind) && !"logits".equals(kind)) {
            throw bad("output kind " + kind);
        }
        return new ModelMetadata(text, labels, norm == null ? null : norm[0], norm == null ? null : norm[1], kind,
                crop, in, out);
    }

    /**
     * The preprocessing the model takes, derived as edgecnn's Python does and as MediaPipe reads
     * the file: an integer input takes the pixels as they are ({@code (p * s - z * s) / 1} with the
     * tensor's scale s and zero point z); a float input {@code (p - mean) / std} in pixel units
     * (one value for every channel: scale 1/std, mean mean/std, std 1). Null when the file does not
     * say (a float input without NormalizationOptions). The crop fraction comes from edgecnn.json,
     * else {@code defaultCrop}.
     */
    public Spec.Preprocessing preprocessing(double defaultCrop) {
        int[] s = input.shape;
        if (s.length != 4 || s[0] != 1 || (s[3] != 1 && s[3] != 3)) {
            return null;
        }
        int c = s[3];
        double crop = Double.isNaN(cropFraction) ? defaultCrop : cropFraction;
        float scale;
        float[] m = new float[c];
        float[] d = new float[c];
        if (input.quantized() && (input.dtype.equals("uint8") || input.dtype.equals("int8"))) {
            scale = input.scale;
            for (int k = 0; k < c; k++) {
                m[k] = (float) ((double) input.zeroPoint * (double) input.scale);
                d[k] = 1f;
            }
        } else if (input.dtype.equals("float32") && mean != null) {
            if ((mean.length != 1 && mean.length != c) || (std.length != 1 && std.length != c)) {
                throw bad("NormalizationOptions of " + mean.length + "/" + std.length + " values for " + c
                        + " channels");
            }
            boolean global = allSame(mean) && allSame(std);
            scale = global ? (float) (1.0 / std[0]) : (float) (1.0 / 255.0);
            for (int k = 0; k < c; k++) {
                double mk = mean[mean.length == 1 ? 0 : k];
                double sk = std[std.length == 1 ? 0 : k];
                if (!(sk > 0) || Double.isInfinite(sk) || Double.isNaN(mk) || Double.isInfinite(mk)) {
                    throw bad("NormalizationOptions need finite values and std > 0");
                }
                m[k] = global ? (float) (mk / sk) : (float) (mk / 255.0);
                d[k] = global ? 1f : (float) (sk / 255.0);
            }
        } else {
            return null;
        }
        return new Spec.Preprocessing(s[1], s[2], c, "NHWC", crop, scale, m, d);
    }

    /** What the app runs with: the model's own labels and preprocessing where it says them, else the bundle's. */
    public static final class Effective {
        public final Spec.Preprocessing preprocessing;
        public final String[] labels;
        public final String outputKind;
        /** "model metadata" or "bundle spec". */
        public final String source;

        Effective(Spec.Preprocessing preprocessing, String[] labels, String outputKind, String source) {
            this.preprocessing = preprocessing;
            this.labels = labels;
            this.outputKind = outputKind;
            this.source = source;
        }
    }

    /** The labels and preprocessing to run {@code model} with: its metadata when present, else the bundle. */
    public static Effective effective(ByteBuffer model, Spec spec, String[] bundleLabels) {
        ModelMetadata md = read(model);
        if (md == null) {
            return new Effective(spec.preprocessing, bundleLabels, spec.outputKind, "bundle spec");
        }
        Spec.Preprocessing p = md.preprocessing(spec.preprocessing.cropFraction);
        String[] labels = md.labels == null ? bundleLabels : md.labels.toArray(new String[0]);
        return new Effective(p == null ? spec.preprocessing : p, labels, md.outputKind, "model metadata");
    }

    // ---- the model flatbuffer: subgraph 0's first input and output tensors

    private static Spec.TensorInfo[] modelIo(Table root) {
        List<Table> subgraphs = root.tables(2, 1024);
        if (subgraphs.isEmpty()) {
            throw bad("no subgraph");
        }
        Table sg = subgraphs.get(0);
        int[] ins = sg.ints(1, 1024);
        int[] outs = sg.ints(2, 1024);
        if (ins.length == 0 || outs.length == 0) {
            throw bad("no input or output tensor");
        }
        return new Spec.TensorInfo[] {tensor(sg.tableAt(0, ins[0], 1 << 24)), tensor(sg.tableAt(0, outs[0], 1 << 24))};
    }

    private static Spec.TensorInfo tensor(Table t) {
        String[] types = {"float32", "float16", "int32", "uint8", "int64", "string", "bool", "int16", "complex64",
            "int8"};
        int type = t.ubyte(1);
        Table q = t.table(4);
        float scale = 0f;
        int zp = 0;
        if (q != null) {
            float[] scales = q.floats(2, 1 << 16);
            long[] zps = q.longs(3, 1 << 16);
            scale = scales.length == 1 ? scales[0] : 0f;
            zp = zps.length == 1 ? (int) zps[0] : 0;
        }
        String name = t.string(3);
        return new Spec.TensorInfo(name == null ? "" : name, t.ints(0, 8), type < types.length ? types[type] : "other",
                scale, zp);
    }

    private static float[][] normalization(Table tin) {
        float[][] found = null;
        for (Table unit : tin.tables(4, 16)) {
            Table opt = unit.ubyte(0) == 1 ? unit.table(1) : null;  // ProcessUnitOptions.NormalizationOptions
            if (opt != null) {
                if (found != null) {
                    throw bad("two NormalizationOptions on one tensor");
                }
                found = new float[][] {opt.floats(0, 16), opt.floats(1, 16)};
            }
        }
        return found;
    }

    private static boolean unitStats(Table tensorMetadata) {
        Table stats = tensorMetadata.table(5);
        if (stats == null) {
            return false;
        }
        float[] max = stats.floats(0, 16);
        float[] min = stats.floats(1, 16);
        return max.length == 1 && min.length == 1 && max[0] == 1f && min[0] == 0f;
    }

    private static boolean allSame(float[] v) {
        for (float x : v) {
            if (Float.compare(x, v[0]) != 0) {
                return false;
            }
        }
        return true;
    }

    /** One label per line: a BOM, CR line ends and blank lines at the end allowed, no empty or repeated name. */
    static List<String> labels(byte[] data) {
        String text = decode(data);
        if (text.startsWith("\uFEFF")) {
            text = text.substring(1);
        }
        List<String> out = new ArrayList<>();
        for (String line : text.split("\r\n|\r|\n", -1)) {
            out.add(line.trim());
        }
        while (!out.isEmpty() && out.get(out.size() - 1).isEmpty()) {
            out.remove(out.size() - 1);
        }
        if (out.isEmpty() || out.contains("") || out.size() > 100_000) {
            throw bad("the labels file needs one non-empty label per line");
        }
        if (new java.util.HashSet<>(out).size() != out.size()) {
            throw bad("the labels file names a class twice");
        }
        return out;
    }

    // ---- the appended ZIP archive (STORED entries, offsets from the file start or the archive start)

    static Map<String, byte[]> associatedFiles(ByteBuffer b) {
        Map<String, byte[]> files = new HashMap<>();
        int n = b.limit();
        int eocd = -1;
        for (int p = n - 22; p >= Math.max(0, n - 22 - 65535); p--) {
            if (b.getInt(p) == 0x06054b50) {
                eocd = p;
                break;
            }
        }
        if (eocd < 0) {
            return files;
        }
        int entries = b.getShort(eocd + 10) & 0xFFFF;
        long cdSize = b.getInt(eocd + 12) & 0xFFFFFFFFL;
        long cdOffset = b.getInt(eocd + 16) & 0xFFFFFFFFL;
        long delta = eocd - cdSize - cdOffset;  // 0 when offsets count from the file start
        long p = cdOffset + delta;
        if (delta < 0 || (entries > 0 && (p + 4 > n || b.getInt((int) p) != 0x02014b50))) {
            return files;  // the signature bytes belong to the model, not to an archive (zipfile: BadZipFile)
        }
        if (entries > MAX_ENTRIES) {
            throw bad("an archive of " + entries + " associated files");
        }
        long total = 0;
        for (int k = 0; k < entries; k++) {
            need(b, p, 46);
            int at = (int) p;
            if (b.getInt(at) != 0x02014b50) {
                throw bad("a broken archive directory");
            }
            int method = b.getShort(at + 10) & 0xFFFF;
            long size = b.getInt(at + 20) & 0xFFFFFFFFL;
            long raw = b.getInt(at + 24) & 0xFFFFFFFFL;
            int nameLen = b.getShort(at + 28) & 0xFFFF;
            int extra = b.getShort(at + 30) & 0xFFFF;
            int comment = b.getShort(at + 32) & 0xFFFF;
            long local = (b.getInt(at + 42) & 0xFFFFFFFFL) + delta;
            need(b, p + 46, nameLen);
            String name = decode(bytes(b, at + 46, nameLen));
            if (method != 0 || size != raw) {
                throw bad("associated file " + name + " is compressed");
            }
            total += size;
            if (total > MAX_ASSOCIATED_BYTES) {
                throw bad("associated files over " + (MAX_ASSOCIATED_BYTES >> 20) + " MiB");
            }
            need(b, local, 30);
            if (b.getInt((int) local) != 0x04034b50) {
                throw bad("a broken archive entry");
            }
            long data = local + 30 + (b.getShort((int) local + 26) & 0xFFFF) + (b.getShort((int) local + 28) & 0xFFFF);
            need(b, data, size);
            files.put(name, bytes(b, (int) data, (int) size));
            p += 46L + nameLen + extra + comment;
        }
        return files;
    }

    // ---- a bounded flatbuffer reader

    /** A flatbuffer table read by slot number; every offset is checked against the buffer. */
    static final class Table {
        final ByteBuffer b;
        final int pos;
        final int vt;
        final int vtSize;

        Table(ByteBuffer b, long pos) {
            need(b, pos, 4);
            this.b = b;
            this.pos = (int) pos;
            long v = pos - b.getInt(this.pos);
            need(b, v, 4);
            this.vt = (int) v;
            this.vtSize = b.getShort(vt) & 0xFFFF;
            if (vtSize < 4 || vtSize % 2 != 0) {
                throw bad("a broken vtable");
            }
            need(b, vt, vtSize);
        }

        int field(int slot) {
            int entry = 4 + 2 * slot;
            if (entry + 2 > vtSize) {
                return 0;
            }
            int off = b.getShort(vt + entry) & 0xFFFF;
            return off == 0 ? 0 : pos + off;
        }

        int ubyte(int slot) {
            int p = field(slot);
            if (p == 0) {
                return 0;
            }
            need(b, p, 1);
            return b.get(p) & 0xFF;
        }

        int uint(int slot) {
            int p = field(slot);
            if (p == 0) {
                return 0;
            }
            need(b, p, 4);
            long v = b.getInt(p) & 0xFFFFFFFFL;
            if (v > Integer.MAX_VALUE) {
                throw bad("an index out of range");
            }
            return (int) v;
        }

        long target(int slot) {
            int p = field(slot);
            if (p == 0) {
                return 0;
            }
            need(b, p, 4);
            long t = p + (b.getInt(p) & 0xFFFFFFFFL);
            need(b, t, 4);
            return t;
        }

        Table table(int slot) {
            long t = target(slot);
            return t == 0 ? null : new Table(b, t);
        }

        /** {start, length} of a vector of {@code size}-byte elements, or null when absent. */
        int[] vector(int slot, int size, int cap) {
            long t = target(slot);
            if (t == 0) {
                return null;
            }
            long n = b.getInt((int) t) & 0xFFFFFFFFL;
            if (n > cap) {
                throw bad("a vector of " + n + " entries");
            }
            need(b, t + 4, n * size);
            return new int[] {(int) t + 4, (int) n};
        }

        List<Table> tables(int slot, int cap) {
            int[] v = vector(slot, 4, cap);
            List<Table> out = new ArrayList<>();
            for (int k = 0; v != null && k < v[1]; k++) {
                int p = v[0] + 4 * k;
                out.add(new Table(b, p + (b.getInt(p) & 0xFFFFFFFFL)));
            }
            return out;
        }

        Table tableAt(int slot, int index, int cap) {
            int[] v = vector(slot, 4, cap);
            if (v == null || index < 0 || index >= v[1]) {
                throw bad("index " + index + " outside its vector");
            }
            int p = v[0] + 4 * index;
            return new Table(b, p + (b.getInt(p) & 0xFFFFFFFFL));
        }

        String string(int slot) {
            long t = target(slot);
            if (t == 0) {
                return null;
            }
            long n = b.getInt((int) t) & 0xFFFFFFFFL;
            if (n > MAX_STRING) {
                throw bad("a string of " + n + " bytes");
            }
            need(b, t + 4, n);
            return decode(bytes(b, (int) t + 4, (int) n));
        }

        int[] ints(int slot, int cap) {
            int[] v = vector(slot, 4, cap);
            int[] out = new int[v == null ? 0 : v[1]];
            for (int k = 0; k < out.length; k++) {
                out[k] = b.getInt(v[0] + 4 * k);
            }
            return out;
        }

        float[] floats(int slot, int cap) {
            int[] v = vector(slot, 4, cap);
            float[] out = new float[v == null ? 0 : v[1]];
            for (int k = 0; k < out.length; k++) {
                out[k] = b.getFloat(v[0] + 4 * k);
            }
            return out;
        }

        long[] longs(int slot, int cap) {
            int[] v = vector(slot, 8, cap);
            long[] out = new long[v == null ? 0 : v[1]];
            for (int k = 0; k < out.length; k++) {
                out[k] = b.getLong(v[0] + 8 * k);
            }
            return out;
        }
    }

    private static Table root(ByteBuffer b, String identifier) {
        need(b, 0, 8);
        String id = new String(bytes(b, 4, 4), StandardCharsets.ISO_8859_1);
        if (!id.equals(identifier)) {
            throw bad("flatbuffer identifier " + id + ", not " + identifier);
        }
        return new Table(b, b.getInt(0) & 0xFFFFFFFFL);
    }

    private static void need(ByteBuffer b, long pos, long n) {
        if (pos < 0 || n < 0 || pos + n > b.limit()) {
            throw bad("an offset outside the file");
        }
    }

    private static ByteBuffer slice(ByteBuffer b, int start, int n) {
        ByteBuffer d = b.duplicate();
        d.position(start);
        d.limit(start + n);
        return d.slice().order(ByteOrder.LITTLE_ENDIAN);
    }

    private static byte[] bytes(ByteBuffer b, int start, int n) {
        byte[] out = new byte[n];
        for (int k = 0; k < n; k++) {
            out[k] = b.get(start + k);
        }
        return out;
    }

    private static String decode(byte[] data) {
        try {
            return StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(data)).toString();
        } catch (CharacterCodingException e) {
            throw bad("text that is not UTF-8");
        }
    }

    private static IllegalArgumentException bad(String what) {
        return new IllegalArgumentException("malformed TFLite metadata: " + what);
    }
}
