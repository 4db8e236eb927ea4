#ifndef REPLICA_VLFEAT_KERNELS_H
#define REPLICA_VLFEAT_KERNELS_H

#include <stddef.h>

/// Convolves every column of a `width` × `height` float image (rows `source_stride` floats apart) with a
/// filter whose taps are `filter[0]` for offset `first_tap` up to offset `last_tap`:
///
///     out(x, j) = Σ_k filter[k − first_tap] · source(x, j·step − k),   k = first_tap … last_tap,
///
/// rows outside the image reading as the nearest edge row (`pad_by_continuity`) or as zero. Output row j,
/// for j = 0 … (height − 1) / step, goes to `destination[j · destination_stride + x]`, or, when
/// `transpose`, to `destination[x · destination_stride + j]`. Sums run from the last tap to the first.
void replica_convolve_columns(float *destination, size_t destination_stride,
                              const float *source, size_t width, size_t height, size_t source_stride,
                              const float *filter, ptrdiff_t first_tap, ptrdiff_t last_tap,
                              size_t step, int pad_by_continuity, int transpose);

#endif
