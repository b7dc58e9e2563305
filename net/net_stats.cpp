#include "net/net_stats.h"

#include <nlohmann/json.hpp>

namespace tapvm::net {

nlohmann::json to_json(const NetStats& s) {
    using nlohmann::json;
    json rx = {
        {"packets", s.rx.packets.get()},
        {"bytes", s.rx.bytes.get()},
        {"buffers_used", s.rx.buffers_used.get()},
        {"kicks", s.rx.kicks.get()},
        {"interrupts", s.rx.interrupts.get()},
        {"out_of_buffers", s.rx.out_of_buffers.get()},
        {"spilled", s.rx.spilled.get()},
        {"dropped",
         {{"oversize", s.rx.dropped_oversize.get()},
          {"bad_chain", s.rx.dropped_bad_chain.get()},
          {"tap_error", s.rx.dropped_tap_error.get()}}},
    };
    json tx = {
        {"packets", s.tx.packets.get()},
        {"bytes", s.tx.bytes.get()},
        {"kicks", s.tx.kicks.get()},
        {"interrupts", s.tx.interrupts.get()},
        {"tap_full", s.tx.tap_full.get()},
        {"dropped",
         {{"writable_descriptors", s.tx.dropped_writable.get()},
          {"too_short", s.tx.dropped_short.get()},
          {"too_many_segments", s.tx.dropped_fragmented.get()},
          {"tap_error", s.tx.dropped_tap_error.get()},
          {"no_buffers", s.tx.dropped_no_buffers.get()},
          {"bad_header", s.tx.dropped_bad_header.get()}}},
    };
    json ctrl = {
        {"commands", s.ctrl.commands.get()},
        {"errors", s.ctrl.errors.get()},
        {"malformed", s.ctrl.malformed.get()},
        {"interrupts", s.ctrl.interrupts.get()},
    };
    return json{{"rx", rx}, {"tx", tx}, {"ctrl", ctrl}, {"needs_reset", s.needs_reset.get()}};
}

}  // namespace tapvm::net
