/* Shared by uapi_abi_c.c (compiled as C) and uapi_abi_test.cpp. */
#pragma once
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
struct uapi_ioctl { const char* name; unsigned long number; };
struct uapi_layout { const char* type; size_t size; size_t array_offset; };
extern const struct uapi_ioctl uapi_c_ioctls[];
extern const unsigned uapi_c_ioctl_count;
extern const struct uapi_layout uapi_c_layouts[];
extern const unsigned uapi_c_layout_count;
#ifdef __cplusplus
}
#endif
