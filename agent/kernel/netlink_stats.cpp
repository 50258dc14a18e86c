// SPDX-License-Identifier: Apache-2.0
#include "kernel/netlink_stats.h"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <memory>
#include <utility>
#include <vector>

namespace ctbpf::kernel {

namespace {

struct SocketCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};

using Field = std::optional<uint64_t> core::KernelStats::*;

// CTA_STATS_* attribute -> field; an attribute a kernel does not send leaves its field empty.
Field conntrack_field(uint16_t type) {
  switch (type) {
    case CTA_STATS_FOUND: return &core::KernelStats::found;
    case CTA_STATS_INVALID: return &core::KernelStats::invalid;
    case CTA_STATS_INSERT: return &core::KernelStats::insert;
    case CTA_STATS_INSERT_FAILED: return &core::KernelStats::insert_failed;
    case CTA_STATS_DROP: return &core::KernelStats::drop;
    case CTA_STATS_EARLY_DROP: return &core::KernelStats::early_drop;
    case CTA_STATS_ERROR: return &core::KernelStats::error;
    case CTA_STATS_SEARCH_RESTART: return &core::KernelStats::search_restart;
    case CTA_STATS_CLASH_RESOLVE: return &core::KernelStats::clash_resolve;
    case CTA_STATS_CHAIN_TOOLONG: return &core::KernelStats::chaintoolong;
    default: return nullptr;
  }
}

// CTA_STATS_EXP_* attribute (the expectation table's statistics, a message of its own) -> field.
Field expectation_field(uint16_t type) {
  switch (type) {
    case CTA_STATS_EXP_NEW: return &core::KernelStats::expect_new;
    case CTA_STATS_EXP_CREATE: return &core::KernelStats::expect_create;
    case CTA_STATS_EXP_DELETE: return &core::KernelStats::expect_delete;
    default: return nullptr;
  }
}

struct Parse {
  Field (*field_of)(uint16_t);
  core::KernelStats* stats;
};

int on_attribute(const nlattr* attr, void* data) {
  auto* parse = static_cast<Parse*>(data);
  Field field = parse->field_of(mnl_attr_get_type(attr));
  if (!field || mnl_attr_validate(attr, MNL_TYPE_U32) < 0) return MNL_CB_OK;
  auto& slot = parse->stats->*field;
  slot = slot.value_or(0) + ntohl(mnl_attr_get_u32(attr));
  return MNL_CB_OK;
}

int on_message(const nlmsghdr* nlh, void* data) {
  mnl_attr_parse(nlh, sizeof(nfgenmsg), on_attribute, data);
  return MNL_CB_OK;
}

// One per-CPU statistics dump (`type`: subsystem << 8 | message), summed into `stats`.
bool dump_stats(mnl_socket* nl, uint16_t type, Field (*field_of)(uint16_t), core::KernelStats& stats) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  const auto seq = static_cast<uint32_t>(time(nullptr));
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = 0;
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) return false;

  Parse parse{field_of, &stats};
  const unsigned portid = mnl_socket_get_portid(nl);
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl, buf.data(), buf.size());
    if (n <= 0) return false;
    int ret = mnl_cb_run(buf.data(), static_cast<size_t>(n), seq, portid, on_message, &parse);
    if (ret == MNL_CB_STOP) return true;
    if (ret < 0) return false;
  }
}

}  // namespace

std::optional<core::KernelStats> read_kernel_stats() {
  std::unique_ptr<mnl_socket, SocketCloser> nl{mnl_socket_open(NETLINK_NETFILTER)};
  if (!nl || mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) return std::nullopt;
  core::KernelStats stats;
  if (!dump_stats(nl.get(), (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS_CPU, conntrack_field, stats))
    return std::nullopt;
  // The expectation statistics are optional: without them (a kernel or a policy that refuses the
  // message) their fields stay empty and read as null, like any counter a kernel lacks; said once.
  if (!dump_stats(nl.get(), (NFNL_SUBSYS_CTNETLINK_EXP << 8) | IPCTNL_MSG_EXP_GET_STATS_CPU, expectation_field,
                  stats)) {
    static bool said = false;
    if (!std::exchange(said, true))
      std::fputs("ctbpf: the kernel refused its expectation statistics over ctnetlink: expect_create, "
                 "expect_new and expect_delete read null\n",
                 stderr);
  }
  return stats;
}

}  // namespace ctbpf::kernel
