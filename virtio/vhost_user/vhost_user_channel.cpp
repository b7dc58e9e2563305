#include "virtio/vhost_user/vhost_user_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <string>

#include "vmm/error.h"

namespace tapvm::virtio::vhost_user {

void Channel::wait_for_more() {
    pollfd fds[2] = {{socket_.get(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    for (;;) {
        const int n = ::poll(fds, stop_fd_ >= 0 ? 2 : 1, stall_ms_);
        if (n < 0 && errno == EINTR) continue;  // a signal: its handler has run, keep waiting
        if (n < 0) throw_errno("vhost-user: poll");
        if (n == 0)
            throw ChannelStalled("vhost-user: the frontend sent part of a message and then nothing for " +
                                 std::to_string(stall_ms_) + " ms");
        if (stop_fd_ >= 0 && fds[1].revents) throw ChannelStopped("vhost-user: stopping");
        return;  // readable, or hung up: recvmsg says which
    }
}

bool Channel::read_exact(std::span<uint8_t> buffer, std::vector<UniqueFd>* fds) {
    size_t done = 0;
    while (done < buffer.size()) {
        // Never a blocking read: a frontend that stalls mid-message costs its
        // connection after the stall limit, never the server.
        wait_for_more();
        iovec iov{buffer.data() + done, buffer.size() - done};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (fds) {
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
        }
        const ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            throw_errno("vhost-user: receive");
        }
        // Take ownership of every fd that came, before anything can throw.
        bool truncated_fds = msg.msg_flags & MSG_CTRUNC;
        for (cmsghdr* c = fds ? CMSG_FIRSTHDR(&msg) : nullptr; c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                fds->emplace_back(fd);
            }
        }
        if (truncated_fds) throw Error("vhost-user: more than 8 fds with one message");
        if (n == 0) {
            if (done == 0) return false;
            throw Error("vhost-user: connection closed in the middle of a message");
        }
        done += static_cast<size_t>(n);
        fds = nullptr;  // fds travel with a message's first bytes only
    }
    return true;
}

std::optional<Message> Channel::receive() {
    Message message;
    if (!read_exact(std::span(reinterpret_cast<uint8_t*>(&message.header), sizeof(Header)), &message.fds))
        return std::nullopt;
    if ((message.header.flags & kVersionMask) != kVersion)
        throw Error("vhost-user: protocol version " + std::to_string(message.header.flags & kVersionMask) +
                    " (only 1 is spoken)");
    if (message.header.size > kMaxPayload)
        throw Error("vhost-user: " + std::string(request_name(message.header.request)) + " claims a " +
                    std::to_string(message.header.size) + "-byte payload");
    if (message.header.size > 0 &&
        !read_exact(std::span(message.payload.data(), message.header.size), nullptr))
        throw Error("vhost-user: connection closed in the middle of a message");
    return message;
}

void Channel::reply(uint32_t request, std::span<const uint8_t> payload) {
    Header header{request, kVersion | kFlagReply, static_cast<uint32_t>(payload.size())};
    iovec iov[2] = {{&header, sizeof header}, {const_cast<uint8_t*>(payload.data()), payload.size()}};
    size_t total = sizeof header + payload.size();
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    for (;;) {
        const ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("vhost-user: reply to " + std::string(request_name(request)));
        // Replies are at most 48 bytes; a unix stream socket takes them whole.
        if (static_cast<size_t>(n) != total) throw Error("vhost-user: short reply");
        return;
    }
}

const char* request_name(uint32_t request) {
    switch (static_cast<Request>(request)) {
        case Request::kGetFeatures: return "GET_FEATURES";
        case Request::kSetFeatures: return "SET_FEATURES";
        case Request::kSetOwner: return "SET_OWNER";
        case Request::kResetOwner: return "RESET_OWNER";
        case Request::kSetMemTable: return "SET_MEM_TABLE";
        case Request::kSetLogBase: return "SET_LOG_BASE";
        case Request::kSetLogFd: return "SET_LOG_FD";
        case Request::kSetVringNum: return "SET_VRING_NUM";
        case Request::kSetVringAddr: return "SET_VRING_ADDR";
        case Request::kSetVringBase: return "SET_VRING_BASE";
        case Request::kGetVringBase: return "GET_VRING_BASE";
        case Request::kSetVringKick: return "SET_VRING_KICK";
        case Request::kSetVringCall: return "SET_VRING_CALL";
        case Request::kSetVringErr: return "SET_VRING_ERR";
        case Request::kGetProtocolFeatures: return "GET_PROTOCOL_FEATURES";
        case Request::kSetProtocolFeatures: return "SET_PROTOCOL_FEATURES";
        case Request::kGetQueueNum: return "GET_QUEUE_NUM";
        case Request::kSetVringEnable: return "SET_VRING_ENABLE";
        case Request::kSendRarp: return "SEND_RARP";
        case Request::kNetSetMtu: return "NET_SET_MTU";
    }
    return "an unknown request";
}

}  // namespace tapvm::virtio::vhost_user
