/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// The BPF side's lifetime: choose an attach family by a real trial (load + attach), read the maps.
// Links belong to this process and are never pinned: when ctbpf dies, even by SIGKILL, the kernel
// detaches every program.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <utility>
#include <memory>
#include <span>
#include <optional>
#include <string>
#include <vector>

#include "core/attribution.h"
#include "core/sample.h"

struct conntrack_bpf;  // the generated skeleton
struct bpf_link;
struct ring_buffer;

namespace ctbpf::kernel {

struct FamilyTrial {
  bool usable = false;
  std::string reason;  // why not, or what was attached
  core::Observability obs;  // what the attached programs observe (when usable)
};

class Tracer {
public:
  struct Options {
    std::optional<core::Mode> forced;  // --mode; empty = auto
    uint32_t event_mask = 0;           // 1 << enum ctbpf_event_kind
    uint32_t ring_bytes = 1 << 20;     // ring buffer size when events are on (power of 2)
    uint32_t lifetime_one_in = 8;      // keep births of 1 entry in N (power of 2)
    uint32_t chain_one_in = 1;         // walk the chain of 1 insert in N (power of 2)
    uint32_t births_max = 1 << 16;     // bound of the births map (preallocated)
    bool track_sources = false;        // per-source counts (ctbpf top)
    bool track_ports = false;          // per-destination-port inserts (ctbpf doctor)
    uint32_t drop_events_per_s = 0;    // in-kernel limit of drop events per CPU (serve); 0 = none

    // The reader is woken once this much of the ring waits (bpf/event_ring.bpf.h, submit_event()).
    uint32_t wakeup_bytes() const { return ring_bytes / 4; }
  };

  /// Loads and attaches the first family that works (fentry, kprobe, tracepoint), or the forced one.
  /// Throws Error (exit 3) naming what is missing.
  static std::unique_ptr<Tracer> start(const Options& options);
  /// Loads and attaches one family, then detaches it: the honest answer to "does it work here?".
  static FamilyTrial trial(core::Mode family);

  using EventHandler = std::function<void(std::span<const std::byte>)>;
  /// Waits up to timeout_ms for ring-buffer records and hands each to `handler`. The kernel side
  /// wakes it only once a quarter of the ring waits, so callers must poll with short timeouts
  /// (the latency of a lone event).
  void poll_events(int timeout_ms, const EventHandler& handler);
  /// Hands every record already in the ring to `handler`, without waiting.
  void drain_events(const EventHandler& handler);

  ~Tracer();
  Tracer(const Tracer&) = delete;
  Tracer& operator=(const Tracer&) = delete;

  core::Mode mode() const { return mode_; }
  const core::Observability& observability() const { return observability_; }
  /// Cumulative counters now: maps summed over CPUs, the kernel's stats, the table gauges.
  core::Sample sample() const;
  /// Cumulative inserts/destroys per source address (with track_sources), summed over CPUs.
  core::BySource sources() const;
  /// Cumulative inserts per (L4 protocol, destination port) (with track_ports), summed over CPUs.
  std::map<std::pair<uint8_t, uint16_t>, uint64_t> ports() const;

  /// libbpf's messages go to stderr at level 1; its debug messages and verifier logs too at 2.
  static void set_verbose(int level);

private:
  Tracer() = default;
  static std::unique_ptr<Tracer> load(core::Mode family, const Options& options, std::string& why_not);
  // load()'s phases, in order; each false with why_not set when the family cannot work.
  void size_maps(const Options& options);
  bool choose_programs(core::Mode family, int& conntrack_btf, std::string& why_not);
  void ask_btf(core::Mode family);
  bool map_cpu_state(std::string& why_not);
  bool attach_programs(std::string& why_not);
  static int on_ring_record(void* ctx, void* data, size_t size);
  std::optional<uint64_t> kprobe_misses() const;
  void read_nat_drops(core::Sample& s) const;

  core::Mode mode_ = core::Mode::tracepoint;
  core::Observability observability_;
  ::conntrack_bpf* skel_ = nullptr;
  std::vector<bpf_link*> links_;
  std::vector<bpf_link*> kprobe_links_;  // kprobe family: their perf link info counts skipped hits (6.7+)
  bool kprobe_misses_reported_ = false;
  ring_buffer* ring_ = nullptr;
  const EventHandler* handler_ = nullptr;  // set only while polling
  // The `cpu_state` map, mmapped read-only: one struct ctbpf_cpu_state per possible CPU.
  const ctbpf_cpu_state* cpu_state_ = nullptr;
  size_t cpu_state_bytes_ = 0;
  int cpus_ = 0;
  std::map<uint32_t, std::string> drop_reason_names_;  // enum skb_drop_reason, without its prefix
  // The last reading of the nat_blackholes and dns_races maps, and the counters it was read at.
  struct NatDropsRead {
    uint64_t blackholed = 0, refused = 0;
    bool blackholes_again = false, races_again = false;
    std::vector<core::BlackholeFlow> blackholes;
    std::vector<core::DnsRace> races;
  };
  mutable NatDropsRead nat_read_;
};

}  // namespace ctbpf::kernel
