// The x86 Linux "zero page": struct boot_params and its setup header, as the
// kernel defines them in arch/x86/include/uapi/asm/bootparam.h and documents
// them in Documentation/arch/x86/boot.rst and zero-page.rst.
//
// Our own definitions (kernel headers are not a userspace dependency), packed
// and pinned byte for byte with static_asserts: the kernel reads this page at
// fixed offsets, so a wrong offset is a silent boot failure, not a compile
// error, unless we check it here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tapvm::boot {

// "HdrS" read as a little-endian u32 at offset 0x202 of a bzImage.
inline constexpr uint32_t kHdrSMagic = 0x53726448;
inline constexpr uint16_t kBootFlagMagic = 0xaa55;    // at 0x1fe
inline constexpr uint8_t kLoaderTypeUndefined = 0xff; // boot.rst: "no assigned id"
inline constexpr uint16_t kVidModeNormal = 0xffff;    // boot.rst: vid_mode "normal"

// The setup header starts at this offset in both the bzImage and boot_params.
inline constexpr size_t kSetupHeaderOffset = 0x1f1;

// hdr.loadflags (boot.rst "loadflags").
inline constexpr uint8_t kLoadedHigh = 1u << 0;       // protected-mode code at 0x100000
inline constexpr uint8_t kKaslrFlag = 1u << 1;        // set by the kernel itself
inline constexpr uint8_t kQuietFlag = 1u << 5;
inline constexpr uint8_t kKeepSegments = 1u << 6;     // obsolete (32-bit entry only)
inline constexpr uint8_t kCanUseHeap = 1u << 7;

// hdr.xloadflags (protocol 2.12+).
inline constexpr uint16_t kXlfKernel64 = 1u << 0;     // 64-bit entry at load address + 0x200
inline constexpr uint16_t kXlfCanBeLoadedAbove4G = 1u << 1;
inline constexpr uint16_t kXlfEfiHandover32 = 1u << 2;
inline constexpr uint16_t kXlfEfiHandover64 = 1u << 3;
inline constexpr uint16_t kXlfEfiKexec = 1u << 4;

// boot_params.e820_table holds at most this many entries (E820_MAX_ENTRIES_ZEROPAGE).
inline constexpr size_t kMaxZeroPageE820Entries = 128;

#pragma pack(push, 1)

struct SetupHeader {
    uint8_t setup_sects;          // 0x1f1
    uint16_t root_flags;          // 0x1f2
    uint32_t syssize;             // 0x1f4
    uint16_t ram_size;            // 0x1f8
    uint16_t vid_mode;            // 0x1fa
    uint16_t root_dev;            // 0x1fc
    uint16_t boot_flag;           // 0x1fe
    uint16_t jump;                // 0x200
    uint32_t header;              // 0x202
    uint16_t version;             // 0x206
    uint32_t realmode_swtch;      // 0x208
    uint16_t start_sys_seg;       // 0x20c
    uint16_t kernel_version;      // 0x20e
    uint8_t type_of_loader;       // 0x210
    uint8_t loadflags;            // 0x211
    uint16_t setup_move_size;     // 0x212
    uint32_t code32_start;        // 0x214
    uint32_t ramdisk_image;       // 0x218
    uint32_t ramdisk_size;        // 0x21c
    uint32_t bootsect_kludge;     // 0x220
    uint16_t heap_end_ptr;        // 0x224
    uint8_t ext_loader_ver;       // 0x226
    uint8_t ext_loader_type;      // 0x227
    uint32_t cmd_line_ptr;        // 0x228
    uint32_t initrd_addr_max;     // 0x22c
    uint32_t kernel_alignment;    // 0x230
    uint8_t relocatable_kernel;   // 0x234
    uint8_t min_alignment;        // 0x235
    uint16_t xloadflags;          // 0x236
    uint32_t cmdline_size;        // 0x238
    uint32_t hardware_subarch;    // 0x23c
    uint64_t hardware_subarch_data;  // 0x240
    uint32_t payload_offset;      // 0x248
    uint32_t payload_length;      // 0x24c
    uint64_t setup_data;          // 0x250
    uint64_t pref_address;        // 0x258
    uint32_t init_size;           // 0x260
    uint32_t handover_offset;     // 0x264
    uint32_t kernel_info_offset;  // 0x268
};

struct E820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
};

struct BootParams {
    uint8_t screen_info[0x40];        // 0x000
    uint8_t apm_bios_info[0x14];      // 0x040
    uint8_t pad2[4];                  // 0x054
    uint64_t tboot_addr;              // 0x058
    uint8_t ist_info[0x10];           // 0x060
    uint64_t acpi_rsdp_addr;          // 0x070
    uint8_t pad3[8];                  // 0x078
    uint8_t hd0_info[16];             // 0x080
    uint8_t hd1_info[16];             // 0x090
    uint8_t sys_desc_table[0x10];     // 0x0a0
    uint8_t olpc_ofw_header[0x10];    // 0x0b0
    uint32_t ext_ramdisk_image;       // 0x0c0
    uint32_t ext_ramdisk_size;        // 0x0c4
    uint32_t ext_cmd_line_ptr;        // 0x0c8
    uint8_t pad4[112];                // 0x0cc
    uint32_t cc_blob_address;         // 0x13c
    uint8_t edid_info[0x80];          // 0x140
    uint8_t efi_info[0x20];           // 0x1c0
    uint32_t alt_mem_k;               // 0x1e0
    uint32_t scratch;                 // 0x1e4
    uint8_t e820_entries;             // 0x1e8
    uint8_t eddbuf_entries;           // 0x1e9
    uint8_t edd_mbr_sig_buf_entries;  // 0x1ea
    uint8_t kbd_status;               // 0x1eb
    uint8_t secure_boot;              // 0x1ec
    uint8_t pad5[2];                  // 0x1ed
    // Non-zero tells the kernel that the loader did not clear this page and
    // makes it wipe fields itself (sanitize_boot_params); we always clear it.
    uint8_t sentinel;                 // 0x1ef
    uint8_t pad6[1];                  // 0x1f0
    SetupHeader hdr;                  // 0x1f1
    uint8_t pad7[0x290 - 0x1f1 - sizeof(SetupHeader)];
    uint32_t edd_mbr_sig_buffer[16];  // 0x290
    E820Entry e820_table[kMaxZeroPageE820Entries];  // 0x2d0
    uint8_t pad8[48];                 // 0xcd0
    uint8_t eddbuf[6 * 82];           // 0xd00: struct edd_info[EDDMAXNR]
    uint8_t pad9[276];                // 0xeec
};

#pragma pack(pop)

// --- Layout checks against bootparam.h ---------------------------------------
static_assert(sizeof(E820Entry) == 20);
static_assert(sizeof(SetupHeader) == 0x26c - kSetupHeaderOffset);
static_assert(sizeof(BootParams) == 4096);

// Setup header offsets are given in boot.rst relative to the start of the
// image; check them relative to boot_params, which places hdr at 0x1f1.
#define TAPVM_HDR_AT(field, off) \
    static_assert(offsetof(BootParams, hdr) + offsetof(SetupHeader, field) == (off))
TAPVM_HDR_AT(setup_sects, 0x1f1);
TAPVM_HDR_AT(boot_flag, 0x1fe);
TAPVM_HDR_AT(jump, 0x200);
TAPVM_HDR_AT(header, 0x202);
TAPVM_HDR_AT(version, 0x206);
TAPVM_HDR_AT(type_of_loader, 0x210);
TAPVM_HDR_AT(loadflags, 0x211);
TAPVM_HDR_AT(code32_start, 0x214);
TAPVM_HDR_AT(ramdisk_image, 0x218);
TAPVM_HDR_AT(ramdisk_size, 0x21c);
TAPVM_HDR_AT(heap_end_ptr, 0x224);
TAPVM_HDR_AT(cmd_line_ptr, 0x228);
TAPVM_HDR_AT(initrd_addr_max, 0x22c);
TAPVM_HDR_AT(kernel_alignment, 0x230);
TAPVM_HDR_AT(relocatable_kernel, 0x234);
TAPVM_HDR_AT(xloadflags, 0x236);
TAPVM_HDR_AT(cmdline_size, 0x238);
TAPVM_HDR_AT(payload_offset, 0x248);
TAPVM_HDR_AT(payload_length, 0x24c);
TAPVM_HDR_AT(setup_data, 0x250);
TAPVM_HDR_AT(pref_address, 0x258);
TAPVM_HDR_AT(init_size, 0x260);
TAPVM_HDR_AT(kernel_info_offset, 0x268);
#undef TAPVM_HDR_AT

static_assert(offsetof(BootParams, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(BootParams, ext_ramdisk_image) == 0x0c0);
static_assert(offsetof(BootParams, ext_ramdisk_size) == 0x0c4);
static_assert(offsetof(BootParams, ext_cmd_line_ptr) == 0x0c8);
static_assert(offsetof(BootParams, cc_blob_address) == 0x13c);
static_assert(offsetof(BootParams, e820_entries) == 0x1e8);
static_assert(offsetof(BootParams, sentinel) == 0x1ef);
static_assert(offsetof(BootParams, edd_mbr_sig_buffer) == 0x290);
static_assert(offsetof(BootParams, e820_table) == 0x2d0);
static_assert(offsetof(BootParams, eddbuf) == 0xd00);

}  // namespace tapvm::boot
