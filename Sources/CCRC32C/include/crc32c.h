#ifndef KEIJI_CRC32C_H
#define KEIJI_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Extends `crc` (start with 0) by `length` bytes of `data` using CRC-32C (Castagnoli).
/// Uses the SSE4.2 / ARMv8 CRC32 instructions when the CPU has them, a slicing-by-8 table otherwise.
uint32_t keiji_crc32c_extend(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware path is in use, 0 for the portable table path.
int keiji_crc32c_is_hardware_accelerated(void);

#endif
