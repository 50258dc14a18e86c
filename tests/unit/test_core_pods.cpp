// SPDX-License-Identifier: Apache-2.0
// Pods named from the runtimes' own files: the fixtures (tests/unit/fixtures/runtimes/) are shaped as
// containerd's CRI plugin, CRI-O and docker write them (keys as in containerd's pkg/cri/annotations,
// CRI-O's annotations and the kubelet's labels, docker's config.v2.json), cut down to what matters
// and what surrounds it.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "core/pods.h"

using namespace ctbpf::core;

namespace {

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(CTBPF_SOURCE_DIR) + "/tests/unit/fixtures/runtimes/" + name);
  REQUIRE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("containerd: a pod's sandbox names the pod and its pinned netns") {
  auto c = container_from_oci_spec(fixture("containerd-sandbox.json"));
  REQUIRE(c);
  CHECK(c->runtime == "containerd");
  CHECK(c->pod_namespace == "kube-system");
  CHECK(c->pod_name == "coredns-5d78c9869d-7xk2p");
  CHECK(c->pod_uid == "8f4e2b1a-6c3d-4e5f-9a8b-7c6d5e4f3a2b");
  CHECK(c->sandbox);
  CHECK(c->container.empty());
  CHECK_FALSE(c->host_network);
  CHECK(c->netns_path == "/var/run/netns/cni-2d1c7a5e-3b4f-6a8d-9c0e-1f2a3b4c5d6e");
}

TEST_CASE("containerd: a pod's container joins the sandbox's netns by its pid") {
  auto c = container_from_oci_spec(fixture("containerd-container.json"));
  REQUIRE(c);
  CHECK(c->pod_namespace == "kube-system");
  CHECK(c->pod_name == "coredns-5d78c9869d-7xk2p");
  CHECK(c->container == "coredns");
  CHECK_FALSE(c->sandbox);
  CHECK(c->netns_path == "/proc/2176/ns/net");
}

TEST_CASE("containerd: a host-network pod has no netns of its own") {
  auto c = container_from_oci_spec(fixture("containerd-host-network.json"));
  REQUIRE(c);
  CHECK(c->pod_name == "kube-proxy-x7q9z");
  CHECK(c->host_network);
  CHECK(c->netns_path.empty());
}

TEST_CASE("CRI-O: the kubelet's labels name the pod") {
  auto c = container_from_oci_spec(fixture("crio-container.json"));
  REQUIRE(c);
  CHECK(c->runtime == "cri-o");
  CHECK(c->pod_namespace == "shop");
  CHECK(c->pod_name == "web-6b7f9c8d4-q2w3e");
  CHECK(c->pod_uid == "5b6a7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d");
  CHECK(c->container == "nginx");
  CHECK_FALSE(c->sandbox);
  CHECK(c->netns_path == "/var/run/netns/7a6b5c4d-3e2f-1a0b-9c8d-7e6f5a4b3c2d");
}

TEST_CASE("docker: the container's name, pid and netns pin") {
  auto c = container_from_docker_config(fixture("docker-config.v2.json"));
  REQUIRE(c);
  CHECK(c->runtime == "docker");
  CHECK(c->container == "billing-db");
  CHECK(c->pid == 41235);
  CHECK(c->netns_path == "/var/run/docker/netns/87ca3fc53893");
  CHECK(c->pod_name.empty());
}

TEST_CASE("what is not a runtime's file names nothing") {
  for (const char* text : {"", "not json", "[1, 2]", "{\"annotations\": 3}", "{\"annotations\": {}}",
                           "{\"annotations\": {\"io.kubernetes.cri.sandbox-name\": 7}}",
                           "{\"linux\": {\"namespaces\": [{\"type\": \"network\"}]}}"})
    CHECK_FALSE(container_from_oci_spec(text));
  // A plain containerd or podman container (no pod annotations) is left to the cgroup's name.
  CHECK_FALSE(container_from_oci_spec(R"({"annotations": {"io.container.manager": "libpod"}})"));
  for (const char* text : {"", "{}", "{\"Name\": \"/\"}", "{\"Name\": 5}", "{{"})
    CHECK_FALSE(container_from_docker_config(text));
  // A stopped docker container has no pid to follow.
  auto stopped = container_from_docker_config(R"({"Name": "/old", "State": {"Running": false, "Pid": 0}})");
  REQUIRE(stopped);
  CHECK(stopped->pid == 0);
  // Odd types inside a spec are skipped, not trusted.
  auto odd = container_from_oci_spec(
      R"({"annotations": {"io.kubernetes.cri.sandbox-name": "p"}, "linux": {"namespaces": [5, {"type": "network", "path": 9}]}})");
  REQUIRE(odd);
  CHECK(odd->pod_name == "p");
  CHECK(odd->netns_path.empty());
  CHECK_FALSE(odd->host_network);
}

TEST_CASE("a netns's name: namespace/pod, whatever its containers") {
  auto sandbox = *container_from_oci_spec(fixture("containerd-sandbox.json"));
  auto coredns = *container_from_oci_spec(fixture("containerd-container.json"));
  CHECK(netns_name_from({sandbox, coredns}) == "kube-system/coredns-5d78c9869d-7xk2p");
  CHECK(netns_name_from({coredns}) == "kube-system/coredns-5d78c9869d-7xk2p");
  CHECK(netns_name_from({*container_from_docker_config(fixture("docker-config.v2.json"))}) == "docker:billing-db");
  CHECK(netns_name_from({}).empty());
  // Several pods in one netns: the first two in order, then how many more.
  std::vector<RuntimeContainer> many;
  for (const char* pod : {"d", "b", "c", "a"}) {
    RuntimeContainer c;
    c.pod_namespace = "ns";
    c.pod_name = pod;
    many.push_back(c);
  }
  CHECK(netns_name_from(many) == "ns/a, ns/b +2");
}
