#include <fcntl.h>
#include <stdio.h>

// glibc declares renameat2 only under _GNU_SOURCE, which Swift's Glibc module is not built with.
extern int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

// Renames like rename(2), but fails with EEXIST instead of replacing what is at `to` (Linux 3.15+).
static inline int replica_rename_noreplace(const char *from, const char *to) {
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, 1u /* RENAME_NOREPLACE */);
}
