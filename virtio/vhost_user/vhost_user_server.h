// The listening side of vhost-user: a unix socket at a path that frontends
// connect to (QEMU's `-chardev socket,path=...`), served one connection at a
// time.  A frontend that goes away or breaks the protocol costs its
// connection; the backend is left clean and the next frontend may connect.
#pragma once

#include <string>

#include "virtio/vhost_user/vhost_user_backend.h"
#include "vmm/unique_fd.h"

namespace tapvm::virtio::vhost_user {

class VhostUserServer {
public:
    // Binds and listens at `path` (a stale socket there is replaced; any
    // other file is not).  Throws Error.
    explicit VhostUserServer(std::string path);
    ~VhostUserServer();  // removes the socket file
    VhostUserServer(const VhostUserServer&) = delete;
    VhostUserServer& operator=(const VhostUserServer&) = delete;

    // Serves frontends until `stop_fd` is readable, or — with `once` — until
    // the first frontend has gone.  Returns the number of frontends served.
    unsigned serve(VhostUserBackend& backend, int stop_fd, bool once);

    const std::string& path() const { return path_; }
    // How long a frontend may take to finish a message it began
    // (Channel::kDefaultStallMs unless set).
    void set_stall_limit_ms(int ms) { stall_ms_ = ms; }

private:
    // One connection, until it ends (false) or stop_fd fires (true).
    bool serve_connection(VhostUserBackend& backend, UniqueFd connection, int stop_fd);

    std::string path_;
    UniqueFd listener_;
    int stall_ms_ = Channel::kDefaultStallMs;
};

}  // namespace tapvm::virtio::vhost_user
