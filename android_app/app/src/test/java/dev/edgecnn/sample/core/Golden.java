package dev.edgecnn.sample.core;

import java.awt.image.BufferedImage;
import java.awt.image.IndexColorModel;
import java.awt.image.Raster;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import javax.imageio.ImageIO;
import org.json.JSONException;
import org.json.JSONObject;

/** Test helpers: golden files from the test resources, PNG decoding with javax.imageio (JVM only). */
final class Golden {
    private Golden() {
    }

    static byte[] bytes(String rel) throws IOException {
        try (InputStream in = Golden.class.getResourceAsStream("/golden/" + rel)) {
            if (in == null) {
                throw new IOException("golden file missing from the test resources: golden/" + rel
                        + " (run tools/make_golden.py)");
            }
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        }
    }

    static JSONObject json(String rel) throws IOException, JSONException {
        return new JSONObject(new String(bytes(rel), StandardCharsets.UTF_8));
    }

    static Image png(String rel) throws IOException {
        return decode(ImageIO.read(new java.io.ByteArrayInputStream(bytes(rel))), rel);
    }

    static Image png(File f) throws IOException {
        return decode(ImageIO.read(f), f.getPath());
    }

    static byte[] read(File f) throws IOException {
        return Files.readAllBytes(f.toPath());
    }

    /**
     * The stored samples, not getRGB(): for gray PNGs java.awt converts from a linear gray colour
     * space, which would change the values. This matches what PIL/numpy (and Android's decoder) see.
     */
    private static Image decode(BufferedImage bi, String what) throws IOException {
        if (bi == null) {
            throw new IOException(what + " is not a readable image");
        }
        int w = bi.getWidth();
        int h = bi.getHeight();
        if (bi.getColorModel() instanceof IndexColorModel) {
            int[] argb = bi.getRGB(0, 0, w, h, null, 0, w);
            return Image.fromArgb(argb, w, h);
        }
        Raster r = bi.getRaster();
        int c = r.getNumBands();
        if (r.getSampleModel().getSampleSize(0) != 8) {
            throw new IOException(what + ": only 8-bit images are used in the golden set");
        }
        byte[] data = new byte[w * h * c];
        int k = 0;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                for (int b = 0; b < c; b++) {
                    data[k++] = (byte) r.getSample(x, y, b);
                }
            }
        }
        return new Image(w, h, c, data);
    }
}
