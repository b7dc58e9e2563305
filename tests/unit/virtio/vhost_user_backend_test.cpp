// VhostUserBackend driven the way a frontend (QEMU) drives it: real messages
// with real fds on a socketpair, guest memory in a memfd that the test (as
// the frontend/driver) and the backend map separately, and rings laid out by
// FakeDriverQueue.  The device is a recording fake that pops through the
// queues it is handed, which proves the ring addresses were translated.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "support/testkit.h"
#include "virtio/features.h"
#include "virtio/vhost_user/vhost_user_backend.h"
#include "virtio/vhost_user/vhost_user_server.h"
#include "vmm/error.h"

namespace tapvm::virtio::vhost_user {
namespace {

using testing::FakeDriverQueue;

constexpr uint64_t kMemSize = 4 << 20;
constexpr uint64_t kUserBase = 0x7f1200000000;  // where "QEMU" has guest RAM mapped
constexpr uint64_t kProtocolBit = uint64_t{1} << kFProtocolFeatures;

class RecordingDevice : public VirtioDevice {
public:
    uint32_t device_type() const override { return 1; }
    uint64_t offered_features() const override { return bit(kFVersion1) | bit(kFRingEventIdx) | bit(5); }
    uint16_t num_queues() const override { return 2; }
    uint16_t max_queue_size() const override { return 256; }
    void read_config(uint64_t, std::span<uint8_t>) override {}
    void write_config(uint64_t, std::span<const uint8_t>) override {}
    bool accept_features(uint64_t features) override {
        accepted.push_back(features);
        return !refuse;
    }
    void activate(const ActivationContext& context) override {
        ++activations;
        context_ = context;
    }
    void reset() override { ++resets; }

    bool refuse = false;
    std::vector<uint64_t> accepted;
    int activations = 0;
    int resets = 0;
    ActivationContext context_;
};

UniqueFd make_eventfd() { return UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)); }

uint64_t read_eventfd(const UniqueFd& fd) {
    eventfd_t value = 0;
    return ::eventfd_read(fd.get(), &value) == 0 ? value : 0;
}

class VhostUserBackendTest : public ::testing::Test {
protected:
    VhostUserBackendTest() {
        memfd_ = UniqueFd(::memfd_create("guest", MFD_CLOEXEC));
        EXPECT_EQ(::ftruncate(memfd_.get(), kMemSize), 0);
        driver_memory_ = std::make_unique<GuestMemory>(GuestMemory::map_shared({{0, kMemSize, memfd_.get(), 0}}));
        rx_ = std::make_unique<FakeDriverQueue>(*driver_memory_, FakeDriverQueue::Options{
                                                                     .size = 64, .rings = 0x10000, .data = 0x100000});
        tx_ = std::make_unique<FakeDriverQueue>(*driver_memory_, FakeDriverQueue::Options{
                                                                     .size = 64, .rings = 0x20000, .data = 0x200000});
        int pair[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        channel_ = std::make_unique<Channel>(UniqueFd(pair[0]));
        frontend_ = UniqueFd(pair[1]);
    }

    // Sends nothing over the wire: builds the message a frontend would and
    // hands it to the backend, as the server loop does.
    bool send(Request request, const void* payload, size_t size, std::vector<UniqueFd> fds = {},
              uint32_t flags = kVersion) {
        Message m;
        m.header = {static_cast<uint32_t>(request), flags, static_cast<uint32_t>(size)};
        if (size) std::memcpy(m.payload.data(), payload, size);  // memcpy(.., nullptr, 0) is UB
        m.fds = std::move(fds);
        return backend_.handle(m, *channel_);
    }
    template <class T>
    bool send(Request request, const T& payload, std::vector<UniqueFd> fds = {}, uint32_t flags = kVersion) {
        return send(request, &payload, sizeof payload, std::move(fds), flags);
    }
    // The next reply on the frontend's end: its header and payload.
    std::pair<Header, std::vector<uint8_t>> reply() {
        Header h{};
        EXPECT_EQ(::recv(frontend_.get(), &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
        std::vector<uint8_t> payload(h.size);
        if (h.size) EXPECT_EQ(::recv(frontend_.get(), payload.data(), h.size, 0), static_cast<ssize_t>(h.size));
        return {h, payload};
    }
    uint64_t reply_u64() {
        auto [h, p] = reply();
        EXPECT_EQ(h.flags, kVersion | kFlagReply);
        uint64_t v = ~uint64_t{0};
        if (p.size() == 8) std::memcpy(&v, p.data(), 8);
        return v;
    }
    bool reply_pending() {
        char c;
        return ::recv(frontend_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
    }

    void send_mem_table(uint64_t gpa = 0, uint64_t size = kMemSize) {
        MemoryTable table{};
        table.nregions = 1;
        table.regions[0] = {gpa, size, kUserBase + gpa, gpa};
        std::vector<UniqueFd> fds;
        fds.emplace_back(::dup(memfd_.get()));
        ASSERT_TRUE(send(Request::kSetMemTable, &table, 8 + sizeof(MemoryRegion), std::move(fds)));
    }
    void configure_ring(uint32_t index, const FakeDriverQueue& q) {
        ASSERT_TRUE(send(Request::kSetVringNum, VringState{index, q.size()}));
        ASSERT_TRUE(send(Request::kSetVringAddr, VringAddress{index, 0, kUserBase + q.desc_addr(),
                                                              kUserBase + q.used_addr(),
                                                              kUserBase + q.avail_addr(), 0}));
        ASSERT_TRUE(send(Request::kSetVringBase, VringState{index, 0}));
        std::vector<UniqueFd> call;
        call.push_back(make_eventfd());
        calls_[index] = UniqueFd(::dup(call[0].get()));
        ASSERT_TRUE(send(Request::kSetVringCall, uint64_t{index}, std::move(call)));
    }
    void kick_fd(uint32_t index) {
        std::vector<UniqueFd> kick;
        kick.push_back(make_eventfd());
        ASSERT_TRUE(send(Request::kSetVringKick, uint64_t{index}, std::move(kick)));
    }
    // QEMU's order: features, memory, then per ring num/addr/base/call/kick.
    void start(uint64_t features) {
        ASSERT_TRUE(send(Request::kSetFeatures, features));
        send_mem_table();
        configure_ring(0, *rx_);
        configure_ring(1, *tx_);
        kick_fd(0);
        kick_fd(1);
    }

    UniqueFd memfd_;
    std::unique_ptr<GuestMemory> driver_memory_;
    std::unique_ptr<FakeDriverQueue> rx_, tx_;
    std::unique_ptr<Channel> channel_;
    UniqueFd frontend_;
    UniqueFd calls_[2];
    RecordingDevice device_;
    VhostUserBackend backend_{device_};
};

TEST_F(VhostUserBackendTest, GetFeaturesOffersTheDeviceFeaturesAndTheProtocolExtension) {
    ASSERT_TRUE(send(Request::kGetFeatures, nullptr, 0));
    EXPECT_EQ(reply_u64(), device_.offered_features() | kProtocolBit);
    ASSERT_TRUE(send(Request::kGetProtocolFeatures, nullptr, 0));
    EXPECT_EQ(reply_u64(), uint64_t{1} << kProtocolFReplyAck);
}

TEST_F(VhostUserBackendTest, StartSequenceActivatesTheDeviceOnTranslatedRings) {
    const uint64_t features = bit(kFVersion1) | bit(kFRingEventIdx);
    start(features);
    ASSERT_EQ(device_.activations, 1);
    EXPECT_TRUE(backend_.running());
    EXPECT_EQ(device_.accepted.back(), features);
    const ActivationContext& ctx = device_.context_;
    EXPECT_EQ(ctx.features, features);
    ASSERT_EQ(ctx.queues.size(), 2u);
    ASSERT_EQ(ctx.notify_eventfds.size(), 2u);
    EXPECT_EQ(ctx.queues[0]->size(), 64);

    // A chain the "guest" offers on TX is what the device pops: the backend
    // found the ring behind the frontend's user address.
    const Gpa buf = tx_->alloc(100);
    const uint16_t head = tx_->chain().readable(buf, 100).offer();
    DescriptorChain chain;
    ASSERT_EQ(ctx.queues[1]->pop(chain).status, PopStatus::kChain);
    EXPECT_EQ(chain.head(), head);
    ctx.queues[1]->complete(chain, 0);
    ctx.queues[1]->publish();
    EXPECT_EQ(tx_->next_used(), (testing::UsedEntry{head, 0}));

    // Interrupts go to the frontend's call eventfd of that ring.
    ctx.interrupt->signal_queue(1);
    EXPECT_EQ(read_eventfd(calls_[1]), 1u);
    EXPECT_EQ(read_eventfd(calls_[0]), 0u);
}

TEST_F(VhostUserBackendTest, WithProtocolFeaturesRingsWaitForSetVringEnable) {
    start(bit(kFVersion1) | kProtocolBit);
    EXPECT_EQ(device_.activations, 0);
    ASSERT_TRUE(send(Request::kSetVringEnable, VringState{0, 1}));
    EXPECT_EQ(device_.activations, 0);  // ring 1 still disabled
    ASSERT_TRUE(send(Request::kSetVringEnable, VringState{1, 1}));
    EXPECT_EQ(device_.activations, 1);
    EXPECT_EQ(device_.context_.features, bit(kFVersion1));  // bit 30 is the protocol's, not the device's

    ASSERT_TRUE(send(Request::kSetVringEnable, VringState{1, 0}));
    EXPECT_FALSE(backend_.running());
    EXPECT_EQ(device_.resets, 1);
}

TEST_F(VhostUserBackendTest, EnableMayComeBeforeTheRingsAreStarted) {
    // QEMU's virtio-net enables the rings when the guest sets its features,
    // before vhost starts them.
    ASSERT_TRUE(send(Request::kSetVringEnable, VringState{0, 1}));
    ASSERT_TRUE(send(Request::kSetVringEnable, VringState{1, 1}));
    start(bit(kFVersion1) | kProtocolBit);
    EXPECT_EQ(device_.activations, 1);
}

TEST_F(VhostUserBackendTest, GetVringBaseStopsTheDeviceAndReportsWhereTheRingStopped) {
    start(bit(kFVersion1));
    auto* tx = device_.context_.queues[1];
    for (int i = 0; i < 3; ++i) {
        tx_->chain().readable(tx_->alloc(64), 64).offer();
        DescriptorChain chain;
        ASSERT_EQ(tx->pop(chain).status, PopStatus::kChain);
        tx->complete(chain, 0);
    }
    tx->publish();
    ASSERT_TRUE(send(Request::kGetVringBase, VringState{1, 0}));
    auto [h, p] = reply();
    ASSERT_EQ(p.size(), sizeof(VringState));
    VringState state;
    std::memcpy(&state, p.data(), sizeof state);
    EXPECT_EQ(state.index, 1u);
    EXPECT_EQ(state.num, 3u);
    EXPECT_FALSE(backend_.running());
    EXPECT_EQ(device_.resets, 1);

    // Restarting needs a new kick fd; the ring resumes where it stopped.
    kick_fd(1);
    ASSERT_EQ(device_.activations, 2);
    EXPECT_EQ(device_.context_.queues[1]->next_avail_index(), 3);
}

TEST_F(VhostUserBackendTest, SetVringBaseSetsTheResumePoint) {
    ASSERT_TRUE(send(Request::kSetFeatures, bit(kFVersion1)));
    send_mem_table();
    configure_ring(0, *rx_);
    configure_ring(1, *tx_);
    ASSERT_TRUE(send(Request::kSetVringBase, VringState{0, 7}));
    kick_fd(0);
    kick_fd(1);
    ASSERT_EQ(device_.activations, 1);
    EXPECT_EQ(device_.context_.queues[0]->next_avail_index(), 7);
    EXPECT_EQ(device_.context_.queues[1]->next_avail_index(), 0);
}

TEST_F(VhostUserBackendTest, NewMemoryTableRestartsARunningDevice) {
    start(bit(kFVersion1));
    send_mem_table();
    EXPECT_EQ(device_.resets, 1);
    EXPECT_EQ(device_.activations, 2);
}

TEST_F(VhostUserBackendTest, DisconnectResetsTheDeviceAndForgetsEverything) {
    start(bit(kFVersion1));
    backend_.disconnect();
    EXPECT_FALSE(backend_.running());
    EXPECT_GE(device_.resets, 1);
    kick_fd(0);
    kick_fd(1);
    EXPECT_EQ(device_.activations, 1);  // no memory, no rings: nothing to run
}

// --- what a broken or hostile frontend gets -----------------------------------

class VhostUserRefusalTest : public VhostUserBackendTest {
protected:
    void SetUp() override {
        ASSERT_TRUE(send(Request::kSetProtocolFeatures, uint64_t{1} << kProtocolFReplyAck));
    }
    // Sends with NEED_REPLY and returns the REPLY_ACK status (0 = success).
    template <class T>
    uint64_t acked(Request request, const T& payload, std::vector<UniqueFd> fds = {}) {
        EXPECT_TRUE(send(request, payload, std::move(fds), kVersion | kFlagNeedReply));
        return reply_u64();
    }
    uint64_t acked(Request request, const void* payload, size_t size, std::vector<UniqueFd> fds) {
        EXPECT_TRUE(send(request, payload, size, std::move(fds), kVersion | kFlagNeedReply));
        return reply_u64();
    }
};

TEST_F(VhostUserRefusalTest, ReplyAckReportsSuccess) {
    EXPECT_EQ(acked(Request::kSetFeatures, bit(kFVersion1)), 0u);
}

TEST_F(VhostUserRefusalTest, FeaturesThatWereNotOffered) {
    EXPECT_NE(acked(Request::kSetFeatures, bit(kFVersion1) | bit(40)), 0u);
    EXPECT_TRUE(device_.accepted.empty());
    // A combination the device refuses also reaches a frontend that asked
    // for no ack: through the rings' error eventfds.
    std::vector<UniqueFd> err;
    err.push_back(make_eventfd());
    UniqueFd err_read(::dup(err[0].get()));
    ASSERT_EQ(acked(Request::kSetVringErr, uint64_t{1}, std::move(err)), 0u);
    device_.refuse = true;
    EXPECT_NE(acked(Request::kSetFeatures, bit(kFVersion1)), 0u);
    EXPECT_EQ(read_eventfd(err_read), 1u);
    EXPECT_NE(acked(Request::kSetProtocolFeatures, uint64_t{1} << 0), 0u);  // MQ was not offered
}

TEST_F(VhostUserRefusalTest, MemoryTablesThatDoNotAddUp) {
    MemoryTable table{};
    table.nregions = 1;
    table.regions[0] = {0, kMemSize, kUserBase, 0};
    EXPECT_NE(acked(Request::kSetMemTable, table), 0u);  // no fd
    std::vector<UniqueFd> two;
    two.emplace_back(::dup(memfd_.get()));
    two.emplace_back(::dup(memfd_.get()));
    EXPECT_NE(acked(Request::kSetMemTable, table, std::move(two)), 0u);  // fd count mismatch
    table.nregions = 9;
    std::vector<UniqueFd> one;
    one.emplace_back(::dup(memfd_.get()));
    EXPECT_NE(acked(Request::kSetMemTable, table, std::move(one)), 0u);  // too many regions
    table.nregions = 1;
    table.regions[0].mmap_offset = 100;  // not page-aligned
    one.emplace_back(::dup(memfd_.get()));
    EXPECT_NE(acked(Request::kSetMemTable, table, std::move(one)), 0u);
    table.regions[0] = {0x1001, kMemSize, kUserBase, 0};  // unaligned guest address
    std::vector<UniqueFd> again;
    again.emplace_back(::dup(memfd_.get()));
    EXPECT_NE(acked(Request::kSetMemTable, table, std::move(again)), 0u);
    // Header claims one region but the payload stops short of it.
    std::vector<UniqueFd> short_fd;
    short_fd.emplace_back(::dup(memfd_.get()));
    EXPECT_TRUE(send(Request::kSetMemTable, &table, 8 + 16, std::move(short_fd), kVersion | kFlagNeedReply));
    EXPECT_NE(reply_u64(), 0u);
}

// A frontend that announces more memory than its fd holds is refused: mapped,
// the device's first access past the file's end would be SIGBUS.
TEST_F(VhostUserRefusalTest, AMemoryRegionLargerThanItsFileIsRefused) {
    UniqueFd small(::memfd_create("small", MFD_CLOEXEC));
    ASSERT_EQ(::ftruncate(small.get(), 0x1000), 0);
    MemoryTable table{};
    table.nregions = 1;
    table.regions[0] = {0, kMemSize, kUserBase, 0};
    std::vector<UniqueFd> fds;
    fds.push_back(std::move(small));
    EXPECT_NE(acked(Request::kSetMemTable, &table, 8 + sizeof(MemoryRegion), std::move(fds)), 0u);
    EXPECT_EQ(device_.activations, 0);
    // The connection lives on: a correct table afterwards is taken.
    std::vector<UniqueFd> good;
    good.emplace_back(::dup(memfd_.get()));
    EXPECT_EQ(acked(Request::kSetMemTable, &table, 8 + sizeof(MemoryRegion), std::move(good)), 0u);
}

// Kick, call and err must be eventfds; each comes out non-blocking, so a
// frontend that hands over a blocking one (or drains it itself) can never
// block the backend's I/O thread.
TEST_F(VhostUserRefusalTest, RingFdsMustBeEventfdsAndBecomeNonBlocking) {
    for (Request request : {Request::kSetVringKick, Request::kSetVringCall, Request::kSetVringErr}) {
        int p[2];
        ASSERT_EQ(::pipe(p), 0);
        UniqueFd keep(p[1]);
        std::vector<UniqueFd> pipe_end;
        pipe_end.emplace_back(p[0]);
        EXPECT_NE(acked(request, uint64_t{0}, std::move(pipe_end)), 0u) << static_cast<int>(request);

        UniqueFd blocking(::eventfd(0, EFD_CLOEXEC));
        UniqueFd mine(::dup(blocking.get()));
        std::vector<UniqueFd> fds;
        fds.push_back(std::move(blocking));
        EXPECT_EQ(acked(request, uint64_t{1}, std::move(fds)), 0u) << static_cast<int>(request);
        EXPECT_TRUE(::fcntl(mine.get(), F_GETFL) & O_NONBLOCK) << static_cast<int>(request);
    }
    EXPECT_EQ(device_.activations, 0) << "no ring may start from a refused kick";
}

TEST_F(VhostUserRefusalTest, RingIndexesAndSizesOutOfRange) {
    EXPECT_NE(acked(Request::kSetVringNum, VringState{2, 64}), 0u);    // the device has 2 rings
    EXPECT_NE(acked(Request::kSetVringNum, VringState{0, 100}), 0u);   // not a power of two
    EXPECT_NE(acked(Request::kSetVringNum, VringState{0, 512}), 0u);   // above the device maximum
    EXPECT_NE(acked(Request::kSetVringNum, VringState{0, 0}), 0u);
    EXPECT_NE(acked(Request::kSetVringBase, VringState{0, 0x10000}), 0u);
    EXPECT_NE(acked(Request::kSetVringEnable, VringState{0, 2}), 0u);
    EXPECT_NE(acked(Request::kSetVringAddr, VringAddress{255, 0, 0, 0, 0, 0}), 0u);
    EXPECT_NE(acked(Request::kSetVringAddr, VringAddress{0, 1, 0, 0, 0, 0}), 0u);  // logging
    EXPECT_NE(acked(Request::kSetVringCall, uint64_t{9}), 0u);
    // A kick without an fd would mean polling the ring; a kick that says
    // "no fd" but carries one is malformed.
    EXPECT_NE(acked(Request::kSetVringKick, uint64_t{kVringNoFd}), 0u);
    std::vector<UniqueFd> fds;
    fds.push_back(make_eventfd());
    EXPECT_NE(acked(Request::kSetVringKick, uint64_t{kVringNoFd}, std::move(fds)), 0u);
    EXPECT_NE(acked(Request::kSetLogBase, uint64_t{0}), 0u);
}

TEST_F(VhostUserRefusalTest, RingsOutsideSharedMemoryNeverReachTheDevice) {
    std::vector<UniqueFd> err;
    err.push_back(make_eventfd());
    UniqueFd err_read(::dup(err[0].get()));
    ASSERT_EQ(acked(Request::kSetVringErr, uint64_t{0}, std::move(err)), 0u);
    ASSERT_EQ(acked(Request::kSetFeatures, bit(kFVersion1)), 0u);
    send_mem_table(0, 1 << 20);  // only the first MiB is shared this time
    configure_ring(0, *rx_);
    configure_ring(1, *tx_);  // its data area is beyond 1 MiB; rings are not
    // Move ring 1's used ring beyond shared memory.
    ASSERT_EQ(acked(Request::kSetVringAddr,
                    VringAddress{1, 0, kUserBase + tx_->desc_addr(), kUserBase + (2 << 20),
                                 kUserBase + tx_->avail_addr(), 0}),
              0u);
    kick_fd(0);
    kick_fd(1);
    EXPECT_EQ(device_.activations, 0);
    EXPECT_FALSE(backend_.running());
    EXPECT_EQ(read_eventfd(err_read), 1u);
}

TEST_F(VhostUserRefusalTest, UnknownRequestsAndFailedQueriesDropTheConnection) {
    EXPECT_FALSE(send(static_cast<Request>(99), uint64_t{0}));
    EXPECT_FALSE(send(Request::kGetVringBase, VringState{5, 0}));
    EXPECT_FALSE(reply_pending());
}

TEST_F(VhostUserRefusalTest, ShortPayloadsAreRefused) {
    const uint32_t half = 1;
    EXPECT_TRUE(send(Request::kSetFeatures, &half, sizeof half, {}, kVersion | kFlagNeedReply));
    EXPECT_NE(reply_u64(), 0u);
}

// --- the framing ----------------------------------------------------------------

TEST(VhostUserChannelTest, ReceivesHeaderPayloadAndFds) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    Channel channel{UniqueFd(pair[0])};
    UniqueFd peer(pair[1]);

    UniqueFd event = make_eventfd();
    struct {
        Header h;
        uint64_t value;
    } __attribute__((packed)) wire{{12, kVersion, 8}, 3};
    iovec iov{&wire, sizeof wire};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    const int fd = event.get();
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    ASSERT_EQ(::sendmsg(peer.get(), &msg, 0), static_cast<ssize_t>(sizeof wire));

    auto m = channel.receive();
    ASSERT_TRUE(m);
    EXPECT_EQ(m->header.request, 12u);
    uint64_t value = 0;
    ASSERT_TRUE(m->read(value));
    EXPECT_EQ(value, 3u);
    ASSERT_EQ(m->fds.size(), 1u);
    ASSERT_EQ(::eventfd_write(m->fds[0].get(), 5), 0);  // the same eventfd, passed along
    EXPECT_EQ(read_eventfd(event), 5u);

    peer.reset();
    EXPECT_FALSE(channel.receive());  // clean EOF between messages
}

TEST(VhostUserChannelTest, RejectsOversizedPayloadsAndWrongVersions) {
    for (Header h : {Header{5, kVersion, 4096}, Header{1, 2, 0}}) {
        int pair[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        Channel channel{UniqueFd(pair[0])};
        UniqueFd peer(pair[1]);
        ASSERT_EQ(::send(peer.get(), &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
        EXPECT_THROW(channel.receive(), Error);
    }
}

TEST(VhostUserChannelTest, TruncatedMessageIsAnError) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    Channel channel{UniqueFd(pair[0])};
    UniqueFd peer(pair[1]);
    Header h{2, kVersion, 8};
    ASSERT_EQ(::send(peer.get(), &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
    ASSERT_EQ(::send(peer.get(), "abc", 3, 0), 3);
    peer.reset();
    EXPECT_THROW(channel.receive(), Error);
}

// A frontend that sends part of a header and then nothing: the channel gives
// up after its stall limit instead of blocking forever.
TEST(VhostUserChannelTest, AStalledPartialMessageEndsWithinTheStallLimit) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    Channel channel{UniqueFd(pair[0]), -1, 100};
    UniqueFd peer(pair[1]);
    ASSERT_EQ(::send(peer.get(), "\x01\x00\x00\x00", 4, 0), 4);  // 4 of a header's 12 bytes
    const auto start = std::chrono::steady_clock::now();
    EXPECT_THROW(channel.receive(), ChannelStalled);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// A stop request reaches a channel waiting for the rest of a message.
TEST(VhostUserChannelTest, AStopRequestEndsTheWaitForTheRestOfAMessage) {
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    UniqueFd stop = make_eventfd();
    Channel channel{UniqueFd(pair[0]), stop.get(), 60'000};
    UniqueFd peer(pair[1]);
    Header h{static_cast<uint32_t>(Request::kSetFeatures), kVersion, 8};
    ASSERT_EQ(::send(peer.get(), &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));  // payload never comes
    std::thread stopper([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ASSERT_EQ(::eventfd_write(stop.get(), 1), 0);
    });
    EXPECT_THROW(channel.receive(), ChannelStopped);
    stopper.join();
}

// --- the server -------------------------------------------------------------------

// A frontend's end: connected to the server's socket at `path`.
UniqueFd connect_frontend(const std::string& path) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    EXPECT_EQ(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    return s;
}

// GET_FEATURES over `s`; the features answered, or 0.
uint64_t get_features(const UniqueFd& s) {
    Header h{static_cast<uint32_t>(Request::kGetFeatures), kVersion, 0};
    EXPECT_EQ(::send(s.get(), &h, sizeof h, 0), static_cast<ssize_t>(sizeof h));
    struct {
        Header h;
        uint64_t features;
    } __attribute__((packed)) answer{};
    EXPECT_EQ(::recv(s.get(), &answer, sizeof answer, MSG_WAITALL), static_cast<ssize_t>(sizeof answer));
    return answer.features;
}

TEST(VhostUserServerTest, ServesAFrontendOverItsSocketAndCleansUp) {
    const std::string path = ::testing::TempDir() + "vhost-user-test.sock";
    RecordingDevice device;
    VhostUserBackend backend(device);
    UniqueFd stop = make_eventfd();
    {
        VhostUserServer server(path);
        std::thread frontend([&] {
            UniqueFd s = connect_frontend(path);
            EXPECT_EQ(get_features(s), device.offered_features() | kProtocolBit);
        });  // the frontend closes its socket: served once
        EXPECT_EQ(server.serve(backend, stop.get(), /*once=*/true), 1u);
        frontend.join();
        EXPECT_GE(device.resets, 1);  // left clean for the next frontend
    }
    EXPECT_NE(::access(path.c_str(), F_OK), 0);  // socket file removed
}

// A frontend that stalls in the middle of a message costs its own
// connection; the next frontend is served.
TEST(VhostUserServerTest, AStalledFrontendIsDroppedAndTheNextOneServed) {
    const std::string path = ::testing::TempDir() + "vhost-user-stall.sock";
    RecordingDevice device;
    VhostUserBackend backend(device);
    UniqueFd stop = make_eventfd();
    VhostUserServer server(path);
    server.set_stall_limit_ms(100);
    uint64_t features = 0;
    std::thread frontends([&] {
        UniqueFd stalled = connect_frontend(path);
        ASSERT_EQ(::send(stalled.get(), "\x01\x00", 2, 0), 2);  // and then silence, socket kept open
        UniqueFd good = connect_frontend(path);  // queued in the listen backlog until the first is dropped
        features = get_features(good);
        ASSERT_EQ(::eventfd_write(stop.get(), 1), 0);  // done: stop the server
    });
    EXPECT_EQ(server.serve(backend, stop.get(), /*once=*/false), 2u);
    frontends.join();
    EXPECT_EQ(features, device.offered_features() | kProtocolBit);
}

TEST(VhostUserServerTest, RefusesToReplaceAFileThatIsNotASocket) {
    const std::string path = ::testing::TempDir() + "vhost-user-not-a-socket";
    {
        std::FILE* f = std::fopen(path.c_str(), "w");
        ASSERT_TRUE(f);
        std::fclose(f);
    }
    EXPECT_THROW(VhostUserServer{path}, Error);
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);
    ::unlink(path.c_str());
}

}  // namespace
}  // namespace tapvm::virtio::vhost_user
