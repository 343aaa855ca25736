package dev.edgecnn.sample.core;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/**
 * Reads what {@code edgecnn bundle android} placed in an app's assets folder exactly as the app
 * does (Spec.parse, then the files it names, then the model's own metadata) and prints, per bundled image, the SHA-256 of the
 * input tensor the app would feed (little-endian). tests/test_android.py runs it and compares with
 * Python's preprocessing of the same images, so the bundle and the Java code are tested together.
 *
 * <p>Usage: {@code java -cp ... dev.edgecnn.sample.core.BundleCheck ASSETS_DIR}
 */
public final class BundleCheck {
    private BundleCheck() {
    }

    public static void main(String[] args) throws IOException, NoSuchAlgorithmException {
        File assets = new File(args[0]);
        Spec spec = Spec.parse(new String(Golden.read(new File(assets, Spec.ASSET_NAME)), StandardCharsets.UTF_8));
        File model = new File(assets, spec.modelFile);
        if (!model.isFile()) {
            throw new IOException("missing model file " + model);
        }
        String[] labels = new String(Golden.read(new File(assets, spec.labelsFile)), StandardCharsets.UTF_8)
                .split("\n");
        if (labels.length != spec.numClasses()) {
            throw new IOException(labels.length + " labels for " + spec.numClasses() + " classes");
        }
        ModelMetadata.Effective run = ModelMetadata.effective(ByteBuffer.wrap(Golden.read(model)), spec, labels);
        System.out.println("model " + spec.modelFile + " " + model.length());
        System.out.println("classes " + spec.numClasses());
        System.out.println("input " + spec.input);
        System.out.println("source " + run.source);
        System.out.println("labels " + String.join(",", run.labels));
        for (Spec.SampleImage s : spec.images) {
            Image fitted = Preprocess.fitImage(Golden.png(new File(assets, s.file)), run.preprocessing);
            ByteBuffer buf = ByteBuffer.allocate(spec.input.elements() * spec.input.bytesPerElement())
                    .order(ByteOrder.LITTLE_ENDIAN);
            Preprocess.fillInput(fitted, run.preprocessing, spec.input, buf);
            String label = s.labelIndex >= 0 ? run.labels[s.labelIndex] : "?";
            System.out.println("image " + s.file + " " + s.label + " " + label + " " + hex(buf.array()));
        }
    }

    private static String hex(byte[] data) throws NoSuchAlgorithmException {
        StringBuilder b = new StringBuilder();
        for (byte x : MessageDigest.getInstance("SHA-256").digest(data)) {
            b.append(String.format("%02x", x));
        }
        return b.toString();
    }
}
