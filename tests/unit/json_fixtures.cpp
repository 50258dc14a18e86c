// SPDX-License-Identifier: Apache-2.0
// json_fixtures OUTDIR: writes JSON documents made by the pure core's render functions (snapshots in
// fentry and tracepoint mode, a diff, doctor in both modes, event lines) for tests/unit/schema_check.sh,
// which validates them against docs/schema/ctbpf.schema.json. Inputs are the unit tests' synthetic
// samples (test_core_snapshot_fixture.h): what is checked is the shape of each document, not its values.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/doctor.h"
#include "core/events.h"
#include "core/idle.h"
#include "core/render.h"
#include "core/report.h"
#include "core/snapshot.h"
#include "test_core_snapshot_fixture.h"

using namespace ctbpf::core;
using nlohmann::json;

namespace {

Observability tracepoint_obs() {
  Observability o;
  o.netfilter_drop_reason = true;
  o.kernel_has_chaintoolong = true;
  return o;
}

json snapshot(Mode mode) {
  auto meta = fixture::meta(mode);
  if (mode == Mode::tracepoint) meta.obs = tracepoint_obs();
  // The CLI always passes who fills the table (netns names; sources with --top).
  meta.who = fixture::who();
  if (mode == Mode::tracepoint) meta.who->sources.reset();  // --top in tracepoint mode: by_source null
  // The netns of the table, and the named others (one whose count could not be read).
  meta.who->own_netns = OwnNetns{4026532000, "ctbpf-a"};
  meta.who->other_netns = std::vector<NetnsTable>{{"busy", 4026532111, 300}, {"locked", 4026532112, std::nullopt}};
  return make_snapshot(meta, fixture::series(4, 3, 3), true);
}

DoctorInput doctor_input(Mode mode) {
  DoctorInput in;
  in.mode = mode;
  in.obs = mode == Mode::tracepoint ? tracepoint_obs() : fixture::full_probes();
  Aggregator aggregator(mode, in.obs);
  for (const auto& s : fixture::series(4, 3, 3)) aggregator.add(s);
  in.window = aggregator.summary();
  in.table_start = {1000, 65536, 512};
  in.peak_count = 2000;
  in.kernel_drop = 0;
  in.sysctls = {{"max", 65536}, {"buckets", 512}, {"count", 1000}, {"udp_timeout", 30}};
  in.system.slab_object_size = 256;
  in.system.slab_object_size_source = "/proc/slabinfo";
  in.system.ram_bytes = uint64_t{2} << 30;
  in.system.build = ConntrackBuild::module;
  in.own_netns = OwnNetns{4026531840, "host"};
  if (mode != Mode::tracepoint) {
    IdleSummary idle;
    DumpedEntry e;
    e.l4 = IPPROTO_UDP;
    e.timeout_s = 25;
    add_idle(idle, e, in.sysctls);
    idle.dump.entries = 1;
    in.idle = idle;
  }
  return in;
}

json doctor(Mode mode) {
  auto in = doctor_input(mode);
  return doctor_json(in, diagnose(in));
}

ctbpf_event event(uint32_t kind) {
  ctbpf_event e{};
  e.kind = kind;
  e.cause = CTBPF_CNT_CHAINTOOLONG;
  e.value = 3;
  e.l3 = AF_INET;
  e.l4 = 17;
  inet_pton(AF_INET, "10.1.2.3", e.saddr);
  inet_pton(AF_INET, "127.0.0.1", e.daddr);
  e.sport = 5353;
  e.dport = 53;
  e.netns = 4026531840;
  return e;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) {
    std::fprintf(stderr, "json_fixtures: cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: json_fixtures OUTDIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  const json fentry = snapshot(Mode::fentry), tracepoint = snapshot(Mode::tracepoint);
  write_file(dir + "/snapshot-fentry.json", snapshot_bytes(fentry));
  write_file(dir + "/snapshot-tracepoint.json", snapshot_bytes(tracepoint));
  write_file(dir + "/diff.json", diff_snapshots(fentry, "a.json", tracepoint, "b.json").json.dump() + "\n");
  write_file(dir + "/doctor-fentry.json", doctor(Mode::fentry).dump() + "\n");
  write_file(dir + "/doctor-tracepoint.json", doctor(Mode::tracepoint).dump() + "\n");
  std::string events;
  for (uint32_t kind : {CTBPF_EV_INSERT, CTBPF_EV_DESTROY, CTBPF_EV_DROP}) events += event_json_line(event(kind), 1.5) + "\n";
  write_file(dir + "/events.ndjson", events);
  return 0;
}
