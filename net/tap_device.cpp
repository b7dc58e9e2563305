#include "net/tap_device.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <cstring>

#include "net/net_features.h"
#include "net/virtio_net_hdr.h"
#include "vmm/error.h"

namespace tapvm::net {

namespace {

[[noreturn]] void usage_errno(const std::string& what, int err, const char* hint = nullptr) {
    std::string message = what + ": " + std::strerror(err);
    if (hint) message += std::string(" (") + hint + ")";
    throw UsageError(message);
}

const char* tunsetiff_hint(int err) {
    switch (err) {
        case EPERM:
        case EACCES: return "needs CAP_NET_ADMIN, or a persistent tap owned by this user";
        case EBUSY: return "the tap is already attached to another process";
        case EINVAL: return "an interface of that name exists but is not a single-queue tap";
        default: return nullptr;
    }
}

int ioctl_errno(int fd, unsigned long request, void* arg) {
    return ::ioctl(fd, request, arg) == 0 ? 0 : errno;
}

// Every offload tapvm can ask for, in the two groups the kernel accepts
// separately (UFO was removed and re-added as a no-op in Linux 4.14).
constexpr unsigned kTcpOffloads = kTunFCsum | kTunFTso4 | kTunFTso6 | kTunFTsoEcn;
constexpr unsigned kUdpOffloads = kTunFCsum | kTunFUfo;

// False only when the kernel says for sure that the tap lives in another
// network namespace (TUNGETDEVNETNS, Linux 5.2+, needs CAP_NET_ADMIN there).
bool in_our_namespace(int tap_fd) {
    UniqueFd tap_ns(::ioctl(tap_fd, TUNGETDEVNETNS));
    struct stat tap_st {}, own_st {};
    if (!tap_ns || ::fstat(tap_ns.get(), &tap_st) < 0 || ::stat("/proc/thread-self/ns/net", &own_st) < 0)
        return true;
    return tap_st.st_dev == own_st.st_dev && tap_st.st_ino == own_st.st_ino;
}

// The tap's flags as the driver keeps them (/sys/class/net/NAME/tun_flags,
// tun_flags_show()), when the sysfs we see belongs to the tap's namespace.
std::optional<unsigned> sysfs_tun_flags(int tap_fd, const std::string& name) {
    if (!in_our_namespace(tap_fd)) return std::nullopt;
    auto read_number = [&](const char* attribute) -> std::optional<unsigned long> {
        std::string path = "/sys/class/net/" + name + "/" + attribute;
        UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        char text[32] = {};
        if (!file || ::read(file.get(), text, sizeof text - 1) <= 0) return std::nullopt;
        char* end = nullptr;
        unsigned long value = std::strtoul(text, &end, 0);
        if (end == text) return std::nullopt;
        return value;
    };
    // The same name in another namespace's sysfs would be another device.
    UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, name.data(), std::min(name.size(), size_t{IFNAMSIZ - 1}));
    auto sysfs_index = read_number("ifindex");
    if (!sock || ::ioctl(sock.get(), SIOCGIFINDEX, &ifr) < 0 || !sysfs_index ||
        *sysfs_index != static_cast<unsigned long>(ifr.ifr_ifindex))
        return std::nullopt;
    auto flags = read_number("tun_flags");
    if (!flags) return std::nullopt;
    return static_cast<unsigned>(*flags);
}

}  // namespace

TapDevice::TapDevice(UniqueFd fd, std::string label) : fd_(std::move(fd)), label_(std::move(label)) {}

TapDevice::~TapDevice() {
    if (!vnet_hdr_ || !fd_) return;
    // Leave a persistent tap as we found it: no offloads, default header.
    if (int err = reset_offloads())
        spdlog::warn("{}: TUNSETOFFLOAD 0 on close: {}", label_, std::strerror(err));
    set_vnet_hdr_size(static_cast<int>(kLegacyVnetHeaderSize));
}

std::unique_ptr<TapDevice> TapDevice::open(const std::string& name, VnetHdrMode mode) {
    std::string label = "tap " + name;
    if (name.empty() || name.size() >= IFNAMSIZ) throw UsageError(label + ": invalid interface name");
    UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (!fd) usage_errno(label + ": open /dev/net/tun", errno);

    std::unique_ptr<TapDevice> tap(new TapDevice(std::move(fd), label));
    tap->query_kernel_features();
    bool kernel_vnet_hdr = tap->kernel_features_ & IFF_VNET_HDR;
    if (mode == VnetHdrMode::kOn && !kernel_vnet_hdr)
        throw UsageError(label + ": vnet_hdr=on but the kernel's tun driver has no IFF_VNET_HDR");
    bool want_vnet_hdr = kernel_vnet_hdr && mode != VnetHdrMode::kOff;

    ifreq ifr{};
    std::memcpy(ifr.ifr_name, name.data(), name.size());
    ifr.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | (want_vnet_hdr ? IFF_VNET_HDR : 0));
    if (int err = ioctl_errno(tap->fd(), TUNSETIFF, &ifr))
        usage_errno(label + ": TUNSETIFF", err, tunsetiff_hint(err));

    tap->name_.assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
    tap->label_ = "tap " + tap->name_;
    tap->vnet_hdr_ = want_vnet_hdr;
    if (want_vnet_hdr) tap->probe_offloads();
    return tap;
}

std::unique_ptr<TapDevice> TapDevice::adopt(int raw_fd, VnetHdrMode mode) {
    std::string label = "tap fd " + std::to_string(raw_fd);
    if (raw_fd < 0 || ::fcntl(raw_fd, F_GETFD) < 0) usage_errno(label, raw_fd < 0 ? EBADF : errno);
    // The handed-over fd itself stays open for the life of the process: a
    // machine started again after a guest reboot (--on-reboot restart)
    // adopts it again, so each TapDevice works on (and closes) a duplicate.
    // It is no child's business either way.
    if (::fcntl(raw_fd, F_SETFD, FD_CLOEXEC) < 0) usage_errno(label + ": F_SETFD", errno);
    UniqueFd fd(::fcntl(raw_fd, F_DUPFD_CLOEXEC, 3));
    if (!fd) usage_errno(label + ": F_DUPFD_CLOEXEC", errno);
    int status_flags = ::fcntl(fd.get(), F_GETFL);
    if (status_flags < 0 || ::fcntl(fd.get(), F_SETFL, status_flags | O_NONBLOCK) < 0)
        usage_errno(label + ": O_NONBLOCK", errno);

    ifreq ifr{};
    if (int err = ioctl_errno(fd.get(), TUNGETIFF, &ifr))
        usage_errno(label + ": not a tap attached to an interface: TUNGETIFF", err);
    std::string name(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
    label += " (" + name + ")";
    unsigned flags = static_cast<unsigned short>(ifr.ifr_flags);
    // TUNGETIFF reports IFF_NOFILTER (0x1000, the value of IFF_NO_PI) for a
    // queue without a socket filter, so IFF_NO_PI cannot be read from it:
    // prefer the device's own flags from sysfs when they are ours to see.
    std::optional<unsigned> device_flags = sysfs_tun_flags(fd.get(), name);
    if (device_flags) flags = *device_flags;
    if (!(flags & IFF_TAP))
        throw UsageError(label + ": is a tun (layer 3) device; tapvm needs a tap (IFF_TAP)");
    if (!(flags & IFF_NO_PI))
        throw UsageError(label + ": the tap adds packet information; it must be opened with IFF_NO_PI");
    if (!device_flags)
        spdlog::debug("{}: IFF_NO_PI not verifiable (no sysfs view of the tap); assuming it", label);

    std::unique_ptr<TapDevice> tap(new TapDevice(std::move(fd), label));
    tap->name_ = name;
    tap->query_kernel_features();
    // The header is on the wire whenever the fd has the flag; whether
    // offloads can ride on it is a separate question.
    tap->vnet_hdr_ = flags & IFF_VNET_HDR;
    bool usable = tap->vnet_hdr_ && (tap->kernel_features_ & IFF_VNET_HDR);
    if (mode == VnetHdrMode::kOn && !usable)
        throw UsageError(label + ": vnet_hdr=on but the tap has no IFF_VNET_HDR");
    if (usable && mode != VnetHdrMode::kOff) tap->probe_offloads();
    if (tap->vnet_hdr_ && mode == VnetHdrMode::kOff)
        spdlog::info("{}: has IFF_VNET_HDR; vnet_hdr=off keeps the header but offers no offloads",
                     label);
    return tap;
}

void TapDevice::query_kernel_features() {
    unsigned features = 0;
    if (int err = ioctl_errno(fd(), TUNGETFEATURES, &features)) {
        spdlog::info("{}: TUNGETFEATURES: {}; no virtio-net header", label_, std::strerror(err));
        features = 0;
    }
    kernel_features_ = features;
}

// Ask the tap for each group of offloads and keep what it accepts; then
// back to none until the driver negotiates its own.
void TapDevice::probe_offloads() {
    supported_offloads_ = 0;
    if (set_offload(kTcpOffloads) == 0) supported_offloads_ |= kTcpOffloads;
    if (set_offload(kUdpOffloads) == 0) supported_offloads_ |= kUdpOffloads;
    if (int err = reset_offloads()) usage_errno(label_ + ": TUNSETOFFLOAD", err);
    if (!(supported_offloads_ & kTunFCsum))
        spdlog::info("{}: the tap accepts no offloads; checksums and GSO stay in the guest", label_);
}

ssize_t TapDevice::readv(std::span<const iovec> iov) {
    for (;;) {
        ssize_t n = ::readv(fd(), iov.data(), static_cast<int>(iov.size()));
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
    }
}

ssize_t TapDevice::writev(std::span<const iovec> iov) {
    for (;;) {
        ssize_t n = ::writev(fd(), iov.data(), static_cast<int>(iov.size()));
        if (n >= 0) return n;
        if (errno != EINTR) return -errno;
    }
}

int TapDevice::set_vnet_hdr_size(int bytes) { return ioctl_errno(fd(), TUNSETVNETHDRSZ, &bytes); }

int TapDevice::set_offload(unsigned tun_flags) {
    // TUNSETOFFLOAD takes its argument by value, not through a pointer.
    return ::ioctl(fd(), TUNSETOFFLOAD, static_cast<unsigned long>(tun_flags)) == 0 ? 0 : errno;
}

int TapDevice::ifindex() const {
    if (!in_our_namespace(fd())) return 0;
    // Interface ioctls work on any socket; this one lives in tapvm's
    // network namespace, which we just checked is the tap's.
    UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock) return 0;
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, name_.data(), std::min(name_.size(), size_t{IFNAMSIZ - 1}));
    if (::ioctl(sock.get(), SIOCGIFINDEX, &ifr) < 0) return 0;
    return ifr.ifr_ifindex;
}

unsigned TapDevice::tap_flags() const {
    ifreq ifr{};
    if (ioctl_errno(fd(), TUNGETIFF, &ifr)) return 0;
    return static_cast<unsigned short>(ifr.ifr_flags);
}

}  // namespace tapvm::net
