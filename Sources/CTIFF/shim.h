#include <tiffio.h>
#include <stdint.h>
#include <stdlib.h>

// TIFFGetField and TIFFSetField are C variadic functions, which Swift cannot call. Each wrapper below gives
// one shape of value a fixed signature; the array ones ask libtiff how the field is stored, so a caller never
// has to know whether a rational tag is kept as a float or a double, or whether its count is passed.

// --- Reading ---

/// A SHORT field, or its default; 0 when it has neither.
static inline int replica_tiff_get_uint16(TIFF *tif, uint32_t tag, uint16_t *value) {
    return TIFFGetFieldDefaulted(tif, tag, value);
}

/// A LONG field, or its default; 0 when it has neither.
static inline int replica_tiff_get_uint32(TIFF *tif, uint32_t tag, uint32_t *value) {
    return TIFFGetFieldDefaulted(tif, tag, value);
}

/// An ASCII field, owned by libtiff until the directory changes; NULL when absent.
static inline const char *replica_tiff_get_ascii(TIFF *tif, uint32_t tag) {
    char *text = NULL;
    return TIFFGetField(tif, tag, &text) ? text : NULL;
}

/// An IFD offset field such as TIFFTAG_EXIFIFD; 0 when absent.
static inline int replica_tiff_get_ifd_offset(TIFF *tif, uint32_t tag, uint64_t *offset) {
    const TIFFField *field = TIFFFieldWithTag(tif, tag);
    if (field == NULL || TIFFFieldPassCount(field) || TIFFFieldSetGetSize(field) != 8) return 0;
    return TIFFGetField(tif, tag, offset);
}

static inline int replica_tiff_is_real_type(TIFFDataType type) {
    return type == TIFF_RATIONAL || type == TIFF_SRATIONAL || type == TIFF_FLOAT || type == TIFF_DOUBLE;
}

/// A single RATIONAL, SRATIONAL, FLOAT or DOUBLE field of the current directory (EXIF ones included).
static inline int replica_tiff_get_real(TIFF *tif, uint32_t tag, double *value) {
    const TIFFField *field = TIFFFieldWithTag(tif, tag);
    if (field == NULL || TIFFFieldPassCount(field) || !replica_tiff_is_real_type(TIFFFieldDataType(field))) {
        return 0;
    }
    if (TIFFFieldSetGetSize(field) == 4) {
        float single = 0;
        if (!TIFFGetField(tif, tag, &single)) return 0;
        *value = single;
        return 1;
    }
    if (TIFFFieldSetGetSize(field) == 8) return TIFFGetField(tif, tag, value);
    return 0;
}

// --- Writing (the tests make their fixtures with these) ---

static inline int replica_tiff_set_uint16(TIFF *tif, uint32_t tag, uint16_t value) {
    return TIFFSetField(tif, tag, value);
}

static inline int replica_tiff_set_uint32(TIFF *tif, uint32_t tag, uint32_t value) {
    return TIFFSetField(tif, tag, value);
}

static inline int replica_tiff_set_ascii(TIFF *tif, uint32_t tag, const char *text) {
    return TIFFSetField(tif, tag, text);
}

/// An IFD offset field such as TIFFTAG_EXIFIFD, which libtiff takes as a 64-bit value.
static inline int replica_tiff_set_ifd_offset(TIFF *tif, uint32_t tag, uint64_t offset) {
    return TIFFSetField(tif, tag, offset);
}

/// An array field whose elements are stored as `element_size`-byte integers (BYTE, SHORT, LONG). The count is
/// passed only where libtiff expects one; a fixed-count field must be given exactly its count.
static inline int replica_tiff_set_array(TIFF *tif, uint32_t tag, uint32_t count, const void *values,
                                            int element_size) {
    const TIFFField *field = TIFFFieldWithTag(tif, tag);
    if (field == NULL || TIFFFieldSetGetSize(field) != element_size) return 0;
    if (!TIFFFieldPassCount(field)) {
        return TIFFFieldWriteCount(field) == (int)count ? TIFFSetField(tif, tag, values) : 0;
    }
    if (TIFFFieldSetGetCountSize(field) == 2) return TIFFSetField(tif, tag, (int)(uint16_t)count, values);
    return TIFFSetField(tif, tag, count, values);
}

/// A real-valued field (one value or an array), converted to however libtiff stores it.
static inline int replica_tiff_set_reals(TIFF *tif, uint32_t tag, uint32_t count, const double *values) {
    const TIFFField *field = TIFFFieldWithTag(tif, tag);
    if (field == NULL || count == 0 || !replica_tiff_is_real_type(TIFFFieldDataType(field))) return 0;
    int size = TIFFFieldSetGetSize(field);
    if (!TIFFFieldPassCount(field) && TIFFFieldWriteCount(field) == 1) return TIFFSetField(tif, tag, values[0]);
    if (size == 8) return replica_tiff_set_array(tif, tag, count, values, 8);
    if (size != 4) return 0;
    float *singles = malloc(sizeof(float) * count);
    if (singles == NULL) return 0;
    for (uint32_t i = 0; i < count; i++) singles[i] = (float)values[i];
    int result = replica_tiff_set_array(tif, tag, count, singles, 4);
    free(singles);
    return result;
}

/// Reserves `count` SubIFD slots in the current directory; libtiff fills them with the next directories written.
static inline int replica_tiff_reserve_subifds(TIFF *tif, uint16_t count) {
    uint64_t offsets[8] = {0};
    if (count == 0 || count > 8) return 0;
    return TIFFSetField(tif, TIFFTAG_SUBIFD, (int)count, offsets);
}

/// A palette image's colour map: three arrays of 2^BitsPerSample 16-bit entries.
static inline int replica_tiff_set_colormap(TIFF *tif, const uint16_t *red, const uint16_t *green,
                                            const uint16_t *blue) {
    return TIFFSetField(tif, TIFFTAG_COLORMAP, red, green, blue);
}
