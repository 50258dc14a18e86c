/* SPDX-License-Identifier: Apache-2.0 */
#pragma once
// Which kallsyms symbol a kprobe on a kernel function must use. GCC clones and splits static
// functions, and kallsyms lists the pieces under the base name with a suffix:
//   early_drop.isra.0, early_drop.constprop.0   a whole copy of the function (other arguments)
//   nf_ct_delete.part.0                          the body of a function partially inlined into its
//                                                callers, which call the part directly
//   __nf_conntrack_confirm.cold                  a cold fragment: not an entry point at all
// A kprobe on a fragment never fires on entry, and a kretprobe there corrupts the stack; a kprobe
// on the entry of a split function misses every caller that calls the part.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ctbpf::core {

enum class SymbolKind {
  exact,     // the function itself
  clone,     // .isra.N / .constprop.N (any combination): the whole function
  part,      // .part.N (possibly cloned too): the body after a head inlined into the callers
  fragment,  // .cold, or a suffix ctbpf does not know: never a place to attach
};

/// How kallsyms name `name` relates to function `base`; empty when it is another function.
std::optional<SymbolKind> symbol_kind(std::string_view name, std::string_view base);

/// The name of a text symbol ('t' or 'T') in a /proc/kallsyms line ("ADDR TYPE NAME[\t[MODULE]]");
/// empty for other symbols and malformed lines.
std::optional<std::string_view> kallsyms_text_name(std::string_view line);

struct SymbolChoice {
  std::optional<std::string> symbol;  // where a kprobe sees every call; empty when nowhere
  bool part = false;                  // symbol is F.part.N: the caller has run F's inlined head
  bool split = false;                 // F has a .part.N: an entry probe on F itself misses calls
  std::string why;                    // why there is no symbol
};

/// Picks the kprobe target for `base` among `names` (every kallsyms text name sharing its base, in
/// any order): the exact name, else the one whole clone. A match must be unique (two symbols of one
/// name: a kprobe by name would pick either). A split function (a .part.N exists) is attached at its
/// part only when `part_verified` (its arguments checked against that kernel's code), since its
/// callers call the part directly; otherwise there is no safe place.
SymbolChoice choose_kprobe_symbol(std::string_view base, const std::vector<std::string>& names,
                                  bool part_verified);

}  // namespace ctbpf::core
