// A hook that sees every frame the data path moves, without the virtio-net
// header: used for packet capture (pcap=PATH).  Called on the I/O thread,
// after the frame has crossed, with the iovec it crossed in.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <span>

namespace tapvm::net {

enum class FrameDirection {
    kGuestToHost,  // TX: the guest sent it
    kHostToGuest,  // RX: the guest received it
};

class FrameObserver {
public:
    virtual ~FrameObserver() = default;
    // The frame is `length` bytes of `iov` starting `skip` bytes in.
    virtual void on_frame(FrameDirection direction, std::span<const iovec> iov, size_t skip,
                          size_t length) = 0;
};

}  // namespace tapvm::net
