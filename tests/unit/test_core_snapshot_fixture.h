/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Synthetic cumulative samples for the snapshot, recorder and report tests: a quiet table that then
// gets a chaintoolong burst, with chain and lifetime histograms that grow with the inserts.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/aggregator.h"
#include "core/snapshot.h"

namespace fixture {

using namespace ctbpf::core;

inline Observability full_probes() {
  Observability o;
  o.conntrack_points = o.early_drop = o.resolve_clash = o.kernel_has_chaintoolong = true;
  o.netfilter_drop_reason = true;
  return o;
}

/// Cumulative counters at t: `inserts` entries inserted so far, `refused` of them refused for a long
/// chain; chains of 3 and of 40 (slot 3 and the [32, 63] slot), UDP lives of 1..3 s.
inline Sample sample(double t, uint64_t inserts, uint64_t refused) {
  Sample s;
  s.t_s = t;
  s.counters[CTBPF_CNT_FREED_UNINSERTED] = refused;
  s.counters[CTBPF_CNT_INSERT] = inserts;
  s.counters[CTBPF_CNT_INSERT_FAILED] = refused;
  s.counters[CTBPF_CNT_CHAINTOOLONG] = refused;
  s.counters[CTBPF_CNT_DESTROY] = refused + inserts / 4;
  s.counters[CTBPF_CNT_NETFILTER_DROP] = refused;
  s.inserts_by_proto[CTBPF_PROTO_UDP] = inserts;
  s.destroys_by_proto[CTBPF_PROTO_UDP] = inserts / 4;
  std::vector<uint64_t> chain(slot_count(SlotKind::chain), 0);
  chain[3] = inserts / 2;
  chain[CTBPF_CHAIN_LINEAR] = inserts - inserts / 2;
  s.chain = Histogram(SlotKind::chain, chain, 3 * (inserts / 2) + 40 * (inserts - inserts / 2));
  s.chain_max = inserts ? 40 : 0;
  std::vector<uint64_t> life(slot_count(SlotKind::log2), 0);
  life[11] = inserts / 4;  // [1024, 2047] ms
  s.lifetime[CTBPF_PROTO_UDP] = Histogram(SlotKind::log2, life, 1500 * (inserts / 4));
  s.by_netns[4026532000] = {inserts, inserts / 4};
  s.stats = KernelStats{};
  s.stats->invalid = 0;
  s.table = {inserts - inserts / 4, 65536, 512};
  return s;
}

/// Boundary samples, one second apart: `quiet` intervals of 100 inserts each, then `burst` intervals
/// that also refuse 50 each, then `after` quiet ones again.
inline std::vector<Sample> series(int quiet, int burst, int after = 0) {
  std::vector<Sample> out;
  uint64_t inserts = 1000, refused = 0;
  double t = 100;
  out.push_back(sample(t, inserts, refused));
  for (int i = 0; i < quiet + burst + after; ++i) {
    inserts += 100;
    if (i >= quiet && i < quiet + burst) refused += 50;
    out.push_back(sample(t += 1, inserts, refused));
  }
  return out;
}

inline SnapshotMeta meta(Mode mode = Mode::fentry) {
  SnapshotMeta m;
  m.host = "gw-1";
  m.kernel = "6.1.0-test";
  m.mode = mode;
  m.obs = full_probes();
  m.start_epoch_s = 1714979289.123;
  m.end_epoch_s = m.start_epoch_s + 10;
  m.interval_s = 1;
  m.sysctls = {{"buckets", 512}, {"count", 1000}, {"max", 65536}, {"tcp_timeout_established", 432000}};
  return m;
}

/// Who filled the table (trace/snapshot --top 1): the fixture's netns named, three sources in it and
/// one in an unnamed netns. By live: fd00::1 (250), then 127.0.0.2 (200); by inserts the other way.
inline WhoFills who() {
  auto key = [](uint32_t netns, int family, const char* text) {
    SourceKey k;
    k.netns = netns;
    k.l3 = static_cast<uint8_t>(family);
    inet_pton(family, text, k.addr.data());
    return k;
  };
  Attribution a;
  a.update({{key(4026532000, AF_INET, "127.0.0.2"), {300, 100}},
            {key(4026532000, AF_INET6, "fd00::1"), {250, 0}},
            {key(4026532000, AF_INET, "127.0.0.3"), {4, 0}},
            {key(4026532999, AF_INET, "10.1.2.3"), {1, 0}}},
           10.0);
  WhoFills w;
  w.netns_names = {{4026532000, "ctbpf-a"}};
  w.top = 1;
  w.sources = a;
  w.sources_untracked = 3;
  return w;
}

/// A valid document: 4 quiet intervals, 3 with chaintoolong, 3 quiet.
inline nlohmann::json document() { return make_snapshot(meta(), series(4, 3, 3), true); }

}  // namespace fixture
