// The usual visitor helper for std::visit over several lambdas.
#pragma once

namespace tapvm::kvm {

template <class... F>
struct Overloaded : F... {
    using F::operator()...;
};

}  // namespace tapvm::kvm
