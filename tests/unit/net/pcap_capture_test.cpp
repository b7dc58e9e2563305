// pcap=PATH: frames from both paths end up in a pcap file, read back with
// libpcap, without the virtio-net header.  Also the --net factory.
#include "net/pcap_capture.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pcap/pcap.h>

#include <filesystem>

#include "net/rx_path.h"
#include "net/tx_path.h"
#include "net/virtio_net_factory.h"
#include "net_test_support.h"
#include "virtio/features.h"
#include "vmm/error.h"

namespace tapvm::net {
namespace {

using testing::Bytes;
using testing::concat;
using testing::pattern;

class TempDir {
public:
    TempDir() {
        char path[] = "/tmp/tapvm-net-test-XXXXXX";
        path_ = ::mkdtemp(path);
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

std::vector<Bytes> read_pcap(const std::string& path, int* link_type = nullptr) {
    char error[PCAP_ERRBUF_SIZE];
    pcap_t* pcap = pcap_open_offline(path.c_str(), error);
    EXPECT_NE(pcap, nullptr) << error;
    std::vector<Bytes> frames;
    if (!pcap) return frames;
    if (link_type) *link_type = pcap_datalink(pcap);
    pcap_pkthdr* header;
    const u_char* data;
    while (pcap_next_ex(pcap, &header, &data) == 1) {
        EXPECT_EQ(header->caplen, header->len);
        frames.emplace_back(data, data + header->caplen);
    }
    pcap_close(pcap);
    return frames;
}

TEST(PcapCapture, WritesFramesGatheredFromIovecsWithoutTheHeader) {
    TempDir dir;
    const std::string path = dir.file("a.pcap");
    {
        auto capture = PcapCapture::open(path);
        Bytes header(12, 0xaa), frame = pattern(100, 1);
        Bytes all = concat(header, frame);
        // Header and frame spread over three iovecs, header to be skipped.
        iovec iov[3] = {{all.data(), 5}, {all.data() + 5, 50}, {all.data() + 55, all.size() - 55}};
        capture->on_frame(FrameDirection::kGuestToHost, iov, 12, 100);
        Bytes big = pattern(65550, 2);
        iovec one{big.data(), big.size()};
        capture->on_frame(FrameDirection::kHostToGuest, std::span(&one, 1), 0, big.size());
        EXPECT_EQ(capture->frames_written(), 2u);
        // Flushed as it goes: readable while still open.
        EXPECT_EQ(read_pcap(path).size(), 2u);
    }
    int link_type = 0;
    auto frames = read_pcap(path, &link_type);
    EXPECT_EQ(link_type, DLT_EN10MB);
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0], pattern(100, 1));
    EXPECT_EQ(frames[1], pattern(65550, 2));  // a whole GSO frame, not cut
}

// A machine started again after a guest reboot continues the capture the
// first one began, instead of truncating it.
TEST(PcapCapture, AppendModeContinuesTheCapture) {
    TempDir dir;
    const std::string path = dir.file("restart.pcap");
    auto write_one = [&](PcapCapture::Mode mode, uint8_t seed) {
        auto capture = PcapCapture::open(path, mode);
        Bytes frame = pattern(80, seed);
        iovec iov{frame.data(), frame.size()};
        capture->on_frame(FrameDirection::kGuestToHost, std::span(&iov, 1), 0, frame.size());
    };
    write_one(PcapCapture::Mode::kTruncate, 1);
    write_one(PcapCapture::Mode::kAppend, 2);
    write_one(PcapCapture::Mode::kAppend, 3);
    auto frames = read_pcap(path);
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(frames[0], pattern(80, 1));
    EXPECT_EQ(frames[2], pattern(80, 3));
    write_one(PcapCapture::Mode::kTruncate, 4);  // a new tapvm run starts afresh
    EXPECT_EQ(read_pcap(path).size(), 1u);
    const std::string fresh = dir.file("missing.pcap");
    { auto capture = PcapCapture::open(fresh, PcapCapture::Mode::kAppend); }  // appending to nothing creates it
    EXPECT_TRUE(read_pcap(fresh).empty());
}

TEST(PcapCapture, OpenErrorIsAUsageError) {
    try {
        PcapCapture::open("/nonexistent-dir/x.pcap");
        FAIL() << "no error";
    } catch (const UsageError& e) {
        EXPECT_THAT(e.what(), ::testing::StartsWith("pcap /nonexistent-dir/x.pcap: "));
    }
}

// Both data paths hand the capture the frame without the virtio-net header,
// whether the tap carries one or not.
class PcapOnDataPaths : public ::testing::TestWithParam<bool /*tap header*/> {};

TEST_P(PcapOnDataPaths, TxAndRxFramesAreCaptured) {
    TempDir dir;
    const std::string path = dir.file("paths.pcap");
    GuestMemory memory({{0, 16 << 20}});
    testing::SocketpairTap tap(GetParam());
    testing::RecordingInterrupt irq;
    const uint64_t features = virtio::bit(virtio::kFVersion1);
    testing::GuestQueue rxq(memory, features, 64, 0x10000, 0x100000, 4 << 20);
    testing::GuestQueue txq(memory, features, 64, 0x20000, 0x600000, 4 << 20);
    {
        auto capture = PcapCapture::open(path);
        RxStats rx_stats;
        TxStats tx_stats;
        RxPath rx(*rxq.queue, tap, irq, {.header_len = 12, .mergeable = true, .tap_has_header = GetParam()}, rx_stats,
                  capture.get());
        TxPath tx(*txq.queue, tap, irq, {.header_len = 12, .tap_has_header = GetParam()}, tx_stats, capture.get());

        Bytes out = pattern(70, 1);
        Gpa hdr = txq.driver.alloc(12);
        txq.driver.write_bytes(hdr, Bytes(12, 0));
        Gpa body = txq.driver.alloc(out.size());
        txq.driver.write_bytes(body, out);
        txq.driver.chain().readable(hdr, 12).readable(body, 70).offer();
        tx.process();

        for (int i = 0; i < 20; ++i) rxq.driver.chain().writable(rxq.driver.alloc(4096), 4096).offer();
        Bytes in = pattern(5000, 2);  // spans two guest buffers
        tap.inject(GetParam() ? concat(Bytes(12, 0), in) : in);
        rx.process();
    }
    auto frames = read_pcap(path);
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0], pattern(70, 1));
    EXPECT_EQ(frames[1], pattern(5000, 2));
}

INSTANTIATE_TEST_SUITE_P(TapHeader, PcapOnDataPaths, ::testing::Values(true, false));

TEST(VirtioNetFactory, BuildsTheDeviceFromOptions) {
    TempDir dir;
    std::string why;
    bool ran = testing::run_in_fresh_netns(
        [&] {
            auto device = create_virtio_net(parse_net_options("tap=fac0,mac=52:54:00:00:00:09,pcap=" + dir.file("f.pcap")));
            EXPECT_EQ(device->tap().name(), "fac0");
            EXPECT_EQ(device->mac().to_string(), "52:54:00:00:00:09");
            EXPECT_TRUE(std::filesystem::exists(dir.file("f.pcap")));

            int fd = ::dup(device->tap().fd());  // an attached tap fd, as a manager would pass
            auto adopted = create_virtio_net(parse_net_options("fd=" + std::to_string(fd)));
            EXPECT_EQ(adopted->tap().name(), "fac0");
            EXPECT_EQ(adopted->mac(), derived_mac("fac0"));

            EXPECT_THROW(create_virtio_net(parse_net_options("tap=fac1,pcap=/nonexistent-dir/x")), UsageError);
        },
        why);
    if (!ran) GTEST_SKIP() << why;
}

}  // namespace
}  // namespace tapvm::net
