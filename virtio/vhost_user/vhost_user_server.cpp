#include "virtio/vhost_user/vhost_user_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

#include "vmm/error.h"

namespace tapvm::virtio::vhost_user {

namespace {

// Waits until `fd` or `stop_fd` is readable; true when `fd` is.
bool wait_readable(int fd, int stop_fd) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    for (;;) {
        const int n = ::poll(fds, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("vhost-user: poll");
        if (fds[1].revents) return false;
        if (fds[0].revents) return true;
    }
}

}  // namespace

VhostUserServer::VhostUserServer(std::string path) : path_(std::move(path)) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path_.empty() || path_.size() >= sizeof address.sun_path)
        throw Error("vhost-user: socket path '" + path_ + "' is empty or too long");
    std::memcpy(address.sun_path, path_.c_str(), path_.size() + 1);

    struct stat st{};
    if (::lstat(path_.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) throw Error("vhost-user: '" + path_ + "' exists and is not a socket");
        ::unlink(path_.c_str());  // left behind by an earlier run
    }
    listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener_) throw_errno("vhost-user: socket");
    if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) < 0)
        throw_errno("vhost-user: bind " + path_);
    if (::listen(listener_.get(), 1) < 0) throw_errno("vhost-user: listen " + path_);
}

VhostUserServer::~VhostUserServer() {
    if (listener_) ::unlink(path_.c_str());
}

unsigned VhostUserServer::serve(VhostUserBackend& backend, int stop_fd, bool once) {
    unsigned served = 0;
    while (wait_readable(listener_.get(), stop_fd)) {
        UniqueFd connection(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!connection) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            throw_errno("vhost-user: accept");
        }
        ++served;
        spdlog::info("vhost-user: frontend connected on {}", path_);
        const bool stopped = serve_connection(backend, std::move(connection), stop_fd);
        backend.disconnect();
        if (stopped || once) break;
    }
    return served;
}

bool VhostUserServer::serve_connection(VhostUserBackend& backend, UniqueFd connection, int stop_fd) {
    Channel channel(std::move(connection), stop_fd, stall_ms_);
    try {
        while (wait_readable(channel.fd(), stop_fd)) {
            auto message = channel.receive();
            if (!message) {
                spdlog::info("vhost-user: frontend disconnected");
                return false;
            }
            spdlog::debug("vhost-user: {} ({} bytes, {} fds)", request_name(message->header.request),
                          message->header.size, message->fds.size());
            if (!backend.handle(*message, channel)) {
                spdlog::error("vhost-user: dropping the frontend's connection");
                return false;
            }
        }
        return true;
    } catch (const ChannelStopped&) {
        return true;
    } catch (const std::exception& e) {
        // Whatever one connection's messages caused (a framing error, a
        // stall, a mapping or a thread that could not be made, an
        // allocation), it ends that connection; the server goes on.
        spdlog::error("{}; dropping the frontend's connection", e.what());
        return false;
    }
}

}  // namespace tapvm::virtio::vhost_user
