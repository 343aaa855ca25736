package dev.edgecnn.sample.core;

import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class TimingsTest {
    @Test
    public void meanMedianMinAndFps() {
        Timings t = Timings.of(new long[] {4_000_000L, 2_000_000L, 3_000_000L, 11_000_000L});
        assertEquals(4, t.runs);
        assertEquals(5.0, t.meanMs, 1e-12);
        assertEquals(3.5, t.medianMs, 1e-12);
        assertEquals(2.0, t.minMs, 1e-12);
        assertEquals(200.0, t.fps(), 1e-9);
        assertEquals(3.0, Timings.of(new long[] {3_000_000L}).medianMs, 1e-12);
    }
}
