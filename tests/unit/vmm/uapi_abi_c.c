/* The KVM uapi as a C compiler sees it: the ioctl numbers and struct layouts
 * that the kernel was built against.  uapi_abi_test.cpp compares these with
 * what tapvm's C++ code computes through vmm/uapi/kvm.h.  Plain C, so the
 * headers are used exactly as their authors intended. */
#include <stddef.h>
#include <linux/kvm.h>

#include "uapi_abi_c.h"

#define UAPI_IOCTL(name) { #name, (unsigned long)(name) },
#define UAPI_LAYOUT(type, member)
const struct uapi_ioctl uapi_c_ioctls[] = {
#include "uapi_abi_list.h"
};
const unsigned uapi_c_ioctl_count = sizeof uapi_c_ioctls / sizeof uapi_c_ioctls[0];
#undef UAPI_IOCTL
#undef UAPI_LAYOUT

#define UAPI_IOCTL(name)
#define UAPI_LAYOUT(type, member) { #type, sizeof(struct type), offsetof(struct type, member) },
const struct uapi_layout uapi_c_layouts[] = {
#include "uapi_abi_list.h"
};
const unsigned uapi_c_layout_count = sizeof uapi_c_layouts / sizeof uapi_c_layouts[0];
