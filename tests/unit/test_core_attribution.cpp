// SPDX-License-Identifier: Apache-2.0
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "core/attribution.h"

using namespace ctbpf::core;

namespace {
SourceKey v4(uint32_t netns, const char* addr) {
  SourceKey k;
  k.netns = netns;
  k.l3 = AF_INET;
  inet_pton(AF_INET, addr, k.addr.data());
  return k;
}
}  // namespace

TEST_CASE("containers and pods are named from cgroup paths") {
  const std::string id(64, 'a');
  CHECK(container_from_cgroup("0::/system.slice/docker-" + id + ".scope\n") == "docker:aaaaaaaaaaaa");
  CHECK(container_from_cgroup("12:pids:/docker/" + id + "\n") == "docker:aaaaaaaaaaaa");
  CHECK(container_from_cgroup("0::/kubepods.slice/kubepods-besteffort.slice/"
                              "kubepods-besteffort-pod1234abcd_5678_90ab_cdef_1234567890ab.slice/"
                              "cri-containerd-" + id + ".scope\n") ==
        "pod:1234abcd-5678-90ab-cdef-1234567890ab/containerd:aaaaaaaaaaaa");
  CHECK(container_from_cgroup("11:memory:/kubepods/burstable/pod1234abcd-5678-90ab-cdef-1234567890ab/" + id) ==
        "pod:1234abcd-5678-90ab-cdef-1234567890ab/container:aaaaaaaaaaaa");
  CHECK(container_from_cgroup("0::/system.slice/crio-" + id + ".scope") == "crio:aaaaaaaaaaaa");
  CHECK_FALSE(container_from_cgroup("0::/user.slice/user-0.slice/session-1.scope\n"));
  CHECK_FALSE(container_from_cgroup(""));
}

TEST_CASE("live = entries at start + inserts - destroys; rates over the last interval") {
  Attribution a;
  a.seed({{v4(1, "10.0.0.5"), {50, 0}}});
  a.update({{v4(1, "10.0.0.5"), {10, 5}}, {v4(1, "10.0.0.6"), {100, 0}}, {v4(2, "10.0.0.6"), {7, 7}}}, 1.0);
  a.update({{v4(1, "10.0.0.5"), {20, 5}}, {v4(1, "10.0.0.6"), {300, 0}}, {v4(2, "10.0.0.6"), {7, 7}}}, 2.0);
  auto sources = a.top_sources(10).rows;
  REQUIRE(sources.size() == 3);
  CHECK(address_text(sources[0].key) == "10.0.0.6");  // most live first
  CHECK(sources[0].live == 300);
  CHECK(sources[0].inserts_per_s == doctest::Approx(100.0));
  CHECK(address_text(sources[1].key) == "10.0.0.5");
  CHECK(sources[1].live == 50 + 20 - 5);
  CHECK(sources[2].live == 0);
  CHECK_FALSE(a.top_sources(10).other);
  auto netns = a.top_netns(1);
  REQUIRE(netns.rows.size() == 1);
  CHECK(netns.rows[0].key.netns == 1);
  CHECK(netns.rows[0].live == 365);
  CHECK(netns.rows[0].inserts == 320);
  REQUIRE(netns.other);  // netns 2: 7 inserts, 7 destroys
  CHECK(netns.other->live == 0);
  CHECK(netns.other->inserts == 7);
}

TEST_CASE("top N by live entries or by inserts, the rest summed in one other row") {
  Attribution a;
  a.seed({{v4(1, "10.0.0.1"), {500, 0}}});  // many old entries, few new
  SourceKey v6;
  v6.netns = 2;
  v6.l3 = AF_INET6;
  inet_pton(AF_INET6, "fd00::2", v6.addr.data());
  a.update({{v4(1, "10.0.0.1"), {10, 0}}, {v6, {300, 100}}, {v4(1, "10.0.0.3"), {50, 0}}}, 10.0);

  auto by_live = a.top_sources(2, TopOrder::live);
  REQUIRE(by_live.rows.size() == 2);
  CHECK(address_text(by_live.rows[0].key) == "10.0.0.1");
  CHECK(by_live.rows[0].live == 510);
  CHECK(address_text(by_live.rows[1].key) == "fd00::2");
  CHECK(by_live.rows[1].live == 200);
  REQUIRE(by_live.other);
  CHECK(by_live.other->live == 50);
  CHECK(by_live.other->inserts == 50);

  auto by_inserts = a.top_sources(1, TopOrder::inserts);
  REQUIRE(by_inserts.rows.size() == 1);
  CHECK(address_text(by_inserts.rows[0].key) == "fd00::2");
  CHECK(by_inserts.rows[0].inserts == 300);
  CHECK(by_inserts.rows[0].inserts_per_s == doctest::Approx(30.0));
  REQUIRE(by_inserts.other);  // 10.0.0.1 and 10.0.0.3
  CHECK(by_inserts.other->inserts == 60);
  CHECK(by_inserts.other->live == 560);

  CHECK(a.top_sources(0).rows.empty());
  CHECK(a.top_sources(0).other->inserts == 360);
}
