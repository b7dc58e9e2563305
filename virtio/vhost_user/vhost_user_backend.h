// A virtio device served to a vhost-user frontend (QEMU, Cloud Hypervisor,
// crosvm...): the frontend runs the guest and the virtio-pci transport; this
// backend runs the device's data path on the guest's rings in memory the
// frontend shares.  It speaks the backend side of QEMU's
// docs/interop/vhost-user.rst for one device with a fixed queue count.
//
// Everything the frontend sends is checked: memory regions (count, fds,
// alignment), ring indexes, sizes and placements (SplitQueue::create checks
// every ring against the shared memory), feature bits against the offer.  A
// request that cannot be honoured fails (with REPLY_ACK the frontend learns
// so) and is logged; the device only ever runs on a complete, valid set-up.
//
// Life of a ring: SET_VRING_NUM/ADDR/BASE configure it, SET_VRING_KICK
// starts it, SET_VRING_ENABLE (once protocol features are negotiated)
// enables it, GET_VRING_BASE stops it and reports where it stopped.  The
// device is activated once every one of its rings is started and enabled,
// and reset as soon as any of them stops or memory changes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "virtio/split_queue.h"
#include "virtio/vhost_user/vhost_user_channel.h"
#include "virtio/virtio_device.h"
#include "vmm/guest_memory.h"
#include "vmm/log_limiter.h"

namespace tapvm::virtio::vhost_user {

class VhostUserBackend {
public:
    explicit VhostUserBackend(VirtioDevice& device);
    ~VhostUserBackend();
    VhostUserBackend(const VhostUserBackend&) = delete;
    VhostUserBackend& operator=(const VhostUserBackend&) = delete;

    // Handles one request and sends its reply (if it has one) on `channel`.
    // Returns false when the frontend broke the protocol so badly that the
    // connection must be dropped (logged).
    bool handle(Message& message, Channel& channel);

    // The frontend went away: stop the device, forget memory, rings and
    // features, ready for the next connection.
    void disconnect();

    // A ring broke (the device calls this; any thread): tell the frontend
    // through the rings' error eventfds.
    void report_ring_error();

    bool running() const { return running_; }

private:
    mutable LogLimiter peer_log_;  // lines a frontend can trigger (vmm/log_limiter.h)
    struct Ring {
        uint16_t num = 0;
        std::optional<VringAddress> address;
        uint16_t base = 0;       // where the ring resumes / stopped
        UniqueFd kick;
        bool started = false;    // a kick fd came since the last stop
        bool enabled = false;    // SET_VRING_ENABLE
        std::unique_ptr<SplitQueue> queue;  // while the device runs
    };

    // The frontend's call (and error) eventfds; swapped under the lock while
    // the device's I/O thread may be signalling.
    class Signals : public VirtioInterrupt {
    public:
        explicit Signals(size_t rings) : call_(rings), error_(rings) {}
        void signal_queue(uint16_t queue_index) override;
        void signal_config() override {}  // no config-change channel is negotiated
        void set_call(size_t ring, UniqueFd fd);
        void set_error(size_t ring, UniqueFd fd);
        void signal_errors();
        void clear();

    private:
        std::mutex mutex_;
        std::vector<UniqueFd> call_;
        std::vector<UniqueFd> error_;
    };

    // What one request did: failed (with a reason to log) or succeeded,
    // with or without a payload to send back.
    struct Outcome {
        bool ok = true;
        std::string why;
        std::optional<std::vector<uint8_t>> reply;
    };

    Outcome dispatch(Message& message);
    Outcome set_features(uint64_t features);
    Outcome set_protocol_features(uint64_t features);
    Outcome set_mem_table(Message& message);
    Outcome set_vring_num(const VringState& state);
    Outcome set_vring_addr(const VringAddress& address);
    Outcome set_vring_base(const VringState& state);
    Outcome get_vring_base(const VringState& state);
    Outcome set_vring_fd(Request request, Message& message);
    Outcome set_vring_enable(const VringState& state);

    Ring* ring(uint32_t index);
    std::optional<Gpa> to_guest(uint64_t user_addr, uint64_t len) const;
    // Activates the device if every ring is ready; resets it (keeping each
    // ring's position) otherwise.
    void try_start();
    void stop();

    VirtioDevice& device_;
    std::vector<Ring> rings_;
    Signals signals_;

    uint64_t features_ = 0;           // last SET_FEATURES, bit 30 included
    bool features_set_ = false;
    uint64_t protocol_features_ = 0;  // last SET_PROTOCOL_FEATURES
    std::unique_ptr<GuestMemory> memory_;
    std::vector<MemoryRegion> regions_;  // for address translation
    bool running_ = false;
};

}  // namespace tapvm::virtio::vhost_user
