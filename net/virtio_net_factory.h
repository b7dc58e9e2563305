// One call from a parsed `--net` to a ready virtio-net device: the tap
// opened by name (tap=NAME) or adopted (fd=N), the optional pcap capture,
// and the device on top.  Throws UsageError with one line on failure.
#pragma once

#include <memory>

#include "net/net_options.h"
#include "net/virtio_net_device.h"

namespace tapvm::net {

std::unique_ptr<VirtioNetDevice> create_virtio_net(const NetOptions& options);

}  // namespace tapvm::net
