// SPDX-License-Identifier: Apache-2.0
// ring_bench: ring-buffer end-to-end events/s on this kernel, with a synthetic producer. One thread runs
// bench/ring_producer.bpf.c (BPF_PROG_TEST_RUN, batches of insert events through ctbpf's own ring and
// submit policy, at the default ring size) on one CPU; the main thread, on another, reads them the way
// `ctbpf trace --events` does (ring_buffer__poll with 50 ms timeouts, then consume) and decodes each
// one. Two producers: one that waits for room (the pipeline's capacity, nothing refused) and one flat
// out (what overload costs; every refused reservation counted). Prints rates; asserts nothing.
// Needs root and bpf_loop (Linux 5.17+).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <span>
#include <thread>

#include "core/events.h"
#include "kernel/tracer.h"
#include "ring_producer.skel.h"

namespace {

using clock_type = std::chrono::steady_clock;
using PerEvent = std::function<void(std::span<const std::byte>)>;

constexpr uint64_t kBatch = 256;            // events per test run
constexpr uint32_t kNoRoom = 0xffffffffu;   // ring_producer.bpf.c's NO_ROOM

[[noreturn]] void fail(const char* what, int err) {
  std::fprintf(stderr, "ring_bench: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

void pin_to_cpu(int cpu) {
  if (std::thread::hardware_concurrency() < 2) return;  // one CPU: nothing to separate
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int on_record(void* ctx, void* data, size_t size) {
  (*static_cast<PerEvent*>(ctx))({static_cast<const std::byte*>(data), size});
  return 0;
}

enum class Producer { waits_for_room, flat_out };

void run(const char* name, Producer producer_kind, uint64_t total, FILE* out, const PerEvent& per_event) {
  const ctbpf::kernel::Tracer::Options defaults;
  ring_producer_bpf* skel = ring_producer_bpf__open();
  if (!skel) fail("opening the producer", errno);
  bpf_map__set_max_entries(skel->maps.events, defaults.ring_bytes);
  skel->rodata->wakeup_bytes = defaults.wakeup_bytes();
  if (int err = ring_producer_bpf__load(skel)) fail("loading the producer (root, Linux 5.17+ for bpf_loop)", -err);

  uint64_t received = 0;
  PerEvent counted = [&](std::span<const std::byte> raw) {
    ++received;
    per_event(raw);
  };
  ring_buffer* ring = ring_buffer__new(bpf_map__fd(skel->maps.events), on_record, &counted, nullptr);
  if (!ring) fail("opening the ring buffer", errno);

  std::atomic<bool> done = false;
  uint64_t lost = 0;
  double produce_s = 0;
  auto start = clock_type::now();
  std::thread producer([&] {
    pin_to_cpu(0);
    int fd = bpf_program__fd(skel->progs.produce);
    for (uint64_t first = 0; first < total; first += kBatch) {
      uint64_t args[3] = {std::min(kBatch, total - first), first, producer_kind == Producer::waits_for_room};
      LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof(args));
      do {
        if (bpf_prog_test_run_opts(fd, &opts) != 0) fail("running the producer", errno);
      } while (opts.retval == kNoRoom);  // try the same batch again
      lost += opts.retval;
    }
    produce_s = std::chrono::duration<double>(clock_type::now() - start).count();
    done = true;
  });
  pin_to_cpu(1);
  while (!done) {
    ring_buffer__poll(ring, 50);
    ring_buffer__consume(ring);
    std::fflush(out);
  }
  producer.join();
  ring_buffer__consume(ring);
  std::fflush(out);
  double s = std::chrono::duration<double>(clock_type::now() - start).count();

  std::printf("| %-44s | %-14s | %13.0f | %10llu | %10llu | %13.0f |\n", name,
              producer_kind == Producer::waits_for_room ? "waits for room" : "flat out",
              static_cast<double>(total) / produce_s,
              static_cast<unsigned long long>(received), static_cast<unsigned long long>(lost),
              static_cast<double>(received) / s);
  if (received + lost != total)
    std::fprintf(stderr, "ring_bench: %llu events emitted but %llu received + %llu refused\n",
                 static_cast<unsigned long long>(total), static_cast<unsigned long long>(received),
                 static_cast<unsigned long long>(lost));
  ring_buffer__free(ring);
  ring_producer_bpf__destroy(skel);
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t total = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 4'000'000;
  FILE* devnull = std::fopen("/dev/null", "w");
  if (!devnull) fail("opening /dev/null", errno);
  std::printf("%llu events in batches of %llu per test run; ring %u KiB, wake-up at a quarter full\n",
              static_cast<unsigned long long>(total), static_cast<unsigned long long>(kBatch),
              ctbpf::kernel::Tracer::Options{}.ring_bytes / 1024);
  std::printf("| %-44s | %-14s | %13s | %10s | %10s | %13s |\n", "consumer (per event)", "producer", "emitted/s",
              "received", "ring full", "received/s");
  std::printf("|----------------------------------------------|----------------|---------------|------------|------------|---------------|\n");
  uint64_t per_netns[8] = {};
  const PerEvent count = [&](std::span<const std::byte> raw) {
    if (auto e = ctbpf::core::decode_event(raw)) ++per_netns[e->netns & 7];
  };
  const PerEvent json_line = [&](std::span<const std::byte> raw) {
    if (auto e = ctbpf::core::decode_event(raw)) std::fputs((ctbpf::core::event_json_line(*e, 1.0) + '\n').c_str(), devnull);
  };
  const PerEvent text_line = [&](std::span<const std::byte> raw) {
    if (auto e = ctbpf::core::decode_event(raw)) std::fputs((ctbpf::core::event_line(*e, 1.0) + '\n').c_str(), devnull);
  };
  run("decode + count per netns", Producer::waits_for_room, total, devnull, count);
  run("decode + JSON line (trace --events --json)", Producer::waits_for_room, total, devnull, json_line);
  run("decode + text line (trace --events)", Producer::waits_for_room, total, devnull, text_line);
  run("decode + count per netns", Producer::flat_out, total, devnull, count);
  return 0;
}
