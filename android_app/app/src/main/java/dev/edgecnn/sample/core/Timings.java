package dev.edgecnn.sample.core;

import java.util.Arrays;
import java.util.Locale;

/** Latency summary of repeated runs: mean and median in milliseconds, and the FPS they imply. */
public final class Timings {
    public final int runs;
    public final double meanMs;
    public final double medianMs;
    public final double minMs;

    private Timings(int runs, double meanMs, double medianMs, double minMs) {
        this.runs = runs;
        this.meanMs = meanMs;
        this.medianMs = medianMs;
        this.minMs = minMs;
    }

    /** From per-run durations in nanoseconds (System.nanoTime differences). */
    public static Timings of(long[] nanos) {
        if (nanos.length == 0) {
            throw new IllegalArgumentException("no runs to summarise");
        }
        long[] s = nanos.clone();
        Arrays.sort(s);
        double sum = 0;
        for (long v : s) {
            sum += v;
        }
        int m = s.length / 2;
        double median = s.length % 2 == 1 ? s[m] : (s[m - 1] + s[m]) / 2.0;
        return new Timings(s.length, sum / s.length / 1e6, median / 1e6, s[0] / 1e6);
    }

    /** Frames per second if each frame took the mean time. */
    public double fps() {
        return meanMs > 0 ? 1000.0 / meanMs : Double.POSITIVE_INFINITY;
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "%.2f ms mean, %.2f ms median, %.2f ms min (%d runs)", meanMs, medianMs,
                minMs, runs);
    }
}
