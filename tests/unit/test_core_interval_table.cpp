// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include "core/interval_table.h"

using namespace ctbpf::core;

TEST_CASE("interval table: header and rows fit 100 columns, '-' for what the mode cannot see") {
  const auto header = interval_table_header(false);
  CHECK(header.size() <= kIntervalTableWidth);
  CHECK(interval_table_header(true).size() == header.size());
  CHECK(header.find("INSERT/S") != std::string::npos);

  Report r;
  r.start_s = 0;
  r.end_s = 1;
  r.table = {4'000'000, 4'194'304, 1'048'576};
  r.totals.inserts = 2'500'000;
  r.totals.destroys = 2'400'000;
  r.totals.drops.table_full = 1'000'000;
  r.totals.drops.early_drop = 250'000;
  r.totals.drops.insert_failed = 3;
  r.totals.drops.chaintoolong = 4;
  r.totals.netfilter_drops = 1'250'007;
  r.totals.lost_events = 12;
  const auto row = interval_table_row(r, "604800.0");
  CHECK(row.size() <= kIntervalTableWidth);
  CHECK(row.find(" 2500000 ") != std::string::npos);
  CHECK(row.find(" 95.4 ") != std::string::npos);  // fill
  CHECK(row.find(" 7 ") != std::string::npos);     // other drops: insert_failed + chaintoolong

  Report tp;  // tracepoint mode: no probe counts
  tp.start_s = 0;
  tp.end_s = 1;
  tp.table = {930, 262144, 262144};
  tp.totals.drops.table_full = 5;
  const auto tp_row = interval_table_row(tp, clock_text(1764513000.7));
  CHECK(tp_row.size() == header.size());
  CHECK(tp_row.rfind("  14:30:00 ", 0) == 0);
  CHECK(tp_row.find(" - ") != std::string::npos);
}

TEST_CASE("interval table: a note names the columns that are '-', once, for pipes and files") {
  Report tp;  // tracepoint mode: table, growth and the kernel's drop counter only
  tp.start_s = 0;
  tp.end_s = 1;
  tp.table = {930, 262144, 262144};
  tp.growth = 3;
  tp.totals.drops.table_full = 5;
  tp.totals.drops.early_drop = 0;
  tp.totals.drops.insert_failed = 0;
  tp.totals.netfilter_drops = 0;
  const auto note = interval_table_note(tp, "tracepoint");
  CHECK(std::string("ctbpf: ").size() + note.size() <= kIntervalTableWidth);  // as trace prints it
  CHECK(note.find("tracepoint mode") != std::string::npos);
  CHECK(note.find("INSERT/S, DESTR/S, CHAIN99, LOST") != std::string::npos);
  CHECK(note.find("FULL") == std::string::npos);
  CHECK(note.find("TABLE") == std::string::npos);

  Report all = tp;  // every column observed: no note
  all.totals.inserts = 10;
  all.totals.destroys = 7;
  all.totals.chain.emplace(SlotKind::chain);
  all.totals.lost_events = 0;
  CHECK(interval_table_note(all, "fentry").empty());
}
