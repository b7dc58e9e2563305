// Error conventions for tapvm.
//
// Set-up problems (bad command line, missing file, a KVM ioctl that fails)
// are exceptions: they abort machine assembly with one clear line.  Guest
// mistakes on a running machine are NOT exceptions: they are expected events
// that a device reports as a value (see e.g. virtio/chain_error.h), counts,
// and logs once.
#pragma once

#include <stdexcept>
#include <string>

namespace tapvm {

// Anything that stops tapvm from starting or running a machine.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The user asked for something impossible (command line, config file).
// main() turns this into one line on stderr and exit status 2.
class UsageError : public Error {
public:
    using Error::Error;
};

// Throws Error("<what>: <strerror(errno)>").
[[noreturn]] void throw_errno(const std::string& what);
// Same with an explicit errno value.
[[noreturn]] void throw_errno(const std::string& what, int err);

}  // namespace tapvm
