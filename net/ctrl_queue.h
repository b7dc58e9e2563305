// The control virtqueue (virtio 1.2 §5.1.6.5).  Each chain is one command:
//
//   device-readable:  u8 class, u8 command, command-specific data
//   device-writable:  u8 ack   (VIRTIO_NET_OK / VIRTIO_NET_ERR)
//
// tapvm never assumes how the driver split that into descriptors (§2.6.4
// message framing): the readable bytes are read as one stream.  Supported:
//   RX     PROMISC, ALLMULTI              (CTRL_RX)         state is recorded
//   MAC    TABLE_SET                      (CTRL_RX)         tables recorded
//          ADDR_SET                       (CTRL_MAC_ADDR)   updates config.mac
//   GUEST_OFFLOADS  OFFLOADS_SET (CTRL_GUEST_OFFLOADS)      TUNSETOFFLOAD live
// Anything else — an unknown class or command, a feature that was not
// negotiated, a length that does not match — is answered VIRTIO_NET_ERR.
// A chain without a writable byte for the ack cannot be answered: it is
// returned with length 0 and counted.
//
// The tap delivers every frame regardless: the RX mode and MAC tables are
// advice for a filter tapvm does not need (the guest's stack filters too),
// kept for the stats API and tests.
#pragma once

#include <cstdint>
#include <vector>

#include "net/mac_address.h"
#include "net/net_stats.h"
#include "virtio/split_queue.h"
#include "virtio/virtio_device.h"

namespace tapvm::net {

// Classes and commands (include/uapi/linux/virtio_net.h).
inline constexpr uint8_t kCtrlRx = 0;
inline constexpr uint8_t kCtrlRxPromisc = 0;
inline constexpr uint8_t kCtrlRxAllmulti = 1;
inline constexpr uint8_t kCtrlMac = 1;
inline constexpr uint8_t kCtrlMacTableSet = 0;
inline constexpr uint8_t kCtrlMacAddrSet = 1;
inline constexpr uint8_t kCtrlVlan = 2;
inline constexpr uint8_t kCtrlAnnounce = 3;
inline constexpr uint8_t kCtrlMq = 4;
inline constexpr uint8_t kCtrlGuestOffloads = 5;
inline constexpr uint8_t kCtrlGuestOffloadsSet = 0;
inline constexpr uint8_t kCtrlAckOk = 0;
inline constexpr uint8_t kCtrlAckErr = 1;

// Entries kept per MAC table; longer tables are acknowledged and flagged
// as overflowed (the way QEMU treats them), never stored without bound.
inline constexpr size_t kMacTableMax = 64;

struct RxFilter {
    bool promisc = true;  // until the driver says otherwise, deliver everything
    bool allmulti = false;
    std::vector<MacAddress> unicast;
    std::vector<MacAddress> multicast;
    bool unicast_overflow = false;
    bool multicast_overflow = false;
};

// What a command changes outside the ctrl queue.  Called on the I/O thread.
class CtrlActions {
public:
    virtual ~CtrlActions() = default;
    virtual void set_mac(const MacAddress& mac) = 0;
    // `offloads` is a subset of the negotiated GUEST_* bits (already
    // checked).  Return false when the tap refused it.
    virtual bool set_guest_offloads(uint64_t offloads) = 0;
};

class CtrlQueue {
public:
    CtrlQueue(virtio::SplitQueue& queue, virtio::VirtioInterrupt& interrupt, uint16_t queue_index,
              uint64_t features, CtrlActions& actions, CtrlStats& stats);

    // kMore: the pass's budget is used up; call again soon.
    enum class Result { kIdle, kMore, kBroken };
    static constexpr unsigned kBudget = 64;  // chains per process() call, answered or dropped
    // Answers the available commands, up to the budget; publishes and
    // signals once.
    Result process();

    const RxFilter& rx_filter() const { return filter_; }

private:
    class Reader;
    uint8_t execute(Reader& in);
    uint8_t rx_command(uint8_t command, Reader& in);
    uint8_t mac_command(uint8_t command, Reader& in);
    uint8_t offloads_command(uint8_t command, Reader& in);
    bool read_mac_table(Reader& in, std::vector<MacAddress>& table, bool& overflow);
    void answer(virtio::DescriptorChain& chain);

    virtio::SplitQueue& queue_;
    virtio::VirtioInterrupt& interrupt_;
    const uint16_t queue_index_;
    const uint64_t features_;
    CtrlActions& actions_;
    CtrlStats& stats_;
    RxFilter filter_;
    virtio::DescriptorChain chain_;
};

}  // namespace tapvm::net
