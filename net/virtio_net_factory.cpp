#include "net/virtio_net_factory.h"

#include "net/pcap_capture.h"
#include "net/tap_device.h"

namespace tapvm::net {

std::unique_ptr<VirtioNetDevice> create_virtio_net(const NetOptions& options) {
    std::unique_ptr<TapDevice> tap = options.tap_fd ? TapDevice::adopt(*options.tap_fd, options.vnet_hdr)
                                                    : TapDevice::open(options.tap_name, options.vnet_hdr);
    std::unique_ptr<PcapCapture> capture;
    if (!options.pcap_path.empty())
        capture = PcapCapture::open(options.pcap_path,
                                    options.pcap_append ? PcapCapture::Mode::kAppend : PcapCapture::Mode::kTruncate);
    return std::make_unique<VirtioNetDevice>(options, std::move(tap), std::move(capture));
}

}  // namespace tapvm::net
