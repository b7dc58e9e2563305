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

class Channel {
public:
    explicit Channel(UniqueFd socket) : socket_(std::move(socket)) {}

    // Blocks for the next message.  nullopt: the frontend closed the
    // connection.  Throws Error on a framing error (a header that claims more
    // than any request carries, a truncated message, too many fds).
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

    UniqueFd socket_;
};

}  // namespace tapvm::virtio::vhost_user
