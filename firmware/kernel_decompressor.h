// Decompressing a bzImage payload (the compressed ELF vmlinux) in tapvm.
//
// The bzImage's own decompressor runs as guest kernel code, which on a
// nested, emulating KVM takes minutes (PLATFORM.md); doing the same work in
// tapvm with the well-kept userspace libraries takes a fraction of a second.
//
// What the kernel build puts in the payload (arch/x86/boot/compressed/
// Makefile, scripts/Makefile.lib): vmlinux.bin (+ vmlinux.relocs), compressed,
// followed — for every format except gzip — by `size_append`: the
// uncompressed size as a 4-byte little-endian trailer.  gzip needs no trailer
// because its own last 4 bytes (ISIZE, RFC 1952 §2.3.1) are that size.  So in
// every format the last 4 bytes of the payload give the decompressed size.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include "firmware/huge_page_buffer.h"

namespace tapvm::boot {

enum class PayloadFormat {
    kGzip,   // 1f 8b
    kXz,     // fd 37 7a 58 5a 00
    kLzma,   // 5d 00 00 (lzma "alone" header: lc/lp/pb = 3/0/2, dictionary size)
    kBzip2,  // "BZh"
    kLz4,    // 02 21 4c 18: lz4 legacy frame (`lz4 -l`)
    kZstd,   // 28 b5 2f fd
    kLzo,    // 89 4c 5a 4f ("\x89LZO"); no library here: not decompressed
    kUnknown,
};

const char* to_string(PayloadFormat format);

// Identifies the format from the payload's first bytes.
PayloadFormat identify_payload(std::span<const uint8_t> payload);

// Whether decompress_kernel_payload() handles this format.
bool can_decompress(PayloadFormat format);

// No kernel comes close; the bound keeps a hostile size trailer or a
// decompression bomb from exhausting tapvm's memory.
inline constexpr uint64_t kMaxDecompressedKernel = 512ull << 20;

// Decompresses a bzImage payload.  Returns nullopt when the format is one
// tapvm does not handle (lzo, unknown), so the caller can fall back to the
// kernel's own decompressor.  Throws UsageError when the payload is corrupt,
// truncated, decompresses to a size other than its trailer says, or would
// exceed `max_output` bytes.
std::optional<HugePageBuffer> decompress_kernel_payload(
    std::span<const uint8_t> payload, uint64_t max_output = kMaxDecompressedKernel);

}  // namespace tapvm::boot
