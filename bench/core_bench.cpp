// SPDX-License-Identifier: Apache-2.0
// core_bench: user-space throughput of the per-event path on one core — decode a ring-buffer record
// and render it (what `trace --events --json` does per event), and decode + attribute only — with no
// kernel involved. Prints events/s; compare builds side by side, never against a fixed number.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/events.h"

int main(int argc, char** argv) {
  const std::size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 2'000'000;
  std::vector<std::byte> ring(n * sizeof(ctbpf_event));
  for (std::size_t i = 0; i < n; ++i) {
    ctbpf_event e{};
    e.kind = CTBPF_EV_INSERT;
    e.l3 = 2;  // AF_INET
    e.l4 = 17;
    e.saddr[0] = 127, e.saddr[3] = 1;
    e.daddr[0] = 127, e.daddr[3] = static_cast<uint8_t>(i);
    e.sport = 40000;
    e.dport = static_cast<uint16_t>(20000 + i % 40000);
    e.netns = 4026531840u + static_cast<uint32_t>(i % 7);
    e.value = static_cast<uint32_t>(i % 80);
    std::memcpy(ring.data() + i * sizeof(e), &e, sizeof(e));
  }
  using clock = std::chrono::steady_clock;
  auto run = [&](const char* name, auto&& per_event) {
    auto start = clock::now();
    uint64_t sink = 0;
    for (std::size_t i = 0; i < n; ++i) sink += per_event(std::span(ring).subspan(i * sizeof(ctbpf_event), sizeof(ctbpf_event)));
    double s = std::chrono::duration<double>(clock::now() - start).count();
    std::printf("| %-36s | %12.0f | (checksum %llu)\n", name, static_cast<double>(n) / s,
                static_cast<unsigned long long>(sink));
  };
  std::printf("| %-36s | %12s |\n", "per-event path (one core)", "events/s");
  std::printf("|--------------------------------------|--------------|\n");
  uint64_t per_netns[8] = {};
  run("decode + count per netns", [&](std::span<const std::byte> raw) -> uint64_t {
    auto e = ctbpf::core::decode_event(raw);
    if (!e) return 0;
    return ++per_netns[e->netns & 7];
  });
  run("decode + JSON line (event_json_line)", [&](std::span<const std::byte> raw) -> uint64_t {
    auto e = ctbpf::core::decode_event(raw);
    return e ? ctbpf::core::event_json_line(*e, 1.0).size() : 0;
  });
  run("decode + JSON via nlohmann (reference)", [&](std::span<const std::byte> raw) -> uint64_t {
    auto e = ctbpf::core::decode_event(raw);
    return e ? ctbpf::core::event_json(*e, 1.0).dump().size() : 0;
  });
  run("decode + text line (--events)", [&](std::span<const std::byte> raw) -> uint64_t {
    auto e = ctbpf::core::decode_event(raw);
    return e ? ctbpf::core::event_line(*e, 1.0).size() : 0;
  });
  // What trace does per event since issue 35: append into one reused buffer, the time of day cached per
  // second. Side by side with the allocating rows above, in the same run.
  std::string line;
  ctbpf::core::SecondsText times;
  double t = 1796673929.0;
  run("append JSON line + time (trace now)", [&](std::span<const std::byte> raw) -> uint64_t {
    auto e = ctbpf::core::decode_event(raw);
    if (!e) return 0;
    line.clear();
    t += 1e-6;
    ctbpf::core::append_event_json(line, *e, t - 1796673929.0, times.rfc3339(t));
    return line.size();
  });
  run("append text line (trace now)", [&](std::span<const std::byte> raw) -> uint64_t {
    auto e = ctbpf::core::decode_event(raw);
    if (!e) return 0;
    line.clear();
    ctbpf::core::append_event_line(line, *e, 1.0);
    return line.size();
  });
  return 0;
}
