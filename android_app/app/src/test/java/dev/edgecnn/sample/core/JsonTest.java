package dev.edgecnn.sample.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {

    @Test
    public void parsesWhatPythonsJsonDumpsWrites() {
        Object v = Json.parse("{\"a\": [1, -2.5e-3, 0.003921568859368563, true, false, null],"
                + " \"s\": \"caf\\u00e9 \\\"q\\\" \\n\\/\", \"o\": {}, \"l\": []}");
        List<Object> a = Json.list(v, "a");
        assertEquals(1.0, (Double) a.get(0), 0.0);
        assertEquals(-2.5e-3, (Double) a.get(1), 0.0);
        // shortest repr of float32(1/255) must come back to the same float
        assertEquals(Float.floatToIntBits(1f / 255f), Float.floatToIntBits((float) (double) (Double) a.get(2)));
        assertEquals(Boolean.TRUE, a.get(3));
        assertEquals(Boolean.FALSE, a.get(4));
        assertNull(a.get(5));
        assertEquals("café \"q\" \n/", Json.str(v, "s"));
        assertTrue(Json.obj(v, "o").isEmpty());
        assertTrue(Json.list(v, "l").isEmpty());
    }

    @Test
    public void keepsKeyOrder() {
        Map<String, Object> m = Json.obj(Json.parse("{\"x\": {\"b\": 1, \"a\": 2, \"c\": 3}}"), "x");
        assertEquals("[b, a, c]", m.keySet().toString());
    }

    @Test
    public void rejectsInvalidJson() {
        String[] bad = {"", "{", "[1,]", "{\"a\" 1}", "[1] x", "NaN", "[01]", "\"\\x\"", "{'a': 1}", "[1.]", "tru"};
        for (String s : bad) {
            try {
                Json.parse(s);
                fail("accepted invalid JSON: " + s);
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage(), e.getMessage().startsWith("invalid JSON"));
            }
        }
    }

    @Test
    public void typedAccessNamesTheKey() {
        Object v = Json.parse("{\"n\": 1.5}");
        try {
            Json.integer(v, "n");
            fail();
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("'n'"));
        }
        try {
            Json.str(v, "missing");
            fail();
        } catch (IllegalArgumentException e) {
            assertEquals("missing key 'missing'", e.getMessage());
        }
    }
}
