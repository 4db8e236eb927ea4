#include <vl/generic.h>
#include <vl/sift.h>

// The filter's current difference-of-Gaussians octave is a field Swift can read, but its layout (levels
// s_min to s_max - 1, each octave_width × octave_height floats) is VLFeat's; this keeps that knowledge here.

/// The DoG value at integer octave coordinates (ix, iy) and level is of the filter's current octave.
static inline float replica_sift_dog_at(const VlSiftFilt *filter, int ix, int iy, int is) {
    const int width = filter->octave_width;
    const int height = filter->octave_height;
    return filter->dog[(size_t)(is - filter->s_min) * (size_t)width * (size_t)height
                       + (size_t)iy * (size_t)width + (size_t)ix];
}
