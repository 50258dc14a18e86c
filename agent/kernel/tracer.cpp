// SPDX-License-Identifier: Apache-2.0
#include "kernel/tracer.h"

#include <malloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstddef>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>
#include <utility>

#include "conntrack.skel.h"
#include "kernel/error.h"
#include "kernel/netlink_stats.h"
#include "kernel/system.h"

namespace ctbpf::kernel {

namespace {

int g_verbose = 0;  // -v: 1, -vv: 2
std::mutex g_log_mutex;
// libbpf's most specific warning since the last take: the first one naming a program, else the last.
std::string g_last_warning;
bool g_warning_names_program = false;

int on_libbpf_print(enum libbpf_print_level level, const char* format, va_list args) {
  // Verifier logs arrive as one long message: size the buffer to it.
  va_list copy;
  va_copy(copy, args);
  int length = vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string text(static_cast<size_t>(std::max(length, 0)) + 1, '\0');
  vsnprintf(text.data(), text.size(), format, args);
  text.resize(static_cast<size_t>(std::max(length, 0)));
  while (!text.empty() && text.back() == '\n') text.pop_back();
  if (level == LIBBPF_WARN) {
    std::lock_guard lock(g_log_mutex);
    bool names_program = text.find("prog '") != std::string::npos;
    if (!g_warning_names_program) {
      g_last_warning = text.rfind("libbpf: ", 0) == 0 ? text.substr(8) : text;
      g_warning_names_program = names_program;
    }
  }
  // Debug chatter and verifier logs (thousands of lines) only at -vv.
  const bool chatter = level == LIBBPF_DEBUG || text.find("PROG LOAD LOG") != std::string::npos;
  if (g_verbose >= (chatter ? 2 : 1)) fprintf(stderr, "%s\n", text.c_str());
  return 0;
}

// Start-up phases with --verbose, one line a family: where load+attach time goes on a slow machine.
class PhaseClock {
public:
  explicit PhaseClock(core::Mode family) : family_(family) {}
  void lap(const char* phase) {
    auto now = std::chrono::steady_clock::now();
    laps_ += fmt::format("{}{} {:.3f} s ({:.1f} MB)", laps_.empty() ? "" : ", ", phase,
                         std::chrono::duration<double>(now - last_).count(), peak_rss_mb());
    last_ = now;
  }
  ~PhaseClock() {
    if (g_verbose) fprintf(stderr, "ctbpf: start-up %s: %s\n", core::to_string(family_).c_str(), laps_.c_str());
  }

private:
  // VmHWM: the process's peak resident set so far, to see which phase sets it.
  static double peak_rss_mb() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024;
    return 0;
  }
  core::Mode family_;
  std::string laps_;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

std::string take_last_warning() {
  std::lock_guard lock(g_log_mutex);
  g_warning_names_program = false;
  return std::exchange(g_last_warning, {});
}

struct ProgramInfo {
  std::optional<core::Mode> family;  // empty: always loaded (tp_btf)
  std::string function;              // kernel function the section names
  bool is_return = false;
};

ProgramInfo describe(const bpf_program* prog) {
  std::string section = bpf_program__section_name(prog);
  auto slash = section.find('/');
  std::string kind = section.substr(0, slash), target = section.substr(slash + 1);
  if (kind == "fentry" || kind == "fexit") return {core::Mode::fentry, target, kind == "fexit"};
  if (kind == "kprobe" || kind == "kretprobe") return {core::Mode::kprobe, target, kind == "kretprobe"};
  return {std::nullopt, target, false};
}

/*
 * Probe points that may be missing without losing the trace: early_drop() is static (GCC may inline
 * it or clone it as early_drop.isra.N), and nf_ct_resolve_clash() is static too. Without them,
 * table_full, early_drop and chaintoolong are reported as null. The fentry family needs
 * nf_ct_resolve_clash() though: its confirm exit learns of clashes only from it (there is no fentry
 * on confirm), so without it that family is unusable and the kprobe family is tried. Every other
 * point is an exported symbol: __nf_conntrack_confirm, nf_ct_delete, nf_conntrack_free (the last one
 * is the stable end of every entry's life on all kernels, unlike destroy_conntrack(), which 5.17's commit
 * 6ae7989c9af0 ("netfilter: conntrack: avoid useless indirection during conntrack destruction")
 * turned into nf_ct_destroy()).
 */
bool is_optional(core::Mode family, const std::string& function) {
  return function == "early_drop" || (function == "nf_ct_resolve_clash" && family != core::Mode::fentry);
}

// Empty when `family` can attach to `function` and see every call, else why not. fentry attaches to
// the BTF function, the entry of a split one (kernel/system.cpp): that misses callers of its part.
std::optional<std::string> function_missing(core::Mode family, const std::string& function) {
  if (family == core::Mode::fentry) {
    if (!btf_has_function(function)) {
      // A module's functions are in its own BTF, which kernels before 5.11 do not have
      // (CONFIG_DEBUG_INFO_BTF_MODULES); fentry on module functions needs 5.11 too.
      if (access("/sys/module/nf_conntrack/initstate", F_OK) == 0 && access("/sys/kernel/btf/nf_conntrack", F_OK) != 0)
        return fmt::format("kernel function {} not found in BTF: the nf_conntrack module has no module BTF "
                           "(5.11+, CONFIG_DEBUG_INFO_BTF_MODULES), so fentry cannot attach to it",
                           function);
      return fmt::format("kernel function {} not found in BTF", function);
    }
    auto target = kprobe_target(function);
    if (target.split) return fmt::format("{}; fentry sees only {} itself", target.why, function);
    return std::nullopt;
  }
  auto target = kprobe_target(function);
  if (target.symbol) return std::nullopt;
  return target.why;
}

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

// The BTF id (and module BTF object, 0 for vmlinux) of each fentry/fexit target, set before each load.
struct AttachTarget {
  uint32_t btf_id = 0;
  int btf_obj_fd = 0;
};
std::map<std::string, AttachTarget> g_attach_targets;

/*
 * libbpf 1.1 finds a fentry/fexit program's target at load by name: a linear scan of vmlinux BTF, then of
 * every loaded module's BTF (each scan starting again at vmlinux's first type), for every program: about
 * 1 s of start-up in the 6.1 guest under qemu TCG. ctbpf has the ids already (one pass, kernel/system.cpp),
 * so its own handlers for the "fentry/" and "fexit/" sections hand them to the kernel instead.
 */
int prepare_trace_load(bpf_program* prog, bpf_prog_load_opts* opts, long /*cookie*/) {
  auto it = g_attach_targets.find(describe(prog).function);
  if (it == g_attach_targets.end()) return -ESRCH;
  opts->attach_btf_id = it->second.btf_id;
  opts->attach_btf_obj_fd = it->second.btf_obj_fd;
  return 0;
}

// Once per process, before the first open: libbpf matches a program's section to a handler at open.
void register_trace_handlers() {
  static const bool registered = [] {
    LIBBPF_OPTS(libbpf_prog_handler_opts, opts, .prog_prepare_load_fn = prepare_trace_load);
    return libbpf_register_prog_handler("fentry/", BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, &opts) > 0 &&
           libbpf_register_prog_handler("fexit/", BPF_PROG_TYPE_TRACING, BPF_TRACE_FEXIT, &opts) > 0;
  }();
  (void)registered;
}

// Closes a descriptor when the load is over.
struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) close(fd);
  }
};

// Calls fn(key, values) for every entry of a hash map, values holding one Value per CPU (a per-CPU
// map) or one.
template <typename Key, typename Value, typename Fn>
void for_each_entry(const bpf_map* map, Fn&& fn) {
  const bool percpu = bpf_map__type(map) == BPF_MAP_TYPE_PERCPU_HASH || bpf_map__type(map) == BPF_MAP_TYPE_LRU_PERCPU_HASH;
  std::vector<Value> per_cpu(percpu ? static_cast<size_t>(libbpf_num_possible_cpus()) : 1);
  Key key{}, next{};
  const Key* prev = nullptr;
  while (bpf_map__get_next_key(map, prev, &next, sizeof(Key)) == 0) {
    key = next;
    prev = &key;
    if (bpf_map__lookup_elem(map, &key, sizeof(Key), per_cpu.data(), per_cpu.size() * sizeof(Value), 0) == 0)
      fn(key, per_cpu);
  }
}

}  // namespace

void Tracer::set_verbose(int level) { g_verbose = level; }

// Sizes and filters are fixed at load: the kernel side never grows.
void Tracer::size_maps(const Options& options) {
  skel_->rodata->event_mask = options.event_mask;
  skel_->rodata->lifetime_sample_mask = options.lifetime_one_in - 1;
  skel_->rodata->chain_sample_mask = options.chain_one_in - 1;
  skel_->rodata->track_sources = options.track_sources;
  skel_->rodata->track_ports = options.track_ports;
  skel_->rodata->drop_events_per_s = options.drop_events_per_s;
  skel_->rodata->wakeup_bytes = options.wakeup_bytes();
  if (!options.track_ports) bpf_map__set_max_entries(skel_->maps.port_counts, 1);
  if (!options.track_sources) bpf_map__set_max_entries(skel_->maps.source_counts, 1);
  bpf_map__set_max_entries(skel_->maps.births, options.births_max);
  cpus_ = libbpf_num_possible_cpus();
  bpf_map__set_max_entries(skel_->maps.cpu_state, static_cast<uint32_t>(cpus_));
  bpf_map__set_max_entries(skel_->maps.events,
                           options.event_mask ? options.ring_bytes : static_cast<uint32_t>(getpagesize()));
}

// The family's programs load, the others do not; an optional probe point the kernel lacks is left
// out, a required one fails the family. fentry programs are given their target's BTF id (and, for one
// in nf_conntrack's module, the module's BTF object, opened once into conntrack_btf).
bool Tracer::choose_programs(core::Mode family, int& conntrack_btf, std::string& why_not) {
  g_attach_targets.clear();
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    auto info = describe(prog);
    bool wanted = !info.family || *info.family == family;
    if (auto missing = wanted && info.family ? function_missing(family, info.function) : std::nullopt) {
      if (!is_optional(family, info.function)) {
        why_not = *missing;
        return false;
      }
      wanted = false;
    }
    bpf_program__set_autoload(prog, wanted);
    if (wanted && info.family == core::Mode::fentry) {
      auto target = btf_function(info.function);
      if (target && target->in_conntrack_module && conntrack_btf < 0) {
        conntrack_btf = open_conntrack_module_btf();
        if (conntrack_btf < 0) {
          why_not = fmt::format("cannot open nf_conntrack's module BTF object ({}){}", errno_text(errno),
                                errno == EPERM ? ": fentry on a module needs CAP_SYS_ADMIN" : "");
          return false;
        }
      }
      // No entry (no BTF object for the module): prepare_trace_load() fails the load with ESRCH.
      if (target && (!target->in_conntrack_module || conntrack_btf >= 0))
        g_attach_targets[info.function] = {target->id, target->in_conntrack_module ? conntrack_btf : 0};
    }
    // With -vv, the verifier's statistics (log level 4: insns processed, states): what load+verify costs.
    if (g_verbose >= 2) bpf_program__set_log_level(prog, 4);
  }
  return true;
}

// What BTF says, asked before libbpf parses its own copy of it: one copy in memory at a time.
void Tracer::ask_btf(core::Mode family) {
  observability_.kernel_has_chaintoolong = btf_has_member("ip_conntrack_stat", "chaintoolong");
  observability_.netfilter_drop_reason = btf_has_enum_value("skb_drop_reason", "SKB_DROP_REASON_NETFILTER_DROP");
  drop_reason_names_ = btf_enum_names("skb_drop_reason", "SKB_DROP_REASON_");
  observability_.drop_reasons = drop_reason_names_.count(0) != 0;  // SKB_DROP_REASON_NOT_SPECIFIED
  // 6.7 made the kernel count the kprobe hits it skips (kretprobe maxactive, another BPF program
  // running on the CPU) and report them in each perf link's info; before, nobody can know them.
  kprobe_misses_reported_ = family == core::Mode::kprobe && btf_has_nested_member("bpf_link_info", "missed");
  release_btf();
}

bool Tracer::map_cpu_state(std::string& why_not) {
  // An array's elements sit 8-byte aligned from the mapping's start (kernel/bpf/arraymap.c).
  static_assert(sizeof(ctbpf_cpu_state) % 8 == 0);
  cpu_state_bytes_ = sizeof(ctbpf_cpu_state) * static_cast<size_t>(cpus_);
  void* state = mmap(nullptr, cpu_state_bytes_, PROT_READ, MAP_SHARED, bpf_map__fd(skel_->maps.cpu_state), 0);
  if (state == MAP_FAILED) {
    why_not = fmt::format("mapping the per-CPU counters failed: {}", errno_text(errno));
    return false;
  }
  cpu_state_ = static_cast<const ctbpf_cpu_state*>(state);
  return true;
}

// Attaches every loaded program, and records what the attached set can observe.
bool Tracer::attach_programs(std::string& why_not) {
  bool early_drop = false, resolve_clash = false;
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (!bpf_program__autoload(prog)) continue;
    auto info = describe(prog);
    bpf_link* link = nullptr;
    if (info.family == core::Mode::kprobe) {
      auto symbol = resolve_kernel_function(info.function).value_or(info.function);
      link = bpf_program__attach_kprobe(prog, info.is_return, symbol.c_str());
    } else if (info.family == core::Mode::fentry) {
      link = bpf_program__attach_trace(prog);  // ctbpf's section handlers have no auto-attach
    } else {
      link = bpf_program__attach(prog);
    }
    if (!link) {
      int err = errno;
      auto detail = take_last_warning();
      why_not = fmt::format("attaching {} failed: {}{}", bpf_program__section_name(prog),
                            errno_text(err), detail.empty() ? "" : " (" + detail + ")");
      return false;
    }
    links_.push_back(link);
    if (info.family == core::Mode::kprobe) kprobe_links_.push_back(link);
    if (info.function == "early_drop") early_drop = true;
    if (info.function == "nf_ct_resolve_clash") resolve_clash = true;
  }
  auto& obs = observability_;
  obs.conntrack_points = mode_ != core::Mode::tracepoint;
  // Both halves of early_drop (entry and return) must be attached to count anything.
  obs.early_drop = obs.conntrack_points && early_drop;
  obs.resolve_clash = obs.conntrack_points && resolve_clash;
  return true;
}

std::unique_ptr<Tracer> Tracer::load(core::Mode family, const Options& options, std::string& why_not) {
  libbpf_set_print(on_libbpf_print);
  take_last_warning();

  PhaseClock clock(family);
  register_trace_handlers();
  std::unique_ptr<Tracer> t(new Tracer());
  t->mode_ = family;
  t->skel_ = conntrack_bpf__open();
  clock.lap("open");
  if (!t->skel_) {
    why_not = fmt::format("opening the BPF object failed: {}", errno_text(errno));
    return nullptr;
  }
  t->size_maps(options);
  FdCloser conntrack_btf;  // the kernel keeps its own reference from each program's load on
  if (!t->choose_programs(family, conntrack_btf.fd, why_not)) return nullptr;
  clock.lap("symbols");
  t->ask_btf(family);
  clock.lap("btf queries");

  if (int err = conntrack_bpf__load(t->skel_); err) {
    auto detail = take_last_warning();
    why_not = fmt::format("loading programs failed: {}{}", errno_text(err),
                          detail.empty() ? "" : " (" + detail + ")");
    return nullptr;
  }
  clock.lap("load+verify");
  if (!t->map_cpu_state(why_not) || !t->attach_programs(why_not)) return nullptr;
  clock.lap("attach");
  t->observability_.lifetime_one_in = options.lifetime_one_in;
  t->observability_.chain_one_in = options.chain_one_in;

  if (options.event_mask) {
    t->ring_ = ring_buffer__new(bpf_map__fd(t->skel_->maps.events), on_ring_record, t.get(), nullptr);
    if (!t->ring_) {
      why_not = fmt::format("opening the ring buffer failed: {}", errno_text(errno));
      return nullptr;
    }
  }
  return t;
}

int Tracer::on_ring_record(void* ctx, void* data, size_t size) {
  auto* self = static_cast<Tracer*>(ctx);
  if (self->handler_) (*self->handler_)({static_cast<const std::byte*>(data), size});
  return 0;
}

void Tracer::poll_events(int timeout_ms, const EventHandler& handler) {
  if (!ring_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(timeout_ms));
    return;
  }
  handler_ = &handler;
  ring_buffer__poll(ring_, timeout_ms);  // woken early only once a quarter of the ring waits
  ring_buffer__consume(ring_);           // what arrived without a wake-up (conntrack.bpf.c, submit_event)
  handler_ = nullptr;
}

void Tracer::drain_events(const EventHandler& handler) {
  if (!ring_) return;
  handler_ = &handler;
  ring_buffer__consume(ring_);
  handler_ = nullptr;
}

Tracer::~Tracer() {
  if (cpu_state_) munmap(const_cast<ctbpf_cpu_state*>(cpu_state_), cpu_state_bytes_);
  if (ring_) ring_buffer__free(ring_);
  for (auto* link : links_) bpf_link__destroy(link);
  if (skel_) conntrack_bpf__destroy(skel_);
}

std::unique_ptr<Tracer> Tracer::start(const Options& options) {
  if (auto missing = missing_bpf_privileges()) throw Error(kExitUnsupported, *missing);
  if (!conntrack_present())
    throw Error(kExitUnsupported,
                "nf_conntrack is not in the running kernel: load it (modprobe nf_conntrack) or add a "
                "rule that uses conntrack, then run ctbpf again");

  warn_missing_privileges(options.forced);
  std::vector<core::Mode> order = {core::Mode::fentry, core::Mode::kprobe, core::Mode::tracepoint};
  if (options.forced) order = {*options.forced};
  std::string reasons;
  for (auto family : order) {
    std::string why_not;
    if (auto t = load(family, options, why_not)) {
      // Start-up is over: give back the heap that parsing BTF and kallsyms left behind.
      malloc_trim(0);
      return t;
    }
    reasons += fmt::format("{}{}: {}", reasons.empty() ? "" : "; ", core::to_string(family), why_not);
  }
  if (options.forced) {
    // A family asked for by name: say it is that one that failed, and which one works instead (a
    // trial of the others, in auto's order), not that nothing does.
    std::string works;
    for (auto family : {core::Mode::fentry, core::Mode::kprobe, core::Mode::tracepoint}) {
      std::string why_not;
      if (family == *options.forced || !load(family, Options{}, why_not)) continue;
      works = core::to_string(family);
      break;
    }
    throw Error(kExitUnsupported,
                fmt::format("{} mode is not available on this kernel ({}); {}", core::to_string(*options.forced),
                            reasons.substr(reasons.find(": ") + 2),
                            works.empty() ? "no other attach family works either (ctbpf features says why)"
                                          : fmt::format("{} mode works: --mode {}, or leave --mode out (auto "
                                                        "picks the first that works)",
                                                        works, works)));
  }
  throw Error(kExitUnsupported, fmt::format("no attach family works on this kernel ({})", reasons));
}

FamilyTrial Tracer::trial(core::Mode family) {
  std::string why_not;
  if (auto t = load(family, Options{}, why_not))
    return {true, fmt::format("{} programs attached", t->links_.size()), t->observability_};
  return {false, why_not, {}};
}

std::map<std::pair<uint8_t, uint16_t>, uint64_t> Tracer::ports() const {
  std::map<std::pair<uint8_t, uint16_t>, uint64_t> out;
  for_each_entry<ctbpf_port_key, uint64_t>(skel_->maps.port_counts, [&](const auto& key, const auto& per_cpu) {
    auto& total = out[{key.l4, key.dport}];
    for (auto v : per_cpu) total += v;
  });
  return out;
}

core::BySource Tracer::sources() const {
  core::BySource out;
  for_each_entry<ctbpf_source_key, ctbpf_netns_counts>(
      skel_->maps.source_counts, [&](const auto& key, const auto& per_cpu) {
        core::SourceKey k;
        k.netns = key.netns;
        k.l3 = key.l3;
        std::copy(std::begin(key.addr), std::end(key.addr), k.addr.begin());
        auto& total = out[k];
        for (const auto& c : per_cpu) {
          total.inserts += c.inserts;
          total.destroys += c.destroys;
        }
      });
  return out;
}

namespace {

// struct bpf_link_info of a perf-event link as 6.7+ fills it (uapi linux/bpf.h; Debian 12's headers
// predate it). Older kernels fill the first three fields only: the rest stays 0.
struct PerfLinkInfo {
  uint32_t type, id, prog_id, _pad;
  uint32_t perf_event_type, _pad2;
  uint64_t func_name;
  uint32_t name_len, offset;
  uint64_t addr, missed, cookie;
  uint64_t _rest[8];
};
static_assert(offsetof(PerfLinkInfo, missed) == 48, "bpf_link_info.perf_event.kprobe.missed");

}  // namespace

std::optional<uint64_t> Tracer::kprobe_misses() const {
  if (mode_ != core::Mode::kprobe) return 0;
  if (!kprobe_misses_reported_) return std::nullopt;
  uint64_t missed = 0;
  for (auto* link : kprobe_links_) {
    PerfLinkInfo info{};
    uint32_t length = sizeof(info);
    if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &info, &length) != 0) return std::nullopt;
    missed += info.missed;
  }
  return missed;
}

// The two maps are read by syscall, which holds this CPU's bpf_prog_active meanwhile (struct
// ctbpf_cpu_state): only when their counters moved since the last sample, and once more after (a
// counter moves before its flow's map element does). Otherwise the last reading stands.
void Tracer::read_nat_drops(core::Sample& s) const {
  const uint64_t dropped = s.counters[CTBPF_CNT_NAT_BLACKHOLED];
  if (dropped != nat_read_.blackholed || nat_read_.blackholes_again) {
    nat_read_.blackholes_again = dropped != nat_read_.blackholed;
    nat_read_.blackholed = dropped;
    nat_read_.blackholes.clear();
    for_each_entry<ctbpf_blackhole_key, ctbpf_blackhole>(
        skel_->maps.nat_blackholes, [&](const auto& k, const auto& values) {
          const ctbpf_blackhole& v = values[0];
          core::BlackholeFlow f;
          f.netns = k.netns;
          f.zone = k.zone;
          f.l3 = k.l3;
          f.l4 = k.l4;
          f.reply = k.dir != 0;
          std::copy(std::begin(k.saddr), std::end(k.saddr), f.src.begin());
          std::copy(std::begin(k.daddr), std::end(k.daddr), f.dst.begin());
          f.sport = k.sport;
          f.dport = k.dport;
          std::copy(std::begin(v.reply_saddr), std::end(v.reply_saddr), f.reply_src.begin());
          std::copy(std::begin(v.reply_daddr), std::end(v.reply_daddr), f.reply_dst.begin());
          f.reply_sport = v.reply_sport;
          f.reply_dport = v.reply_dport;
          f.status = v.status;
          f.reason = k.reason;
          auto name = drop_reason_names_.find(k.reason);
          f.reason_name = name != drop_reason_names_.end() ? name->second : std::to_string(k.reason);
          f.packets = v.packets;
          f.first_s = static_cast<double>(v.first_ns) / 1e9;
          f.last_s = static_cast<double>(v.last_ns) / 1e9;
          nat_read_.blackholes.push_back(std::move(f));
        });
  }
  s.nat_blackholes = nat_read_.blackholes;

  const uint64_t refused = s.counters[CTBPF_CNT_INSERT_FAILED] + s.counters[CTBPF_CNT_CHAINTOOLONG] +
                           s.counters[CTBPF_CNT_CLASH_RESOLVE];
  if (refused != nat_read_.refused || nat_read_.races_again) {
    nat_read_.races_again = refused != nat_read_.refused;
    nat_read_.refused = refused;
    std::map<std::tuple<uint32_t, uint8_t, std::array<uint8_t, 16>, std::array<uint8_t, 16>>, core::DnsRace> races;
    for_each_entry<ctbpf_dns_race_key, uint64_t>(skel_->maps.dns_races, [&](const auto& k, const auto& values) {
      core::DnsRace r;
      r.netns = k.netns;
      r.l3 = k.l3;
      std::copy(std::begin(k.service), std::end(k.service), r.service.begin());
      std::copy(std::begin(k.resolver), std::end(k.resolver), r.resolver.begin());
      auto& total = races.try_emplace({r.netns, r.l3, r.service, r.resolver}, r).first->second;
      (k.cause == CTBPF_CNT_CLASH_RESOLVE ? total.clash_resolve : total.insert_failed) += values[0];
    });
    nat_read_.races.clear();
    for (auto& [key, r] : races) nat_read_.races.push_back(r);
  }
  s.dns_races = nat_read_.races;
}

namespace {

void add_netns(core::ByNetns& out, uint32_t netns, uint32_t identity, const ctbpf_netns_counts& counts) {
  if (!counts.inserts && !counts.destroys) return;
  auto& total = out[netns];
  total.identity = identity;
  total.inserts += counts.inserts;
  total.destroys += counts.destroys;
}

}  // namespace

core::Sample Tracer::sample() const {
  core::Sample s;
  s.t_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();

  // Plain loads from the mapping, never a map syscall (struct ctbpf_cpu_state says why); each word is
  // an aligned 8-byte load, so no count is ever read torn.
  std::vector<const ctbpf_netns_slot*> netns_slots;
  for (int cpu = 0; cpu < cpus_; ++cpu) {
    const ctbpf_cpu_state& st = cpu_state_[cpu];
    const ctbpf_counters& c = st.counters;
    for (size_t i = 0; i < s.counters.size(); ++i) s.counters[i] += c.c[i];
    s.chain_max = std::max<uint64_t>(s.chain_max, c.chain_max);
    for (size_t i = 0; i < CTBPF_PROTO_MAX; ++i) {
      s.inserts_by_proto[i] += c.inserts_by_proto[i];
      s.destroys_by_proto[i] += c.destroys_by_proto[i];
    }
    for (size_t i = 0; i < CTBPF_TCP_STATES; ++i) s.tcp_deaths_by_state[i] += c.tcp_deaths_by_state[i];
    std::array<uint64_t, CTBPF_CHAIN_SLOTS> chain;
    std::copy(std::begin(st.chain.slot), std::end(st.chain.slot), chain.begin());
    s.chain.merge(core::Histogram(core::SlotKind::chain, chain, st.chain.sum));
    for (size_t p = 0; p < CTBPF_PROTO_MAX; ++p) {
      std::array<uint64_t, CTBPF_LOG2_SLOTS> slots;
      std::copy(std::begin(st.lifetime.slot[p]), std::end(st.lifetime.slot[p]), slots.begin());
      s.lifetime[p].merge(core::Histogram(core::SlotKind::log2, slots, st.lifetime.sum_ms[p]));
    }
    add_netns(s.by_netns, CTBPF_NETNS_OTHER, 0, st.netns_other.counts);
    for (const auto& slot : st.netns)
      if (slot.netns) netns_slots.push_back(&slot);
  }
  // An inode in several CPUs' slots under different identities was reused: the newest claim is the
  // netns that holds it now, the others are dead namespaces, whose counts go to other as the kernel
  // side moves them when it meets the new one (struct ctbpf_netns_slot).
  std::map<uint32_t, const ctbpf_netns_slot*> newest;
  for (const auto* slot : netns_slots) {
    auto& n = newest[slot->netns];
    if (!n || slot->claimed_ns > n->claimed_ns) n = slot;
  }
  for (const auto* slot : netns_slots) {
    bool live = slot->identity == newest[slot->netns]->identity;
    add_netns(s.by_netns, live ? slot->netns : uint32_t{CTBPF_NETNS_OTHER}, live ? slot->identity : 0, slot->counts);
  }
  // The kernel skips a program rather than recurse into it (e.g. a probe firing inside another
  // ctbpf program on the same CPU); each skip is a missed count, so it is reported.
  bpf_program* prog;
  bpf_object__for_each_program(prog, skel_->obj) {
    if (!bpf_program__autoload(prog)) continue;
    bpf_prog_info info{};
    uint32_t length = sizeof(info);
    if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &length) == 0)
      s.recursion_misses += info.recursion_misses;
  }
  s.kprobe_misses = kprobe_misses();
  read_nat_drops(s);
  s.stats = read_kernel_stats();
  s.table = read_table_gauge();
  return s;
}

}  // namespace ctbpf::kernel
