// A faster column convolution for VLFeat's SIFT, which spends about a third of its time smoothing.
//
// VLFeat computes each output pixel on its own, walking down one column at a time in scalar code (its SSE2
// path is compiled out of Debian's library). Here whole rows are accumulated at once, tap by tap, so the inner
// loop is a contiguous multiply-add the compiler vectorises, and the rows being summed stay in cache. Eight
// output rows are gathered in a tile before a transposed write, so that each destination row receives eight
// neighbouring floats at a time instead of one.
//
// `vl_imconvcol_vf` below takes VLFeat's name and signature. The worker exports it (see Package.swift), and
// because libvl calls the function through its procedure linkage table, the dynamic linker binds libvl's own
// calls to this definition: VLFeat's smoothing, and so its scale space, runs on this code. The results agree
// with VLFeat's to float rounding; ReplicaReconstructionTests compares the two on every case SIFT uses.

#include "CVLFeatKernels.h"

#include <stdlib.h>
#include <string.h>
#include <vl/imopv.h>

enum { tile_rows = 8 };

// Eight lanes where the processor has AVX2, four (SSE2, every x86-64) elsewhere; the loader picks once.
__attribute__((target_clones("avx2", "default")))
static void accumulate_row(float *restrict sums, const float *restrict row, float weight, size_t width) {
    for (size_t x = 0; x < width; x++) sums[x] += weight * row[x];
}

void replica_convolve_columns(float *destination, size_t destination_stride,
                              const float *source, size_t width, size_t height, size_t source_stride,
                              const float *filter, ptrdiff_t first_tap, ptrdiff_t last_tap,
                              size_t step, int pad_by_continuity, int transpose) {
    if (width == 0 || height == 0 || step == 0) return;
    const size_t output_rows = (height - 1) / step + 1;
    float *tile = malloc(sizeof(float) * tile_rows * width);
    if (tile == NULL) abort();

    for (size_t first_row = 0; first_row < output_rows; first_row += tile_rows) {
        const size_t rows = output_rows - first_row < tile_rows ? output_rows - first_row : tile_rows;
        for (size_t r = 0; r < rows; r++) {
            float *sums = tile + r * width;
            memset(sums, 0, sizeof(float) * width);
            const ptrdiff_t y = (ptrdiff_t)((first_row + r) * step);
            for (ptrdiff_t tap = last_tap; tap >= first_tap; tap--) {
                ptrdiff_t row = y - tap;
                if (row < 0 || row >= (ptrdiff_t)height) {
                    if (!pad_by_continuity) continue;
                    row = row < 0 ? 0 : (ptrdiff_t)height - 1;
                }
                accumulate_row(sums, source + (size_t)row * source_stride, filter[tap - first_tap], width);
            }
        }
        if (transpose) {
            for (size_t x = 0; x < width; x++) {
                float *out = destination + x * destination_stride + first_row;
                for (size_t r = 0; r < rows; r++) out[r] = tile[r * width + x];
            }
        } else {
            for (size_t r = 0; r < rows; r++) {
                memcpy(destination + (first_row + r) * destination_stride, tile + r * width, sizeof(float) * width);
            }
        }
    }
    free(tile);
}

void vl_imconvcol_vf(float *dst, vl_size dst_stride, float const *src,
                     vl_size src_width, vl_size src_height, vl_size src_stride,
                     float const *filt, vl_index filt_begin, vl_index filt_end,
                     int step, unsigned int flags) {
    replica_convolve_columns(dst, (size_t)dst_stride, src, (size_t)src_width, (size_t)src_height,
                             (size_t)src_stride, filt, (ptrdiff_t)filt_begin, (ptrdiff_t)filt_end,
                             step > 0 ? (size_t)step : 1, (flags & VL_PAD_MASK) == VL_PAD_BY_CONTINUITY,
                             (flags & VL_TRANSPOSE) != 0);
}
