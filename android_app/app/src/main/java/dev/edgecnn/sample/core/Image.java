package dev.edgecnn.sample.core;

/**
 * An 8-bit image, rows of pixels, channels interleaved (HWC): the plain-Java stand-in for the
 * uint8 numpy array that edgecnn's {@code fit_image} takes. 1 (gray), 3 (RGB) or 4 (RGBA) channels.
 */
public final class Image {
    public final int width;
    public final int height;
    public final int channels;
    /** height * width * channels bytes, read as unsigned. */
    public final byte[] data;

    public Image(int width, int height, int channels, byte[] data) {
        if (width < 1 || height < 1) {
            throw new IllegalArgumentException("empty image " + width + "x" + height);
        }
        if (channels != 1 && channels != 3 && channels != 4) {
            throw new IllegalArgumentException("an image has 1, 3 or 4 channels, got " + channels);
        }
        if (data.length != width * height * channels) {
            throw new IllegalArgumentException("expected " + width * height * channels + " bytes for a " + width
                    + "x" + height + "x" + channels + " image, got " + data.length);
        }
        this.width = width;
        this.height = height;
        this.channels = channels;
        this.data = data;
    }

    /** From packed ARGB ints (Android's Bitmap.getPixels, java.awt's getRGB): alpha dropped, as edgecnn does. */
    public static Image fromArgb(int[] argb, int width, int height) {
        byte[] rgb = new byte[width * height * 3];
        for (int k = 0; k < width * height; k++) {
            int p = argb[k];
            rgb[3 * k] = (byte) (p >> 16);
            rgb[3 * k + 1] = (byte) (p >> 8);
            rgb[3 * k + 2] = (byte) p;
        }
        return new Image(width, height, 3, rgb);
    }

    public int get(int y, int x, int c) {
        return data[(y * width + x) * channels + c] & 0xFF;
    }
}
