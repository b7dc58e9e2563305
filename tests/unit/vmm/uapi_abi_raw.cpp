// <linux/kvm.h> included the way tapvm used to, straight into C++, with the
// header's own __DECLARE_FLEX_ARRAY: uapi_abi_test shows that its comparison
// with the C compiler's view catches exactly what this gets wrong.  The only
// C++ file allowed to include <linux/kvm.h> directly.
#include <linux/kvm.h>

#include "uapi_abi_c.h"

extern "C" {
extern const struct uapi_ioctl uapi_raw_cxx_ioctls[] = {
    {"KVM_GET_SUPPORTED_CPUID", KVM_GET_SUPPORTED_CPUID},
    {"KVM_SET_CPUID2", KVM_SET_CPUID2},
    {"KVM_SET_MSRS", KVM_SET_MSRS},
    {"KVM_SET_GSI_ROUTING", KVM_SET_GSI_ROUTING},
};
extern const unsigned uapi_raw_cxx_ioctl_count = sizeof uapi_raw_cxx_ioctls / sizeof uapi_raw_cxx_ioctls[0];
extern const size_t uapi_raw_cxx_sizeof_kvm_cpuid2 = sizeof(struct kvm_cpuid2);
}
