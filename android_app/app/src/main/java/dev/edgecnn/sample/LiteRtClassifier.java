package dev.edgecnn.sample;

import android.content.res.AssetFileDescriptor;
import android.content.res.AssetManager;

import dev.edgecnn.sample.core.Image;
import dev.edgecnn.sample.core.ModelMetadata;
import dev.edgecnn.sample.core.Postprocess;
import dev.edgecnn.sample.core.Preprocess;
import dev.edgecnn.sample.core.Spec;

import java.io.Closeable;
import java.io.FileInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.MappedByteBuffer;
import java.nio.channels.FileChannel;

import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;

/**
 * Thin wrapper over the LiteRT Interpreter: everything else (preprocessing, quantization,
 * dequantization, top-k) is the pure-Java core, tested on the JVM. Not thread-safe: use it from one
 * background thread.
 */
final class LiteRtClassifier implements Closeable {
    final Spec spec;
    /** Labels, preprocessing and output kind: the model's own metadata where it has it, else the bundle's. */
    final ModelMetadata.Effective effective;
    final Spec.TensorInfo input;
    final Spec.TensorInfo output;
    final int threads;
    final boolean xnnpack;
    private final Interpreter interpreter;
    private final ByteBuffer inputBuffer;
    private final ByteBuffer outputBuffer;

    /** Timings of the last {@link #classify} call, in nanoseconds. */
    long lastPreprocessNanos;
    long lastInferenceNanos;

    LiteRtClassifier(AssetManager assets, Spec spec, String[] bundleLabels, int threads, boolean xnnpack)
            throws IOException {
        this.spec = spec;
        this.threads = threads;
        this.xnnpack = xnnpack;
        Interpreter.Options options = new Interpreter.Options();
        options.setNumThreads(threads);
        options.setUseXNNPACK(xnnpack);
        MappedByteBuffer model = map(assets, spec.modelFile);
        effective = ModelMetadata.effective(model, spec, bundleLabels);
        interpreter = new Interpreter(model, options);
        if (interpreter.getInputTensorCount() != 1 || interpreter.getOutputTensorCount() != 1) {
            interpreter.close();
            throw new IOException(spec.modelFile + " has " + interpreter.getInputTensorCount() + " inputs and "
                    + interpreter.getOutputTensorCount() + " outputs; the app needs one of each");
        }
        // The model's own tensors decide dtype, scale and zero point; the spec must agree with them.
        input = info(interpreter.getInputTensor(0));
        output = info(interpreter.getOutputTensor(0));
        try {
            Spec.checkInput(input, effective.preprocessing);
            Spec.checkOutput(output);
            if (effective.labels.length != output.elements()) {
                throw new IllegalArgumentException(effective.labels.length + " labels (" + effective.source + ") for "
                        + output.elements() + " output scores");
            }
        } catch (IllegalArgumentException e) {
            interpreter.close();
            throw e;
        }
        if (!input.sameAs(spec.input) || !output.sameAs(spec.output)) {
            interpreter.close();
            throw new IOException("the bundled model's tensors (" + input + " -> " + output + ") differ from "
                    + Spec.ASSET_NAME + " (" + spec.input + " -> " + spec.output + "): bundle again");
        }
        inputBuffer = ByteBuffer.allocateDirect(input.elements() * input.bytesPerElement())
                .order(ByteOrder.nativeOrder());
        outputBuffer = ByteBuffer.allocateDirect(output.elements() * output.bytesPerElement())
                .order(ByteOrder.nativeOrder());
    }

    /** Scores for one image (any size; fitted as edgecnn's preprocessing does). */
    float[] classify(Image image) {
        long t0 = System.nanoTime();
        Image fitted = Preprocess.fitImage(image, effective.preprocessing);
        Preprocess.fillInput(fitted, effective.preprocessing, input, inputBuffer);
        long t1 = System.nanoTime();
        outputBuffer.rewind();
        interpreter.run(inputBuffer, outputBuffer);
        long t2 = System.nanoTime();
        lastPreprocessNanos = t1 - t0;
        lastInferenceNanos = t2 - t1;
        return Postprocess.scores(outputBuffer, output, effective.outputKind);
    }

    @Override
    public void close() {
        interpreter.close();
    }

    private static MappedByteBuffer map(AssetManager assets, String name) throws IOException {
        // openFd works only for assets stored uncompressed: app/build.gradle.kts sets noCompress "tflite".
        try (AssetFileDescriptor fd = assets.openFd(name);
             FileInputStream in = new FileInputStream(fd.getFileDescriptor());
             FileChannel channel = in.getChannel()) {
            return channel.map(FileChannel.MapMode.READ_ONLY, fd.getStartOffset(), fd.getDeclaredLength());
        }
    }

    private static Spec.TensorInfo info(Tensor t) {
        String dtype;
        DataType d = t.dataType();
        if (d == DataType.FLOAT32) {
            dtype = "float32";
        } else if (d == DataType.INT8) {
            dtype = "int8";
        } else if (d == DataType.UINT8) {
            dtype = "uint8";
        } else {
            dtype = d.toString().toLowerCase(java.util.Locale.ROOT);
        }
        Tensor.QuantizationParams q = t.quantizationParams();
        return new Spec.TensorInfo(t.name(), t.shape(), dtype, q.getScale(), q.getZeroPoint());
    }
}
