/* The KVM uapi as a C compiler sees it: the ioctl numbers and struct layouts
 * that the kernel was built against.  uapi_abi_test.cpp compares these with
 * what tapvm's C++ code computes through vmm/uapi/kvm.h.  Plain C, so the
 * headers are used exactly as their authors intended. */
#include <stddef.h>
#include <linux/kvm.h>

#include "uapi_abi_c.h"

#define IOCTL(name) { #name, (unsigned long)(name) }
const struct uapi_ioctl uapi_c_ioctls[] = {
    IOCTL(KVM_GET_API_VERSION), IOCTL(KVM_CREATE_VM), IOCTL(KVM_CHECK_EXTENSION),
    IOCTL(KVM_GET_VCPU_MMAP_SIZE), IOCTL(KVM_GET_SUPPORTED_CPUID), IOCTL(KVM_GET_MSR_INDEX_LIST),
    IOCTL(KVM_CREATE_VCPU), IOCTL(KVM_SET_USER_MEMORY_REGION), IOCTL(KVM_SET_TSS_ADDR),
    IOCTL(KVM_SET_IDENTITY_MAP_ADDR), IOCTL(KVM_CREATE_IRQCHIP), IOCTL(KVM_CREATE_PIT2),
    IOCTL(KVM_IRQ_LINE), IOCTL(KVM_SET_GSI_ROUTING), IOCTL(KVM_IRQFD), IOCTL(KVM_IOEVENTFD),
    IOCTL(KVM_RUN), IOCTL(KVM_GET_REGS), IOCTL(KVM_SET_REGS), IOCTL(KVM_GET_SREGS),
    IOCTL(KVM_SET_SREGS), IOCTL(KVM_TRANSLATE), IOCTL(KVM_GET_MSRS), IOCTL(KVM_SET_MSRS),
    IOCTL(KVM_SET_CPUID2), IOCTL(KVM_GET_CPUID2), IOCTL(KVM_SET_SIGNAL_MASK), IOCTL(KVM_GET_FPU),
    IOCTL(KVM_SET_FPU), IOCTL(KVM_GET_LAPIC), IOCTL(KVM_SET_LAPIC), IOCTL(KVM_GET_MP_STATE),
    IOCTL(KVM_SET_MP_STATE), IOCTL(KVM_GET_VCPU_EVENTS), IOCTL(KVM_SET_VCPU_EVENTS),
    IOCTL(KVM_GET_XSAVE), IOCTL(KVM_SET_XSAVE), IOCTL(KVM_GET_REG_LIST),
    IOCTL(KVM_SET_PMU_EVENT_FILTER), IOCTL(KVM_SET_GUEST_DEBUG),
};
const unsigned uapi_c_ioctl_count = sizeof uapi_c_ioctls / sizeof uapi_c_ioctls[0];

#define LAYOUT(type, member) { #type, sizeof(struct type), offsetof(struct type, member) }
const struct uapi_layout uapi_c_layouts[] = {
    LAYOUT(kvm_cpuid2, entries), LAYOUT(kvm_cpuid, entries), LAYOUT(kvm_msrs, entries),
    LAYOUT(kvm_msr_list, indices), LAYOUT(kvm_irq_routing, entries),
    LAYOUT(kvm_signal_mask, sigset), LAYOUT(kvm_reg_list, reg),
    LAYOUT(kvm_coalesced_mmio_ring, coalesced_mmio), LAYOUT(kvm_xsave, extra),
    LAYOUT(kvm_pmu_event_filter, events),
};
const unsigned uapi_c_layout_count = sizeof uapi_c_layouts / sizeof uapi_c_layouts[0];
