// libFuzzer's driver, as its runtime (linked by -sanitize=fuzzer) exports it. Declared here because SwiftPM
// points an executable's `main` at `<module>_main`, so each target starts the driver itself.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
