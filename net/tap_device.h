// A Linux tap interface (drivers/net/tun.c) opened through /dev/net/tun, or
// handed over as an fd by a manager such as libvirt or a CNI plugin.
//
// The fd is non-blocking and close-on-exec.  With IFF_VNET_HDR every frame
// crosses with a virtio-net header in front, which is what lets the guest's
// checksum and segmentation offloads pass through unchanged; tapvm uses it
// when the kernel reports it in TUNGETFEATURES (the probe libvirt and
// Ganeti do) and the user did not say vnet_hdr=off.
//
// The tap's offloads are device-wide state that outlives tapvm on a
// persistent tap, so the destructor (and reset_offloads()) turns them off.
#pragma once

#include <memory>
#include <string>

#include "net/tap.h"
#include "vmm/unique_fd.h"

namespace tapvm::net {

class TapDevice final : public Tap {
public:
    // Attaches to tap `name`, creating it when it does not exist (a name
    // with "%d" lets the kernel number it).  Throws UsageError with one
    // line, e.g. "tap tap0: TUNSETIFF: Operation not permitted (...)".
    static std::unique_ptr<TapDevice> open(const std::string& name, VnetHdrMode mode);

    // Works on a duplicate of `fd` (which stays open, close-on-exec, for a
    // later adopt after a machine restart); `fd` must already be attached
    // to a tap (IFF_TAP) without packet information (IFF_NO_PI).  Its flags are fixed,
    // so with vnet_hdr=on it must have IFF_VNET_HDR; with vnet_hdr=off a fd
    // that has it keeps the header but offers no offloads.
    static std::unique_ptr<TapDevice> adopt(int fd, VnetHdrMode mode);

    ~TapDevice() override;
    TapDevice(const TapDevice&) = delete;
    TapDevice& operator=(const TapDevice&) = delete;

    int fd() const override { return fd_.get(); }
    const std::string& name() const override { return name_; }
    bool has_vnet_hdr() const override { return vnet_hdr_; }
    unsigned supported_offloads() const override { return supported_offloads_; }

    ssize_t readv(std::span<const iovec> iov) override;
    ssize_t writev(std::span<const iovec> iov) override;
    int set_vnet_hdr_size(int bytes) override;
    int set_offload(unsigned tun_flags) override;

    // TUNSETOFFLOAD 0: the tap hands over plain, fully checksummed frames.
    int reset_offloads() { return set_offload(0); }

    // The interface index in tapvm's network namespace; 0 when the
    // interface is not visible there (an fd handed over from another one).
    int ifindex() const;
    // IFF_* flags the kernel's tun driver supports (TUNGETFEATURES).
    unsigned kernel_features() const { return kernel_features_; }
    // IFF_* flags of this tap (TUNGETIFF).
    unsigned tap_flags() const;

private:
    TapDevice(UniqueFd fd, std::string label);
    void query_kernel_features();
    void probe_offloads();

    UniqueFd fd_;
    std::string label_;  // "tap tap0" or "tap fd 5", for messages
    std::string name_;
    unsigned kernel_features_ = 0;
    bool vnet_hdr_ = false;
    unsigned supported_offloads_ = 0;
};

}  // namespace tapvm::net
