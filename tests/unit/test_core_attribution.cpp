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
  auto sources = a.top_sources(10);
  REQUIRE(sources.size() == 3);
  CHECK(address_text(sources[0].key) == "10.0.0.6");  // most live first
  CHECK(sources[0].live == 300);
  CHECK(sources[0].inserts_per_s == doctest::Approx(100.0));
  CHECK(address_text(sources[1].key) == "10.0.0.5");
  CHECK(sources[1].live == 50 + 20 - 5);
  CHECK(sources[2].live == 0);
  auto netns = a.top_netns(1);
  REQUIRE(netns.size() == 1);
  CHECK(netns[0].key.netns == 1);
  CHECK(netns[0].live == 365);
  CHECK(netns[0].inserts == 320);
}
