#include <stddef.h>
#include <libexif/exif-data.h>
#include <libexif/exif-entry.h>
#include <libexif/exif-tag.h>
#include <libexif/exif-utils.h>
#include <libexif/exif-loader.h>

// ExifData's `ifd` is a C array, which Swift sees as a tuple; these index it with a bounds check.
static inline ExifContent *replica_exif_content(ExifData *data, ExifIfd ifd) {
    if (!data || (int)ifd < 0 || ifd >= EXIF_IFD_COUNT) return NULL;
    return data->ifd[ifd];
}

static inline ExifEntry *replica_exif_entry(ExifData *data, ExifIfd ifd, ExifTag tag) {
    ExifContent *content = replica_exif_content(data, ifd);
    return content ? exif_content_get_entry(content, tag) : NULL;
}
