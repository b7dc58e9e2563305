// The one way tapvm includes the KVM uapi headers (<linux/kvm.h> and, through
// it, <asm/kvm.h>).  Never include those directly: include this.
//
// Why: Debian bookworm's 6.1 uapi <linux/stddef.h> declares flexible array
// members through __DECLARE_FLEX_ARRAY as
//     struct { struct { } __empty_NAME; TYPE NAME[]; }
// An empty struct has size 0 in C (GNU extension) but size 1 in C++, so in a
// C++ translation unit every struct built that way grows and its array moves:
// struct kvm_cpuid2 becomes 12 bytes with `entries` at offset 12 instead of 8.
// The _IOR/_IOW/_IOWR ioctl numbers encode sizeof(struct), so KVM_SET_CPUID2,
// KVM_GET_SUPPORTED_CPUID, KVM_SET_MSRS, KVM_SET_GSI_ROUTING, KVM_GET_XSAVE and
// friends become numbers the kernel does not know (EINVAL/ENOTTY), and where
// one happened to match, the kernel would read entries 4 bytes off.  Later
// kernels define the macro for C++ as a zero-length array; do the same here,
// before <linux/kvm.h> first expands it (macros expand at the point of use,
// so it does not matter whether <linux/stddef.h> was already included).
//
// The static_asserts pin each variable-length struct tapvm uses to its C
// layout (sizeof and the array's offset), so a header that changes the layout
// fails the build instead of the first ioctl.  tests/unit/vmm/uapi_abi_test
// also compares the ioctl numbers with what a C compiler computes.
#pragma once

#if defined(__LINUX_KVM_H) && !defined(TAPVM_UAPI_KVM_H)
#error "<linux/kvm.h> was included before vmm/uapi/kvm.h; include only vmm/uapi/kvm.h"
#endif
#define TAPVM_UAPI_KVM_H 1

#include <linux/stddef.h>

#ifdef __cplusplus
#undef __DECLARE_FLEX_ARRAY
#define __DECLARE_FLEX_ARRAY(TYPE, NAME) TYPE NAME[0]
#endif

#include <linux/kvm.h>

#ifdef __cplusplus
#include <cstddef>

namespace tapvm::uapi_layout {
// Sizes and offsets as the C compiler lays these structs out (x86-64 ABI).
static_assert(sizeof(kvm_cpuid2) == 8 && offsetof(kvm_cpuid2, entries) == 8);
static_assert(sizeof(kvm_cpuid) == 8 && offsetof(kvm_cpuid, entries) == 8);
static_assert(sizeof(kvm_msrs) == 8 && offsetof(kvm_msrs, entries) == 8);
static_assert(sizeof(kvm_msr_list) == 4 && offsetof(kvm_msr_list, indices) == 4);
static_assert(sizeof(kvm_irq_routing) == 8 && offsetof(kvm_irq_routing, entries) == 8);
static_assert(sizeof(kvm_signal_mask) == 4 && offsetof(kvm_signal_mask, sigset) == 4);
static_assert(sizeof(kvm_reg_list) == 8 && offsetof(kvm_reg_list, reg) == 8);
static_assert(sizeof(kvm_coalesced_mmio_ring) == 8 &&
              offsetof(kvm_coalesced_mmio_ring, coalesced_mmio) == 8);
static_assert(sizeof(kvm_xsave) == 4096 && offsetof(kvm_xsave, extra) == 4096);
static_assert(sizeof(kvm_pmu_event_filter) == 32 && offsetof(kvm_pmu_event_filter, events) == 32);
// Fixed-size structs whose size is part of an ioctl number tapvm uses.
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);
static_assert(sizeof(kvm_irq_routing_entry) == 48);
}  // namespace tapvm::uapi_layout
#endif
