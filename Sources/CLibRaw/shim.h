#include <libraw/libraw.h>

// Fixed-size char arrays and the trailing pixel array arrive in Swift as tuples; these give plain pointers.

/// The camera maker as LibRaw identified it, NUL-terminated.
static inline const char *replica_libraw_make(const libraw_data_t *raw) {
    return raw->idata.make;
}

/// The camera model as LibRaw identified it, NUL-terminated.
static inline const char *replica_libraw_model(const libraw_data_t *raw) {
    return raw->idata.model;
}

/// The first byte of a processed image's pixels (rows top to bottom, `colors` interleaved samples).
static inline const unsigned char *replica_libraw_image_bytes(const libraw_processed_image_t *image) {
    return image->data;
}
