// Putting a Linux kernel into guest RAM, whatever form it comes in:
//
//  (a) an ELF vmlinux: its segments are loaded, and the guest enters
//      startup_64 (e_entry) in 64-bit mode;
//  (b) a bzImage whose payload tapvm can decompress: the payload is the ELF
//      vmlinux, loaded as in (a).  This skips the bzImage's own decompressor,
//      which is slow guest kernel code on an emulating KVM (PLATFORM.md);
//  (c) any other bzImage: the protected-mode part is copied to its preferred
//      address and the guest enters the 64-bit boot protocol entry point at
//      load address + 0x200 (boot.rst "64-bit Boot Protocol"); the kernel
//      decompresses itself.
//
// The result carries the setup header the zero page must start from
// (boot.rst: copy the kernel's header, then fill in the loader's fields).
#pragma once

#include <cstdint>
#include <span>

#include "firmware/boot_params.h"
#include "firmware/kernel_decompressor.h"
#include "vmm/guest_memory.h"

namespace tapvm::boot {

enum class KernelBootPath {
    kElf,                // (a) ELF vmlinux given directly
    kDecompressedBzImage,  // (b) bzImage payload decompressed by tapvm, ELF entry
    kBzImage64,          // (c) bzImage, 64-bit boot protocol entry, kernel decompresses itself
};

const char* to_string(KernelBootPath path);

struct KernelLoadOptions {
    // false forces path (c) for every bzImage (e.g. to compare against the
    // kernel's own decompressor, or for KASLR, which only it performs).
    bool decompress_bzimage = true;
};

struct LoadedKernel {
    KernelBootPath path = KernelBootPath::kElf;
    PayloadFormat payload_format = PayloadFormat::kUnknown;  // bzImage paths only
    Gpa entry = 0;          // physical RIP at which the vCPU starts, in 64-bit mode
    Gpa load_address = 0;   // lowest guest byte the kernel occupies
    // First byte after the memory the kernel needs at boot: the end of the
    // loaded segments, or on path (c) load_address + max(image, init_size),
    // the room its in-place decompressor works in.  The initrd goes above.
    Gpa end = 0;
    uint32_t init_size = 0;  // from the bzImage header (protocol 2.10+); 0 if unknown
    // The base of boot_params.hdr: the bzImage's own header, or for an ELF
    // given directly one that tapvm makes up (see kernel_loader.cpp).
    SetupHeader header{};
};

// Loads `image_bytes` (a vmlinux ELF or a bzImage) into guest RAM.  Throws
// UsageError when the image is neither, is malformed, lacks a 64-bit entry
// point, or does not fit in guest RAM.
LoadedKernel load_kernel(const GuestMemory& memory, std::span<const uint8_t> image_bytes,
                         const KernelLoadOptions& options = {});

// The setup header tapvm gives a kernel that came as a bare ELF (no bzImage
// header to copy).  Exposed for tests.
SetupHeader make_elf_setup_header();

}  // namespace tapvm::boot
