// SPDX-License-Identifier: Apache-2.0
// Confirm's drop paths and "was it ever inserted", as the BPF side decides them
// (include/ctbpf/abi.h; the facts come from bpf/core_fixes.bpf.h). Both kernel behaviours are covered:
// IPS_CONFIRMED set after the insert (Debian's 5.10, 6.1, 6.12; upstream since 2d72afb34065) and set
// ahead of confirm's checks (upstream 5.19 until that commit), which no kernel here runs.
#include <doctest/doctest.h>

#include "ctbpf/abi.h"

namespace {

enum ctbpf_confirm_drop kind(bool confirmed, bool dying, bool linked, bool clash) {
  return ctbpf_confirm_drop_kind(confirmed, dying, linked, clash);
}

}  // namespace

TEST_CASE("confirm's NF_DROP when IPS_CONFIRMED is set after the insert") {
  // The chain limit (5.15+) or nf_ct_ext_valid_pre(): never confirmed, not dying, no clash.
  CHECK(kind(false, false, false, false) == CTBPF_CONFIRM_DROP_CHAINTOOLONG);
  // Dying before the insert: insert_failed.
  CHECK(kind(false, true, false, false) == CTBPF_CONFIRM_DROP_INSERT_FAILED);
  // An unresolvable clash: insert_failed (the kernel also counts drop).
  CHECK(kind(false, false, false, true) == CTBPF_CONFIRM_DROP_INSERT_FAILED);
  // A clone of the packet confirmed the entry first: it is in the table, the kernel counts nothing.
  CHECK(kind(true, false, true, false) == CTBPF_CONFIRM_DROP_ALREADY_CONFIRMED);
  // nf_ct_ext_valid_post() failed: inserted, then killed (DYING); counted as inserted.
  CHECK(kind(true, true, false, false) == CTBPF_CONFIRM_DROP_AFTER_INSERT);
  CHECK(ctbpf_was_inserted(true, true));
}

TEST_CASE("confirm's NF_DROP when IPS_CONFIRMED is set ahead of the checks (5.19 to 2d72afb34065)") {
  // Every path after nf_ct_ext_valid_pre() carries the bit; not linked tells the refused ones.
  CHECK(kind(true, false, false, false) == CTBPF_CONFIRM_DROP_CHAINTOOLONG);
  CHECK(kind(true, false, false, true) == CTBPF_CONFIRM_DROP_INSERT_FAILED);
  // The already-confirmed path is still the linked one.
  CHECK(kind(true, false, true, false) == CTBPF_CONFIRM_DROP_ALREADY_CONFIRMED);
  // A refused entry is freed with CONFIRMED but never DYING: no life, no destroy of an inserted entry.
  CHECK_FALSE(ctbpf_was_inserted(true, false));
}

TEST_CASE("an entry freed without ever being confirmed was never inserted") {
  CHECK_FALSE(ctbpf_was_inserted(false, false));
  CHECK_FALSE(ctbpf_was_inserted(false, true));
}
