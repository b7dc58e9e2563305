// Runs the real tapvm binary (optionally inside a network namespace the test
// owns), follows the guest console, and parses the guest runner's
// machine-readable lines:
//   TAPVM-MARK <name> ...              progress markers (init-start, done)
//   TAPVM-RESULT <check> PASS|FAIL ... one line per guest-side check
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace tapvm::it {

inline bool have_kvm() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }
inline bool have_tun() { return ::access("/dev/net/tun", R_OK | W_OK) == 0; }

// Tests that boot a guest under tapvm run where KVM is: scripts/test.sh runs
// them inside the nested-KVM rig (scripts/nested-kvm.sh) on every machine,
// and the boot group natively where the machine has /dev/kvm.  Run anywhere
// else they fail: a test that cannot run is not a test that passed.
#define TAPVM_REQUIRE_KVM()                                                                   \
    do {                                                                                      \
        if (!::tapvm::it::have_kvm())                                                         \
            GTEST_FAIL() << "/dev/kvm is missing here: run this test through scripts/test.sh, " \
                            "which runs it inside the nested-KVM rig (scripts/nested-kvm.sh)"; \
    } while (0)
#define TAPVM_REQUIRE_TUN()                                                                    \
    do {                                                                                       \
        if (!::tapvm::it::have_tun())                                                          \
            GTEST_SKIP() << "SKIPPED LOUDLY: /dev/net/tun is missing; this test needs a tap";  \
    } while (0)

// The guest image built by scripts/build-guest-image.sh (scripts/test.sh
// exports its directory).  Missing image = broken set-up = test failure.
struct GuestImage {
    std::string lean_kernel, stock_kernel, lean_initramfs, stock_initramfs;
};

inline std::optional<GuestImage> find_guest_image(std::string& why) {
    const char* dir = std::getenv("TAPVM_GUEST_DIR");
    if (!dir || !*dir) {
        why = "TAPVM_GUEST_DIR is not set: run the tests through scripts/test.sh";
        return std::nullopt;
    }
    std::filesystem::path d(dir);
    GuestImage g{(d / "lean-bzImage").string(), (d / "stock-vmlinuz").string(),
                 (d / "lean-initramfs.cpio").string(), (d / "stock-initramfs.cpio").string()};
    for (auto* p : {&g.lean_kernel, &g.stock_kernel, &g.lean_initramfs, &g.stock_initramfs}) {
        if (!std::filesystem::exists(*p)) {
            why = "guest image incomplete: " + *p + " is missing";
            return std::nullopt;
        }
    }
    return g;
}

struct GuestResult {
    bool pass = false;
    std::string details;
};

struct GuestRun {
    int exit_status = -1;       // exit code, or 128+signal
    std::string console;        // everything tapvm wrote to stdout
    std::string errors;         // everything tapvm wrote to stderr
    std::map<std::string, GuestResult> results;
    std::vector<std::string> marks;
    double seconds_to_init = -1;   // process start -> first "TAPVM-MARK init-start"
    double seconds_total = 0;
    long max_rss_kib = 0;
    bool stopped_at_marker = false;
    bool watchdog_fired = false;

    bool has_mark(const std::string& m) const {
        for (const auto& x : marks)
            if (x == m) return true;
        return false;
    }
};

struct RunOptions {
    std::vector<std::string> args;             // program arguments
    std::optional<std::string> netns;          // run inside this namespace
    std::optional<std::string> stop_at;        // signal tapvm once this console text appears
    int stop_at_count = 1;                     // ... this many times
    int stop_signal = SIGTERM;                 // ... with this signal
    // Signals sent without stopping: each once, at the first whole console
    // line containing its text (before on_line sees the line).
    struct SignalAt {
        std::string text;
        int signal;
    };
    std::vector<SignalAt> signals_at;
    std::function<void(const std::string&)> on_line;  // called per console line
    // Liveness, not speed: a guest silent for this long is stuck; it is
    // killed and the run says so (GuestRun::watchdog_fired).  0: never.
    int silence_limit_seconds = 600;
    std::string program;                       // empty: the tapvm binary
    int stdin_fd = -1;                         // tapvm's stdin (default /dev/null)
};

inline std::string tapvm_binary() { return TAPVM_BINARY; }

inline int occurrences(const std::string& text, const std::string& what) {
    int n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
    return n;
}

inline GuestRun run_tapvm(const RunOptions& opt) {
    std::vector<std::string> argv;
    if (opt.netns) argv = {"ip", "netns", "exec", *opt.netns};
    argv.push_back(opt.program.empty() ? tapvm_binary() : opt.program);
    argv.insert(argv.end(), opt.args.begin(), opt.args.end());

    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) throw std::runtime_error("pipe");
    auto start = std::chrono::steady_clock::now();
    pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        int in = opt.stdin_fd >= 0 ? opt.stdin_fd : ::open("/dev/null", O_RDONLY);
        ::dup2(in, 0);
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        ::execvp(cargv[0], cargv.data());
        _exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);

    GuestRun run;
    std::string pending;
    int stop_hits = 0;
    std::vector<bool> signals_sent(opt.signals_at.size(), false);
    bool out_open = true, err_open = true;
    auto elapsed = [&] {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    auto handle_line = [&](const std::string& line) {
        std::istringstream in(line);
        std::string tag;
        in >> tag;
        if (tag == "TAPVM-MARK") {
            std::string name;
            in >> name;
            run.marks.push_back(name);
            if (name == "init-start" && run.seconds_to_init < 0) run.seconds_to_init = elapsed();
        } else if (tag == "TAPVM-RESULT") {
            std::string name, verdict;
            in >> name >> verdict;
            std::string rest;
            std::getline(in, rest);
            run.results[name] = GuestResult{verdict == "PASS", rest};
        }
        if (opt.on_line) opt.on_line(line);
    };
    auto last_output = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> kill_at;
    while (out_open || err_open) {
        pollfd fds[2] = {{out_open ? out[0] : -1, POLLIN, 0}, {err_open ? err[0] : -1, POLLIN, 0}};
        const int ready = ::poll(fds, 2, opt.silence_limit_seconds ? 1000 : -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (ready > 0) last_output = std::chrono::steady_clock::now();
        const auto now = std::chrono::steady_clock::now();
        if (opt.silence_limit_seconds && !run.watchdog_fired &&
            now - last_output > std::chrono::seconds(opt.silence_limit_seconds)) {
            // Where it is stuck first: SIGUSR1 makes tapvm log every vCPU's
            // registers and every NIC's counters; then it is killed.
            run.watchdog_fired = true;
            kill_at = now + std::chrono::seconds(3);
            std::cout << "\n[tapvm-it] no console output for " << opt.silence_limit_seconds
                      << " s: the guest is stuck; asking for a state report, then killing it\n";
            ::kill(pid, SIGUSR1);
        }
        if (kill_at && now >= *kill_at) {
            kill_at.reset();
            ::kill(pid, SIGKILL);
        }
        char buf[4096];
        if (fds[0].revents) {
            ssize_t n = ::read(out[0], buf, sizeof buf);
            if (n <= 0) {
                out_open = false;
            } else {
                run.console.append(buf, n);
                std::cout.write(buf, n);  // live console in the test log
                std::cout.flush();
                pending.append(buf, n);
                size_t nl;
                while ((nl = pending.find('\n')) != std::string::npos) {
                    std::string line = pending.substr(0, nl);
                    if (!line.empty() && line.back() == '\r') line.pop_back();
                    // The marker may be preceded by kernel timestamps or noise.
                    auto pos = line.find("TAPVM-");
                    // Report signals go first: the moment they capture is the
                    // line's, not whenever on_line is done.
                    for (size_t i = 0; i < opt.signals_at.size(); ++i)
                        if (!signals_sent[i] && line.find(opt.signals_at[i].text) != std::string::npos) {
                            signals_sent[i] = true;
                            ::kill(pid, opt.signals_at[i].signal);
                        }
                    handle_line(pos == std::string::npos ? line : line.substr(pos));
                    pending.erase(0, nl + 1);
                    // Whole lines only, after on_line has seen them: a
                    // signal sent on half a line would reach tapvm before
                    // on_line looked at the machine it describes.
                    if (opt.stop_at && line.find(*opt.stop_at) != std::string::npos) ++stop_hits;
                    if (opt.stop_at && !run.stopped_at_marker && stop_hits >= opt.stop_at_count) {
                        run.stopped_at_marker = true;
                        ::kill(pid, opt.stop_signal);
                    }
                }
            }
        }
        if (fds[1].revents) {
            ssize_t n = ::read(err[0], buf, sizeof buf);
            if (n <= 0) err_open = false;
            else {
                run.errors.append(buf, n);
                std::cerr.write(buf, n);
            }
        }
    }
    ::close(out[0]);
    ::close(err[0]);
    int status = 0;
    rusage usage{};
    ::wait4(pid, &status, 0, &usage);
    run.max_rss_kib = usage.ru_maxrss;
    run.seconds_total = elapsed();
    run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return run;
}

// A network namespace owned by one test: deleted (with every tap in it) on
// destruction, whatever happened.
class TestNetns {
public:
    explicit TestNetns(const std::string& tag)
        : name_("tapvm-it-" + tag + "-" + std::to_string(::getpid())) {
        sh("ip netns del " + name_ + " 2>/dev/null");
        if (sh("ip netns add " + name_) != 0) throw std::runtime_error("ip netns add " + name_);
        sh("ip -n " + name_ + " link set lo up");
    }
    ~TestNetns() { sh("ip netns del " + name_ + " 2>/dev/null"); }
    TestNetns(const TestNetns&) = delete;
    TestNetns& operator=(const TestNetns&) = delete;

    const std::string& name() const { return name_; }
    int exec(const std::string& command) const { return sh("ip netns exec " + name_ + " " + command); }
    // A command's standard output (trailing newline removed).
    std::string output(const std::string& command) const {
        std::string out;
        if (FILE* p = ::popen(("ip netns exec " + name_ + " " + command).c_str(), "r")) {
            char buf[256];
            while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
            ::pclose(p);
        }
        while (!out.empty() && out.back() == '\n') out.pop_back();
        return out;
    }
    static int sh(const std::string& command) {
        int s = std::system(command.c_str());
        return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
    }

private:
    std::string name_;
};

// The default kernel command line for test boots: the guest runner reads the
// tapvm.* parameters (scripts/guest/README.md).
inline std::string test_cmdline(const std::string& extra) {
    return "console=ttyS0 panic=-1 " + extra;
}

inline void report(const GuestRun& run, const std::string& what) {
    std::cout << "\n[tapvm-it] " << what << ": exit " << run.exit_status << ", /init after "
              << run.seconds_to_init << " s, total " << run.seconds_total << " s, max RSS "
              << run.max_rss_kib / 1024 << " MiB\n";
}

}  // namespace tapvm::it
