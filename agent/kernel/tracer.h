#pragma once
// The BPF side's lifetime: choose an attach family by a real trial (load + attach), read the maps.
// Links belong to this process and are never pinned: when ctbpf dies, even by SIGKILL, the kernel
// detaches every program.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/sample.h"

struct conntrack_bpf;  // the generated skeleton
struct bpf_link;

namespace ctbpf::kernel {

struct FamilyTrial {
  bool usable = false;
  std::string reason;  // why not, or what was attached
};

class Tracer {
public:
  struct Options {
    std::optional<core::Mode> forced;  // --mode; empty = auto
  };

  /// Loads and attaches the first family that works (fentry, kprobe, tracepoint), or the forced one.
  /// Throws Error (exit 3) naming what is missing.
  static std::unique_ptr<Tracer> start(const Options& options);
  /// Loads and attaches one family, then detaches it: the honest answer to "does it work here?".
  static FamilyTrial trial(core::Mode family);

  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  core::Mode mode() const { return mode_; }
  const core::Observability& observability() const { return observability_; }
  /// Cumulative counters now: maps summed over CPUs, the kernel's stats, the table gauges.
  core::Sample sample() const;

  /// libbpf's own messages go to stderr (debug level included) when set.
  static void set_verbose(bool verbose);

private:
  Tracer() = default;
  static std::unique_ptr<Tracer> load(core::Mode family, std::string& why_not);

  core::Mode mode_ = core::Mode::tracepoint;
  core::Observability observability_;
  ::conntrack_bpf* skel_ = nullptr;
  std::vector<bpf_link*> links_;
};

}  // namespace ctbpf::kernel
