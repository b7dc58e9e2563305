// Parsing a Linux x86 bzImage (Documentation/arch/x86/boot.rst).
//
// A bzImage is: the real-mode setup code ((setup_sects + 1) * 512 bytes,
// starting with the boot sector whose setup header sits at 0x1f1), then the
// protected-mode kernel.  The protected-mode part is itself a small
// self-decompressor with the compressed vmlinux (the "payload") inside it;
// boot protocol 2.08+ says where that payload is.
#pragma once

#include <cstdint>
#include <span>

#include "firmware/boot_params.h"

namespace tapvm::boot {

// Boot protocol 2.08 added payload_offset/payload_length, which tapvm needs.
inline constexpr uint16_t kMinBootProtocol = 0x0208;
// 2.10 added pref_address and init_size.
inline constexpr uint16_t kBootProtocolPrefAddress = 0x020a;
// 2.12 added xloadflags.
inline constexpr uint16_t kBootProtocolXloadflags = 0x020c;

// Where a kernel without pref_address goes (boot.rst: "at 0x100000").
inline constexpr uint64_t kDefaultKernelLoadAddress = 0x100000;
// The 64-bit entry point is this far into the protected-mode kernel
// (boot.rst "64-bit Boot Protocol": startup_64 at load address + 0x200).
inline constexpr uint64_t kEntry64Offset = 0x200;

struct BzImage {
    // The setup header exactly as the image carries it (bytes the image does
    // not provide, past its header's end, are zero).  It is the base of the
    // zero page's hdr: boot.rst asks loaders to copy it, then fill in theirs.
    SetupHeader header{};
    uint16_t version = 0;        // boot protocol, e.g. 0x020f
    uint64_t setup_size = 0;     // real-mode part: (setup_sects or 4, + 1) * 512
    std::span<const uint8_t> protected_mode;  // everything after the setup code
    std::span<const uint8_t> payload;         // compressed vmlinux, inside protected_mode

    // Protocol 2.12+ with XLF_KERNEL_64: startup_64 at load address + 0x200.
    bool has_64bit_entry() const {
        return version >= kBootProtocolXloadflags && (header.xloadflags & kXlfKernel64) != 0;
    }
    bool relocatable() const { return header.relocatable_kernel != 0; }
    // Protocol 2.10+: where the kernel would like to be loaded; 1 MiB before.
    uint64_t preferred_load_address() const;
    // Protocol 2.10+: bytes the kernel needs from its load address to run its
    // decompressor in place; 0 when the image is too old to say.
    uint32_t init_size() const;
};

// True when the buffer is big enough to hold a setup header and carries the
// "HdrS" magic; says nothing about whether the rest is valid.
bool has_bzimage_magic(std::span<const uint8_t> image);

// Parses and validates the header.  The returned spans point into `image`,
// which must outlive the result.  Throws UsageError with a message naming the
// problem ("not a bzImage: missing HdrS magic", "boot protocol 2.04 is too
// old...", "payload lies outside the image", ...).
BzImage parse_bzimage(std::span<const uint8_t> image);

}  // namespace tapvm::boot
