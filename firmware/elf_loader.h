// Loading an ELF64 x86-64 executable (a Linux vmlinux) into guest RAM.
//
// Segments go to their *physical* addresses (p_paddr): a vmlinux is linked
// at virtual 0xffffffff81000000-ish but meant to run, before it turns paging
// on for itself, from physical CONFIG_PHYSICAL_START (16 MiB on Debian).
#pragma once

#include <cstdint>
#include <span>

#include "vmm/guest_memory.h"

namespace tapvm::boot {

struct ElfImage {
    Gpa entry = 0;          // physical address of the entry point
    Gpa lowest = 0;         // lowest p_paddr of a PT_LOAD segment
    Gpa end = 0;            // highest p_paddr + p_memsz: first byte after the kernel
};

// True when the buffer starts with the ELF magic (0x7f 'E' 'L' 'F').
bool has_elf_magic(std::span<const uint8_t> bytes);

// Validates the ELF header and every PT_LOAD (p_filesz <= p_memsz, file
// bytes inside the file, memory inside one guest RAM region at or above
// 1 MiB, no two segments overlapping), then copies each segment and
// zero-fills it up to p_memsz.  Nothing is written unless every segment is
// valid.  Throws UsageError naming the first problem.
ElfImage load_elf(const GuestMemory& memory, std::span<const uint8_t> elf);

}  // namespace tapvm::boot
