// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include "core/kallsyms.h"

using namespace ctbpf::core;

namespace {

// Lines as /proc/kallsyms prints them (module symbols: a tab, then [module]); the nf_conntrack ones
// are from Debian's 5.10.0-46 and 6.1.0-57 kernels.
std::vector<std::string> names_of(const std::vector<std::string_view>& lines) {
  std::vector<std::string> out;
  for (auto line : lines)
    if (auto name = kallsyms_text_name(line)) out.emplace_back(*name);
  return out;
}

const std::vector<std::string_view> kDebian510 = {
    "ffffffffc0a31b40 t nf_ct_delete.part.0\t[nf_conntrack]",
    "ffffffffc0a31ce0 t nf_ct_delete\t[nf_conntrack]",
    "ffffffffc0a31d10 t nf_ct_delete_from_lists\t[nf_conntrack]",
    "ffffffffc0a33000 t early_drop\t[nf_conntrack]",
    "ffffffffc0a34000 t __nf_conntrack_alloc\t[nf_conntrack]",
    "ffffffffc0a3c000 t __nf_conntrack_alloc.cold\t[nf_conntrack]",
    "ffffffffc0a35000 t __nf_conntrack_confirm\t[nf_conntrack]",
    "ffffffffc0a3c100 t __nf_conntrack_confirm.cold\t[nf_conntrack]",
    "ffffffffc0a36000 t nf_ct_gc_expired.part.0\t[nf_conntrack]",
    "ffffffffc0a40000 d nf_ct_delete_data\t[nf_conntrack]",
};

}  // namespace

TEST_CASE("kallsyms_text_name keeps text symbols only") {
  CHECK(kallsyms_text_name("ffffffff81000000 T _stext") == "_stext");
  CHECK(kallsyms_text_name("ffffffffc0a31ce0 t nf_ct_delete\t[nf_conntrack]") == "nf_ct_delete");
  CHECK_FALSE(kallsyms_text_name("ffffffffc0a40000 d nf_ct_delete_data\t[nf_conntrack]"));
  CHECK_FALSE(kallsyms_text_name("ffffffff82000000 D jiffies"));
  CHECK_FALSE(kallsyms_text_name(""));
  CHECK_FALSE(kallsyms_text_name("garbage"));
  CHECK_FALSE(kallsyms_text_name("0000000000000000 t "));
}

TEST_CASE("symbol_kind tells whole functions from fragments") {
  CHECK(symbol_kind("early_drop", "early_drop") == SymbolKind::exact);
  CHECK(symbol_kind("early_drop.isra.0", "early_drop") == SymbolKind::clone);
  CHECK(symbol_kind("early_drop.constprop.0", "early_drop") == SymbolKind::clone);
  CHECK(symbol_kind("early_drop.constprop.0.isra.0", "early_drop") == SymbolKind::clone);
  CHECK(symbol_kind("nf_ct_delete.part.0", "nf_ct_delete") == SymbolKind::part);
  CHECK(symbol_kind("nf_ct_delete.part.0.isra.0", "nf_ct_delete") == SymbolKind::part);
  CHECK(symbol_kind("nf_ct_delete.isra.0.part.1", "nf_ct_delete") == SymbolKind::part);
  CHECK(symbol_kind("__nf_conntrack_confirm.cold", "__nf_conntrack_confirm") == SymbolKind::fragment);
  CHECK(symbol_kind("__nf_conntrack_confirm.cold.12", "__nf_conntrack_confirm") == SymbolKind::fragment);
  CHECK(symbol_kind("early_drop.part.0.cold", "early_drop") == SymbolKind::fragment);
  CHECK(symbol_kind("early_drop.lto_priv.0", "early_drop") == SymbolKind::fragment);
  CHECK(symbol_kind("early_drop.isra", "early_drop") == SymbolKind::fragment);
  CHECK(symbol_kind("early_drop.", "early_drop") == SymbolKind::fragment);
  CHECK_FALSE(symbol_kind("nf_ct_delete_from_lists", "nf_ct_delete"));
  CHECK_FALSE(symbol_kind("early_dro", "early_drop"));
  CHECK_FALSE(symbol_kind("xearly_drop", "early_drop"));
}

TEST_CASE("choose_kprobe_symbol on Debian 5.10's nf_conntrack") {
  auto names = names_of(kDebian510);
  // The exact name, never its .cold fragment.
  auto alloc = choose_kprobe_symbol("__nf_conntrack_alloc", names, false);
  CHECK(alloc.symbol == "__nf_conntrack_alloc");
  CHECK_FALSE(alloc.part);
  CHECK_FALSE(alloc.split);
  CHECK(choose_kprobe_symbol("__nf_conntrack_confirm", names, false).symbol == "__nf_conntrack_confirm");
  CHECK(choose_kprobe_symbol("early_drop", names, false).symbol == "early_drop");
  // nf_ct_delete is split: its callers in the module call nf_ct_delete.part.0 directly.
  auto del = choose_kprobe_symbol("nf_ct_delete", names, true);
  CHECK(del.symbol == "nf_ct_delete.part.0");
  CHECK(del.part);
  CHECK(del.split);
  auto unverified = choose_kprobe_symbol("nf_ct_delete", names, false);
  CHECK_FALSE(unverified.symbol);
  CHECK(unverified.split);
  CHECK(unverified.why.find("nf_ct_delete.part.0") != std::string::npos);
  auto absent = choose_kprobe_symbol("nf_ct_resolve_clash", names, false);
  CHECK_FALSE(absent.symbol);
  CHECK(absent.why == "nf_ct_resolve_clash not in kallsyms (inlined, or not in this kernel)");
}

TEST_CASE("choose_kprobe_symbol takes a clone only when it is the only whole function") {
  CHECK(choose_kprobe_symbol("early_drop", {"early_drop.cold", "early_drop.isra.0"}, false).symbol ==
        "early_drop.isra.0");
  CHECK(choose_kprobe_symbol("early_drop", {"early_drop.isra.0", "early_drop"}, false).symbol == "early_drop");
  // Only a cold fragment: the function was inlined.
  CHECK_FALSE(choose_kprobe_symbol("early_drop", {"early_drop.cold"}, false).symbol);
  // Two of a kind: a kprobe by name could land on either.
  auto twins = choose_kprobe_symbol("early_drop", {"early_drop.isra.0", "early_drop.constprop.0"}, false);
  CHECK_FALSE(twins.symbol);
  CHECK(twins.why == "early_drop is ambiguous in kallsyms (early_drop.isra.0, early_drop.constprop.0)");
  CHECK_FALSE(choose_kprobe_symbol("early_drop", {"early_drop", "early_drop"}, false).symbol);
  CHECK_FALSE(choose_kprobe_symbol("nf_ct_delete", {"nf_ct_delete", "nf_ct_delete.part.0", "nf_ct_delete.part.1"},
                                   true)
                  .symbol);
}
