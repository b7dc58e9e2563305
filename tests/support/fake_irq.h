// Recording fakes for the interrupt and ioevent interfaces of vmm/.
#pragma once

#include <atomic>
#include <mutex>
#include <vector>

#include "vmm/io_event.h"
#include "vmm/irq.h"

namespace tapvm::testing {

class FakeIrqLine : public IrqLine {
public:
    void set_level(bool asserted) override {
        std::lock_guard g(mutex_);
        if (asserted && !level_) ++rising_edges_;
        level_ = asserted;
    }
    bool level() const { std::lock_guard g(mutex_); return level_; }
    int rising_edges() const { std::lock_guard g(mutex_); return rising_edges_; }

private:
    mutable std::mutex mutex_;
    bool level_ = false;
    int rising_edges_ = 0;
};

class FakeMsiVector : public MsiVector {
public:
    void set_message(const MsiMessage& m) override { message = m; ++updates; }
    void trigger() override { ++triggers; }
    MsiMessage message;
    int updates = 0;
    std::atomic<int> triggers{0};
};

// Hands out FakeMsiVectors and keeps pointers to them for inspection.
class FakeMsiAllocator : public MsiAllocator {
public:
    std::unique_ptr<MsiVector> allocate() override {
        auto v = std::make_unique<FakeMsiVector>();
        vectors.push_back(v.get());
        return v;
    }
    std::vector<FakeMsiVector*> vectors;
};

class FakeIoEventRegistry : public IoEventRegistry {
public:
    void add(const IoEventSpec& s) override { std::lock_guard g(mutex); active.push_back(s); }
    void remove(const IoEventSpec& s) override {
        std::lock_guard g(mutex);
        std::erase(active, s);
    }
    std::mutex mutex;
    std::vector<IoEventSpec> active;
};

}  // namespace tapvm::testing
