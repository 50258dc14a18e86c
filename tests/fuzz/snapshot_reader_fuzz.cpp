// SPDX-License-Identifier: Apache-2.0
// libFuzzer target over the snapshot reader (core::read_snapshot). Any bytes either fail with one
// SnapshotError line naming the file, or give a document that every view renders and that writes
// back to a fixed point. Anything else (another exception, a crash, a leak, UB) is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/report.h"
#include "core/snapshot.h"

using namespace ctbpf::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  nlohmann::json doc;
  try {
    doc = read_snapshot(bytes, "fuzz.json");
  } catch (const SnapshotError& e) {
    const std::string_view message = e.what();
    if (message.rfind("fuzz.json: ", 0) != 0 || message.find('\n') != std::string_view::npos) std::abort();
    return 0;
  }
  const auto written = snapshot_bytes(doc);
  if (snapshot_bytes(read_snapshot(written, "fuzz.json")) != written) std::abort();
  (void)report_text(doc, 80);
  (void)report_html(doc);
  if (diff_snapshots(doc, "a", doc, "a").changed) std::abort();
  return 0;
}
