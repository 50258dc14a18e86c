// SPDX-License-Identifier: Apache-2.0
#include "kernel/memory.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernel/system.h"

namespace ctbpf::kernel {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

core::ConntrackBuild conntrack_build() {
  std::error_code ec;
  // Only a loadable module has initstate; a built-in one with parameters still gets /sys/module/NAME.
  if (std::filesystem::exists("/sys/module/nf_conntrack/initstate", ec)) return core::ConntrackBuild::module;
  if (std::filesystem::exists("/sys/module/nf_conntrack", ec)) return core::ConntrackBuild::builtin;
  return core::ConntrackBuild::unknown;
}

}  // namespace

core::SystemFacts read_system_facts() {
  core::SystemFacts facts;
  // objsize in /proc/slabinfo is what the allocator really hands out per entry (struct nf_conn rounded
  // up to its alignment, plus any debug padding), the same number as SLUB's slab_size.
  if (auto objsize = core::parse_slabinfo_object_size(read_file("/proc/slabinfo"), "nf_conntrack")) {
    facts.slab_object_size = objsize;
    facts.slab_object_size_source = "/proc/slabinfo";
  } else if (auto slab_size = read_number("/sys/kernel/slab/nf_conntrack/slab_size")) {
    facts.slab_object_size = slab_size;
    facts.slab_object_size_source = "/sys/kernel/slab/nf_conntrack/slab_size";
  }
  facts.ram_bytes = core::parse_meminfo_total(read_file("/proc/meminfo"));
  facts.build = conntrack_build();
  return facts;
}

}  // namespace ctbpf::kernel
