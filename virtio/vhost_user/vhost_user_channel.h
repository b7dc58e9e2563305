// One vhost-user connection's framing: whole messages in, replies out, fds
// passed along.  Knows nothing of what the requests mean.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "virtio/vhost_user/vhost_user_protocol.h"
#include "vmm/error.h"
#include "vmm/unique_fd.h"

namespace tapvm::virtio::vhost_user {

struct Message {
    Header header{};
    std::array<uint8_t, kMaxPayload> payload{};
    std::vector<UniqueFd> fds;  // as many as came with it (0..kMaxFds)

    // The payload as a T: false when fewer than `min_size` bytes came.
    // Bytes the frontend did not send read as zero.
    template <class T>
    bool read(T& out, size_t min_size = sizeof(T)) const {
        if (header.size < min_size) return false;
        std::memset(&out, 0, sizeof(T));
        std::memcpy(&out, payload.data(), std::min<size_t>(header.size, sizeof(T)));
        return true;
    }
};

// A frontend that stopped sending in the middle of a message (ChannelStalled)
// or a stop requested through the channel's stop fd while it waited for
// the rest of one (ChannelStopped): either way the connection is over.
struct ChannelStalled : Error {
    using Error::Error;
};
struct ChannelStopped : Error {
    using Error::Error;
};

class Channel {
public:
    // How long the rest of a message may take once its first byte came.
    static constexpr int kDefaultStallMs = 5000;

    // `stop_fd` (optional): readable means "stop waiting".
    explicit Channel(UniqueFd socket, int stop_fd = -1, int stall_ms = kDefaultStallMs)
        : socket_(std::move(socket)), stop_fd_(stop_fd), stall_ms_(stall_ms) {}
    // The next message; call when the socket is readable.  nullopt: the
    // frontend closed the connection.  Throws Error on a framing error (a
    // header that claims more than any request carries, a truncated
    // message, too many fds), ChannelStalled when the rest of a message did
    // not come within the stall limit, ChannelStopped on a stop request.
    std::optional<Message> receive();
    // Sends the reply to `request`.  Throws Error when the socket fails.
    void reply(uint32_t request, std::span<const uint8_t> payload);
    void reply_u64(uint32_t request, uint64_t value) {
        reply(request, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof value));
    }

    int fd() const { return socket_.get(); }

private:
    // Fills `buffer` completely; false on EOF before the first byte.
    bool read_exact(std::span<uint8_t> buffer, std::vector<UniqueFd>* fds);
    // Waits for the socket to be readable, within the stall limit.
    void wait_for_more();

    UniqueFd socket_;
    int stop_fd_ = -1;
    int stall_ms_ = kDefaultStallMs;
};

}  // namespace tapvm::virtio::vhost_user
