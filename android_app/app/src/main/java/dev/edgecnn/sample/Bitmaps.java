package dev.edgecnn.sample;

import android.content.ContentResolver;
import android.content.res.AssetManager;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;

import dev.edgecnn.sample.core.Image;

import java.io.IOException;
import java.io.InputStream;

/** Android Bitmap <-> the core's {@link Image}. */
final class Bitmaps {
    /** Gallery pictures can be 12+ MP; decode them at most this many pixels on the short side. */
    private static final int MAX_SHORT_SIDE = 1024;

    private Bitmaps() {
    }

    static Bitmap fromAsset(AssetManager assets, String name) throws IOException {
        try (InputStream in = assets.open(name)) {
            return decode(in, name);
        }
    }

    static Bitmap fromUri(ContentResolver resolver, Uri uri) throws IOException {
        BitmapFactory.Options bounds = new BitmapFactory.Options();
        bounds.inJustDecodeBounds = true;
        try (InputStream in = resolver.openInputStream(uri)) {
            BitmapFactory.decodeStream(in, null, bounds);
        }
        BitmapFactory.Options opts = new BitmapFactory.Options();
        opts.inPreferredConfig = Bitmap.Config.ARGB_8888;
        opts.inSampleSize = 1;
        int shortSide = Math.min(bounds.outWidth, bounds.outHeight);
        while (shortSide / (opts.inSampleSize * 2) >= MAX_SHORT_SIDE) {
            opts.inSampleSize *= 2;
        }
        try (InputStream in = resolver.openInputStream(uri)) {
            Bitmap b = BitmapFactory.decodeStream(in, null, opts);
            if (b == null) {
                throw new IOException("not an image: " + uri);
            }
            return b;
        }
    }

    private static Bitmap decode(InputStream in, String what) throws IOException {
        BitmapFactory.Options opts = new BitmapFactory.Options();
        opts.inPreferredConfig = Bitmap.Config.ARGB_8888;
        opts.inScaled = false;
        Bitmap b = BitmapFactory.decodeStream(in, null, opts);
        if (b == null) {
            throw new IOException("not an image: " + what);
        }
        return b;
    }

    /** RGB bytes of the bitmap (alpha dropped, as edgecnn's fit_image does). */
    static Image toImage(Bitmap bitmap) {
        Bitmap b = bitmap.getConfig() == Bitmap.Config.ARGB_8888 ? bitmap : bitmap.copy(Bitmap.Config.ARGB_8888, false);
        int w = b.getWidth();
        int h = b.getHeight();
        int[] argb = new int[w * h];
        b.getPixels(argb, 0, w, 0, 0, w, h);
        return Image.fromArgb(argb, w, h);
    }
}
