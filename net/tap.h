// What the virtio-net data path needs from its backend: a non-blocking,
// frame-oriented fd.  TapDevice (a real Linux tap) implements it; tests
// implement it over a socketpair so that they can check exact bytes.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <span>
#include <string>

namespace tapvm::net {

// Whether the tap carries a virtio-net header in front of each frame
// (IFF_VNET_HDR), which is what makes checksum and GSO offloads possible.
enum class VnetHdrMode {
    kAuto,  // use it when the kernel and the tap support it
    kOn,    // require it
    kOff,   // do not ask for it
};

class Tap {
public:
    virtual ~Tap() = default;

    // For readiness waits only (the I/O thread polls it); never closed by
    // the caller.
    virtual int fd() const = 0;
    virtual const std::string& name() const = 0;

    // Frames cross with a virtio-net header in front (IFF_VNET_HDR).
    virtual bool has_vnet_hdr() const = 0;
    // The TUN_F_* offload flags the tap accepted when probed; 0 without a
    // vnet header.
    virtual unsigned supported_offloads() const = 0;

    // One frame per call.  Return the byte count, or -errno (-EAGAIN when
    // there is nothing to read / no room to write).  A frame longer than the
    // iovec is truncated; callers detect that with a spare tail segment.
    virtual ssize_t readv(std::span<const iovec> iov) = 0;
    virtual ssize_t writev(std::span<const iovec> iov) = 0;

    // TUNSETVNETHDRSZ and TUNSETOFFLOAD.  Return 0 or an errno value; they
    // run on a live device (driver feature negotiation, ctrl vq commands),
    // where a failure is reported to the driver, not thrown.
    virtual int set_vnet_hdr_size(int bytes) = 0;
    virtual int set_offload(unsigned tun_flags) = 0;
};

}  // namespace tapvm::net
