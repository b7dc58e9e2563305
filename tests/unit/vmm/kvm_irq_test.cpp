// GsiRouter and KvmIrqLine against a recording irqchip: the default routes,
// MSI GSI allocation and reuse, route updates, irqfd binding, and that an
// eventfd write is all a trigger does.
#include <gtest/gtest.h>
#include "vmm/uapi/kvm.h"
#include <unistd.h>

#include <map>
#include <set>
#include <thread>
#include <vector>

#include "vmm/error.h"
#include "vmm/kvm/kvm_irq.h"

namespace tapvm::kvm {
namespace {

class FakeIrqChip : public IrqChipControl {
public:
    void set_irq_line(uint32_t gsi, bool level) override {
        if (fail) throw Error("KVM_IRQ_LINE: fake failure");
        lines.emplace_back(gsi, level);
    }
    void set_gsi_routing(std::span<const kvm_irq_routing_entry> routes) override {
        std::lock_guard g(mutex);
        if (fail) throw Error("KVM_SET_GSI_ROUTING: fake failure");
        table.assign(routes.begin(), routes.end());
        ++pushes;
    }
    void set_irqfd(int eventfd, uint32_t gsi, bool assign) override {
        std::lock_guard g(mutex);
        if (fail) throw Error("KVM_IRQFD: fake failure");
        if (assign)
            irqfds.emplace(eventfd, gsi);
        else
            irqfds.erase({eventfd, gsi});
    }
    const kvm_irq_routing_entry* route_for(uint32_t gsi, uint32_t type) const {
        for (const auto& e : table)
            if (e.gsi == gsi && e.type == type) return &e;
        return nullptr;
    }
    uint32_t gsi_of(int eventfd) const {
        for (auto [fd, gsi] : irqfds)
            if (fd == eventfd) return gsi;
        return ~0u;
    }

    std::mutex mutex;
    bool fail = false;
    std::vector<std::pair<uint32_t, bool>> lines;
    std::vector<kvm_irq_routing_entry> table;
    std::set<std::pair<int, uint32_t>> irqfds;
    int pushes = 0;
};

// KVM's default table, except that ISA IRQ 0 (GSI 0, the PIT) goes to
// IOAPIC pin 2 as the MADT's override says, and the cascade GSI 2 has none.
TEST(DefaultRoutes, MatchKvmsDefaultTableWithThePcTimerOverride) {
    auto routes = default_irqchip_routes();
    std::map<uint32_t, std::set<std::pair<uint32_t, uint32_t>>> by_gsi;  // gsi -> {(chip, pin)}
    for (const auto& r : routes) {
        ASSERT_EQ(r.type, uint32_t{KVM_IRQ_ROUTING_IRQCHIP});
        EXPECT_TRUE(by_gsi[r.gsi].emplace(r.u.irqchip.irqchip, r.u.irqchip.pin).second) << "duplicate route";
    }
    EXPECT_FALSE(by_gsi.count(2)) << "GSI 2 is the PIC cascade";
    EXPECT_EQ(by_gsi[0], (std::set<std::pair<uint32_t, uint32_t>>{{KVM_IRQCHIP_IOAPIC, 2}, {KVM_IRQCHIP_PIC_MASTER, 0}}));
    for (uint32_t gsi = 1; gsi < 24; ++gsi) {
        if (gsi == 2) continue;
        std::set<std::pair<uint32_t, uint32_t>> want{{KVM_IRQCHIP_IOAPIC, gsi}};
        if (gsi < 8) want.emplace(KVM_IRQCHIP_PIC_MASTER, gsi);
        if (gsi >= 8 && gsi < 16) want.emplace(KVM_IRQCHIP_PIC_SLAVE, gsi - 8);
        EXPECT_EQ(by_gsi[gsi], want) << "GSI " << gsi;
    }
    EXPECT_EQ(routes.size(), 15u * 2 + 8);
}

TEST(MsiRoute, OnlyLapicWindowAddressesAreRouted) {
    EXPECT_TRUE(is_msi_address(0xfee00000));
    EXPECT_TRUE(is_msi_address(0xfeeff00c));
    EXPECT_TRUE(is_msi_address(0x1'fee01000));  // extended destination bits in the high word
    EXPECT_FALSE(is_msi_address(0));
    EXPECT_FALSE(is_msi_address(0xfed00000));
    EXPECT_FALSE(is_msi_address(0xfef00000));

    auto route = msi_route(30, {0x0000'0001'fee0'100c, 0x4041});
    ASSERT_TRUE(route);
    EXPECT_EQ(route->gsi, 30u);
    EXPECT_EQ(route->type, uint32_t{KVM_IRQ_ROUTING_MSI});
    EXPECT_EQ(route->u.msi.address_lo, 0xfee0100cu);
    EXPECT_EQ(route->u.msi.address_hi, 1u);
    EXPECT_EQ(route->u.msi.data, 0x4041u);
    EXPECT_FALSE(msi_route(30, {0xdead0000, 1}));
}

TEST(GsiRouter, InstallsTheDefaultTableAtOnce) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    EXPECT_EQ(chip.pushes, 1);
    EXPECT_EQ(chip.table.size(), default_irqchip_routes().size());
}

TEST(GsiRouter, RefusesAKvmWithoutRoomForMsi) {
    FakeIrqChip chip;
    EXPECT_THROW(GsiRouter(chip, 24), Error);
}

TEST(GsiRouter, IrqLineDrivesItsGsi) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    auto line = router.irq_line(4);
    line->pulse();
    ASSERT_EQ(chip.lines.size(), 2u);
    EXPECT_EQ(chip.lines[0], std::make_pair(4u, true));
    EXPECT_EQ(chip.lines[1], std::make_pair(4u, false));
    EXPECT_THROW(router.irq_line(24), UsageError);
    EXPECT_NO_THROW(router.irq_line(2)) << "the cascade: an inert line, so callers may take all 24";
}

TEST(GsiRouter, IrqLineFailureIsLoggedNotThrown) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    auto line = router.irq_line(9);
    chip.fail = true;
    EXPECT_NO_THROW(line->set_level(true));
    EXPECT_NO_THROW(line->set_level(false));
}

TEST(GsiRouter, VectorsGetGsisFrom24WithAnIrqfdEach) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    auto a = router.allocate();
    auto b = router.allocate();
    EXPECT_EQ(router.vector_count(), 2u);
    ASSERT_EQ(chip.irqfds.size(), 2u);
    std::set<uint32_t> gsis;
    for (auto [fd, gsi] : chip.irqfds) gsis.insert(gsi);
    EXPECT_EQ(gsis, (std::set<uint32_t>{24, 25}));
    // No message yet: no route, and no push was needed.
    EXPECT_EQ(chip.table.size(), default_irqchip_routes().size());
    EXPECT_EQ(chip.pushes, 1);
}

TEST(GsiRouter, SetMessageRoutesTheVectorAndSkipsNoOpUpdates) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    auto v = router.allocate();
    v->set_message({0xfee00000, 0x31});
    const auto* route = chip.route_for(24, KVM_IRQ_ROUTING_MSI);
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->u.msi.data, 0x31u);
    int pushes = chip.pushes;

    v->set_message({0xfee00000, 0x31});
    EXPECT_EQ(chip.pushes, pushes) << "an unchanged message must not re-push the table";

    v->set_message({0xfee01000, 0x32});
    route = chip.route_for(24, KVM_IRQ_ROUTING_MSI);
    ASSERT_NE(route, nullptr);
    EXPECT_EQ(route->u.msi.address_lo, 0xfee01000u);
    EXPECT_EQ(route->u.msi.data, 0x32u);
    EXPECT_EQ(chip.pushes, pushes + 1);
    EXPECT_EQ(router.table().size(), chip.table.size());
}

TEST(GsiRouter, AnInvalidMessageRemovesTheRoute) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    auto v = router.allocate();
    v->set_message({0xfee00000, 0x31});
    ASSERT_NE(chip.route_for(24, KVM_IRQ_ROUTING_MSI), nullptr);
    v->set_message({0x12345678, 0x31});  // guest wrote garbage
    EXPECT_EQ(chip.route_for(24, KVM_IRQ_ROUTING_MSI), nullptr);
    EXPECT_EQ(chip.irqfds.size(), 1u) << "the irqfd stays bound; triggers just go nowhere";
}

TEST(GsiRouter, TriggerSignalsTheBoundEventfd) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    auto v = router.allocate();
    ASSERT_EQ(chip.irqfds.size(), 1u);
    int fd = chip.irqfds.begin()->first;
    v->trigger();
    v->trigger();
    uint64_t count = 0;
    ASSERT_EQ(::read(fd, &count, sizeof count), static_cast<ssize_t>(sizeof count));
    EXPECT_EQ(count, 2u);
}

TEST(GsiRouter, DestroyingAVectorUnbindsAndUnroutesItAndFreesTheGsi) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    auto a = router.allocate();
    auto b = router.allocate();
    a->set_message({0xfee00000, 0x41});
    b->set_message({0xfee00000, 0x42});
    a.reset();
    EXPECT_EQ(chip.route_for(24, KVM_IRQ_ROUTING_MSI), nullptr);
    EXPECT_NE(chip.route_for(25, KVM_IRQ_ROUTING_MSI), nullptr);
    ASSERT_EQ(chip.irqfds.size(), 1u);
    EXPECT_EQ(chip.irqfds.begin()->second, 25u);

    auto c = router.allocate();
    std::set<uint32_t> gsis;
    for (auto [fd, gsi] : chip.irqfds) gsis.insert(gsi);
    EXPECT_EQ(gsis, (std::set<uint32_t>{24, 25})) << "GSI 24 is reused";
}

TEST(GsiRouter, FullTableThrows) {
    FakeIrqChip chip;
    GsiRouter router(chip, 26);  // room for GSIs 24 and 25
    auto a = router.allocate();
    auto b = router.allocate();
    EXPECT_THROW(router.allocate(), Error);
    b.reset();
    EXPECT_NO_THROW(b = router.allocate());
}

TEST(GsiRouter, FailedIrqfdLeavesNoVectorBehind) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    chip.fail = true;
    EXPECT_THROW(router.allocate(), Error);
    EXPECT_EQ(router.vector_count(), 0u);
    chip.fail = false;
    auto v = router.allocate();
    ASSERT_EQ(chip.irqfds.size(), 1u);
    EXPECT_EQ(chip.irqfds.begin()->second, 24u);
}

TEST(GsiRouter, ConcurrentUpdatesKeepTheTableConsistent) {
    FakeIrqChip chip;
    GsiRouter router(chip, 1024);
    std::vector<std::unique_ptr<MsiVector>> vectors;
    for (int i = 0; i < 8; ++i) vectors.push_back(router.allocate());
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&, t] {
            for (uint32_t i = 0; i < 200; ++i) vectors[t]->set_message({0xfee00000, i * 8 + t});
        });
    for (auto& th : threads) th.join();
    for (int t = 0; t < 8; ++t) {
        const auto* route = chip.route_for(24 + t, KVM_IRQ_ROUTING_MSI);
        ASSERT_NE(route, nullptr);
        EXPECT_EQ(route->u.msi.data, 199u * 8 + t) << "vector " << t << " keeps its last message";
    }
}

}  // namespace
}  // namespace tapvm::kvm
