// Empty: the header declares libFuzzer's LLVMFuzzerRunDriver, linked in by -sanitize=fuzzer.
#include "fuzz_driver.h"
