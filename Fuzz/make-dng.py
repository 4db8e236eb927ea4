"""Writes tiny DNG seeds for fuzz-raw from a binary PPM: two Bayer (CFA) mosaics and one linear RGB image.

    python3 Fuzz/make-dng.py IN.ppm OUT_DIR

No tool on Debian makes a DNG, so this writes the TIFF structure by hand: one IFD holding the raw image, with the
tags LibRaw needs to recognise a DNG (version, CFA layout, black and white levels, a colour matrix).
"""
import struct
import sys

BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10
TYPE_FORMATS = {BYTE: "B", ASCII: "B", SHORT: "H", LONG: "I", RATIONAL: "II", SRATIONAL: "ii"}

# 14-bit sensor values above a black level, as a typical camera records them.
BLACK_LEVEL = 256
WHITE_LEVEL = 16383

# XYZ (D65) to linear sRGB, in ten-thousandths: a camera whose primaries are sRGB's.
XYZ_TO_CAMERA = [32406, -15372, -4986, -9689, 18758, 415, 557, -2040, 10570]
D65 = 21


def read_ppm(path):
    """Width, height and RGB bytes of a binary (P6, maxval 255) PPM."""
    with open(path, "rb") as file:
        data = file.read()
    fields, position = [], 0
    while len(fields) < 4:
        while data[position:position + 1].isspace():
            position += 1
        start = position
        while not data[position:position + 1].isspace():
            position += 1
        fields.append(data[start:position])
    assert fields[0] == b"P6" and fields[3] == b"255", "expected a binary 8-bit PPM"
    width, height = int(fields[1]), int(fields[2])
    return width, height, data[position + 1:position + 1 + width * height * 3]


def sensor_value(byte):
    """An 8-bit intensity spread over the 14-bit range above the black level."""
    return BLACK_LEVEL + byte * (WHITE_LEVEL - BLACK_LEVEL) // 255


def mosaic(width, height, rgb, pattern):
    """One 16-bit sample per pixel, taken from the channel the 2×2 CFA pattern (0 R, 1 G, 2 B) puts there."""
    samples = []
    for y in range(height):
        for x in range(width):
            channel = pattern[(y % 2) * 2 + x % 2]
            samples.append(sensor_value(rgb[(y * width + x) * 3 + channel]))
    return struct.pack("<%dH" % len(samples), *samples)


def linear(width, height, rgb):
    """Three 16-bit samples per pixel."""
    return struct.pack("<%dH" % len(rgb), *(sensor_value(byte) for byte in rgb))


def encode_values(kind, values):
    """The bytes of one tag's values, little-endian."""
    if kind == ASCII:
        values = list(values.encode("ascii")) + [0]
    if kind in (RATIONAL, SRATIONAL):
        flat = [part for value in values for part in (value, 10000)]
        return struct.pack("<%d%s" % (len(flat), TYPE_FORMATS[kind][0]), *flat), len(values)
    return struct.pack("<%d%s" % (len(values), TYPE_FORMATS[kind]), *values), len(values)


def write_tiff(path, entries, pixels):
    """A little-endian TIFF with one IFD; the tag StripOffsets (273) is filled in to point at `pixels`."""
    entries = sorted(entries)
    ifd_size = 2 + 12 * len(entries) + 4
    extra_offset = 8 + ifd_size
    encoded = [encode_values(kind, values) for _, kind, values in entries]
    extra_size = sum(len(blob) + len(blob) % 2 for blob, _ in encoded if len(blob) > 4)
    pixel_offset = extra_offset + extra_size
    ifd, extra = struct.pack("<H", len(entries)), b""
    for (tag, kind, values), (blob, count) in zip(entries, encoded):
        if tag == 273:
            blob, count = struct.pack("<I", pixel_offset), 1
        if len(blob) > 4:
            ifd += struct.pack("<HHII", tag, kind, count, extra_offset + len(extra))
            extra += blob + b"\0" * (len(blob) % 2)
        else:
            ifd += struct.pack("<HHI", tag, kind, count) + blob.ljust(4, b"\0")
    ifd += struct.pack("<I", 0)
    with open(path, "wb") as file:
        file.write(b"II*\0" + struct.pack("<I", 8) + ifd + extra + pixels)


def dng_entries(width, height, pixels, photometric, samples, orientation):
    """The tags every seed shares: geometry, one strip, DNG version, levels, colour matrix and camera names."""
    return [
        (254, LONG, [0]), (256, LONG, [width]), (257, LONG, [height]), (258, SHORT, [16] * samples),
        (259, SHORT, [1]), (262, SHORT, [photometric]), (271, ASCII, "Replica Seed"), (272, ASCII, "Fuzz DNG"),
        (273, LONG, [0]), (274, SHORT, [orientation]), (277, SHORT, [samples]), (278, LONG, [height]),
        (279, LONG, [len(pixels)]), (284, SHORT, [1]), (50706, BYTE, [1, 4, 0, 0]), (50707, BYTE, [1, 1, 0, 0]),
        (50708, ASCII, "Replica Seed Fuzz DNG"), (50714, LONG, [BLACK_LEVEL] * samples),
        (50717, LONG, [WHITE_LEVEL] * samples), (50721, SRATIONAL, XYZ_TO_CAMERA), (50778, SHORT, [D65]),
    ]


def write_cfa(path, width, height, rgb, pattern, orientation):
    """A Bayer DNG with the given 2×2 pattern."""
    pixels = mosaic(width, height, rgb, pattern)
    entries = dng_entries(width, height, pixels, 32803, 1, orientation)
    entries += [(33421, SHORT, [2, 2]), (33422, BYTE, pattern)]
    write_tiff(path, entries, pixels)


def write_linear(path, width, height, rgb):
    """A demosaiced (LinearRaw) DNG."""
    pixels = linear(width, height, rgb)
    write_tiff(path, dng_entries(width, height, pixels, 34892, 3, 1), pixels)


def main():
    source, out = sys.argv[1], sys.argv[2]
    width, height, rgb = read_ppm(source)
    write_cfa(out + "/cfa-rggb-16bit.dng", width, height, rgb, [0, 1, 1, 2], 1)
    write_cfa(out + "/cfa-bggr-orientation-6.dng", width, height, rgb, [2, 1, 1, 0], 6)
    write_linear(out + "/linear-rgb.dng", width, height, rgb)


if __name__ == "__main__":
    main()
