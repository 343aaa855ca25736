package dev.edgecnn.sample;

import android.app.Activity;
import android.content.ActivityNotFoundException;
import android.content.Intent;
import android.graphics.Bitmap;
import android.net.Uri;
import android.os.Bundle;
import android.provider.MediaStore;
import android.view.View;
import android.widget.AdapterView;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.CheckBox;
import android.widget.ImageView;
import android.widget.Spinner;
import android.widget.TextView;
import android.widget.Toast;

import dev.edgecnn.sample.core.Image;
import dev.edgecnn.sample.core.Postprocess;
import dev.edgecnn.sample.core.Spec;
import dev.edgecnn.sample.core.Timings;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * One screen: the bundled sample images or a gallery/camera picture, the top-5 with scores, and
 * preprocessing and inference latency, with repeated runs for FPS. The model, labels and
 * preprocessing come from assets/ (written by `edgecnn bundle android`); all interpreter work
 * runs on one background thread.
 */
public class MainActivity extends Activity {
    private static final int REQUEST_GALLERY = 1;
    private static final int REQUEST_CAMERA = 2;
    private static final int BENCH_RUNS = 50;
    private static final int WARMUP_RUNS = 5;
    private static final Integer[] THREADS = {1, 2, 4, 8};

    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    private Spec spec;
    private String[] labels;
    private LiteRtClassifier classifier;  // touched only on the worker thread
    private int sampleIndex = -1;
    private Image current;

    private TextView modelInfo;
    private TextView caption;
    private TextView results;
    private TextView timings;
    private ImageView imageView;
    private Spinner threads;
    private CheckBox xnnpack;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        modelInfo = findViewById(R.id.model_info);
        caption = findViewById(R.id.image_caption);
        results = findViewById(R.id.results);
        timings = findViewById(R.id.timings);
        imageView = findViewById(R.id.image);
        threads = findViewById(R.id.threads);
        xnnpack = findViewById(R.id.xnnpack);
        Button bench = findViewById(R.id.button_benchmark);
        bench.setText(getString(R.string.benchmark, BENCH_RUNS));

        try {
            // labels.txt and the spec's preprocessing are the fallback: a model that carries TFLite
            // Metadata gives its own (LiteRtClassifier, core/ModelMetadata.java).
            spec = Spec.parse(readAsset(Spec.ASSET_NAME));
            labels = readAsset(spec.labelsFile).split("\n");
            if (labels.length != spec.numClasses()) {
                throw new IOException(spec.labelsFile + " has " + labels.length + " labels for "
                        + spec.numClasses() + " classes");
            }
        } catch (IOException | IllegalArgumentException e) {
            modelInfo.setText(spec == null && e instanceof IOException ? getString(R.string.no_bundle)
                    : getString(R.string.error, e.getMessage()));
            return;
        }

        ArrayAdapter<Integer> adapter = new ArrayAdapter<>(this, android.R.layout.simple_spinner_item, THREADS);
        adapter.setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item);
        threads.setAdapter(adapter);
        threads.setOnItemSelectedListener(new AdapterView.OnItemSelectedListener() {
            @Override
            public void onItemSelected(AdapterView<?> parent, View view, int position, long id) {
                reload();
            }

            @Override
            public void onNothingSelected(AdapterView<?> parent) {
            }
        });
        xnnpack.setOnCheckedChangeListener((b, checked) -> reload());
        findViewById(R.id.button_sample).setOnClickListener(v -> nextSample());
        findViewById(R.id.button_gallery).setOnClickListener(v -> pickFromGallery());
        findViewById(R.id.button_camera).setOnClickListener(v -> takePicture());
        bench.setOnClickListener(v -> benchmark());
        reload();
        nextSample();
    }

    @Override
    protected void onDestroy() {
        worker.execute(() -> {
            if (classifier != null) {
                classifier.close();
            }
        });
        worker.shutdown();
        super.onDestroy();
    }

    /** (Re)creates the interpreter with the chosen thread count and XNNPACK setting. */
    private void reload() {
        final int n = (Integer) threads.getSelectedItem();
        final boolean useXnnpack = xnnpack.isChecked();
        worker.execute(() -> {
            try {
                if (classifier != null) {
                    classifier.close();
                    classifier = null;
                }
                LiteRtClassifier c = new LiteRtClassifier(getAssets(), spec, labels, n, useXnnpack);
                classifier = c;
                String info = getString(R.string.model_info, spec.artifact, spec.model, c.input.toString(),
                        c.output.toString(), n, useXnnpack ? "on" : "off");
                runOnUiThread(() -> modelInfo.setText(info));
                if (current != null) {
                    classifyOnWorker(current);
                }
            } catch (IOException | RuntimeException e) {
                showError(e);
            }
        });
    }

    private void nextSample() {
        if (spec.images.isEmpty()) {
            return;
        }
        sampleIndex = (sampleIndex + 1) % spec.images.size();
        Spec.SampleImage s = spec.images.get(sampleIndex);
        try {
            show(Bitmaps.fromAsset(getAssets(), s.file), getString(R.string.true_label, s.label));
        } catch (IOException e) {
            showError(e);
        }
    }

    private void pickFromGallery() {
        Intent i = new Intent(Intent.ACTION_GET_CONTENT).setType("image/*").addCategory(Intent.CATEGORY_OPENABLE);
        startActivityForResult(i, REQUEST_GALLERY);
    }

    private void takePicture() {
        // Without EXTRA_OUTPUT the camera app returns a small thumbnail: enough for a 32x32..224x224
        // model, and it needs neither the CAMERA nor a storage permission.
        try {
            startActivityForResult(new Intent(MediaStore.ACTION_IMAGE_CAPTURE), REQUEST_CAMERA);
        } catch (ActivityNotFoundException e) {
            Toast.makeText(this, R.string.no_camera, Toast.LENGTH_SHORT).show();
        }
    }

    @Override
    protected void onActivityResult(int requestCode, int resultCode, Intent data) {
        super.onActivityResult(requestCode, resultCode, data);
        if (resultCode != RESULT_OK || data == null) {
            return;
        }
        try {
            Bitmap b = null;
            if (requestCode == REQUEST_GALLERY && data.getData() != null) {
                b = Bitmaps.fromUri(getContentResolver(), data.getData());
            } else if (requestCode == REQUEST_CAMERA && data.getExtras() != null) {
                b = (Bitmap) data.getExtras().get("data");
            }
            if (b != null) {
                show(b, getString(R.string.picked_image, b.getWidth(), b.getHeight()));
            }
        } catch (IOException | SecurityException e) {
            showError(e);
        }
    }

    private void show(Bitmap bitmap, String text) {
        imageView.setImageBitmap(bitmap);
        caption.setText(text);
        final Image image = Bitmaps.toImage(bitmap);
        current = image;
        worker.execute(() -> classifyOnWorker(image));
    }

    private void classifyOnWorker(Image image) {
        if (classifier == null) {
            return;
        }
        try {
            float[] scores = classifier.classify(image);
            String top = formatTop(scores);
            String t = getString(R.string.timing, classifier.lastPreprocessNanos / 1e6,
                    classifier.lastInferenceNanos / 1e6);
            runOnUiThread(() -> {
                results.setText(top);
                timings.setText(t);
            });
        } catch (RuntimeException e) {
            showError(e);
        }
    }

    /** Repeated runs on the current image: latency of each stage and the FPS of both together. */
    private void benchmark() {
        final Image image = current;
        if (image == null) {
            return;
        }
        worker.execute(() -> {
            if (classifier == null) {
                return;
            }
            try {
                for (int k = 0; k < WARMUP_RUNS; k++) {
                    classifier.classify(image);
                }
                long[] pre = new long[BENCH_RUNS];
                long[] inf = new long[BENCH_RUNS];
                long[] both = new long[BENCH_RUNS];
                for (int k = 0; k < BENCH_RUNS; k++) {
                    classifier.classify(image);
                    pre[k] = classifier.lastPreprocessNanos;
                    inf[k] = classifier.lastInferenceNanos;
                    both[k] = pre[k] + inf[k];
                }
                String text = getString(R.string.bench_result, BENCH_RUNS, Timings.of(pre).toString(),
                        Timings.of(inf).toString(), Timings.of(both).fps());
                runOnUiThread(() -> timings.setText(text));
            } catch (RuntimeException e) {
                showError(e);
            }
        });
    }

    private String formatTop(float[] scores) {
        StringBuilder b = new StringBuilder();
        for (int i : Postprocess.topK(scores, 5)) {
            b.append(String.format(Locale.ROOT, "%-16s %.4f%n", classifier.effective.labels[i], scores[i]));
        }
        return b.toString();
    }

    private void showError(Exception e) {
        String msg = getString(R.string.error, e.getMessage() == null ? e.toString() : e.getMessage());
        runOnUiThread(() -> results.setText(msg));
    }

    private String readAsset(String name) throws IOException {
        try (InputStream in = getAssets().open(name)) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            int n;
            while ((n = in.read(buf)) > 0) {
                out.write(buf, 0, n);
            }
            return out.toString(StandardCharsets.UTF_8.name());
        }
    }
}
