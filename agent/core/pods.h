// SPDX-License-Identifier: Apache-2.0
#pragma once
// Pods and containers by name, from what the container runtimes on the node record for each
// container (no API server): containerd's task bundles and CRI-O's containers hold the OCI runtime
// spec (config.json) with the CRI's annotations (pod name, namespace, UID, container type) and the
// network namespace's path; docker keeps config.v2.json (the container's name, its netns pin). Pure:
// the kernel layer reads the files (kernel::NetnsNamer) and hands their contents here.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ctbpf::core {

/// One container as its runtime recorded it.
struct RuntimeContainer {
  std::string pod_namespace, pod_name, pod_uid;  // a Kubernetes pod's; empty for a plain container
  std::string container;                         // its name: the CRI's container name, docker's Name
  bool sandbox = false;                          // the pod's sandbox ("pause") container
  /// Where its network namespace is: a pinned path (/var/run/netns/cni-..., /var/run/docker/netns/...)
  /// or /proc/PID/ns/net. Empty when the spec names no network namespace of its own (host network)
  /// or names one without a path (then `pid`'s is it).
  std::string netns_path;
  bool host_network = false;  // no network namespace of its own: it runs in the host's
  int pid = 0;                // docker's State.Pid while it runs; 0 when not known
  std::string runtime;        // "containerd", "cri-o" or "docker"
};

/// An OCI runtime spec (config.json) that containerd's CRI plugin or CRI-O wrote for a pod's sandbox
/// or container: the pod from its annotations (containerd: io.kubernetes.cri.sandbox-name,
/// -namespace, -uid, container-type, container-name; CRI-O: io.kubernetes.pod.name, .namespace,
/// .uid, io.kubernetes.container.name, io.kubernetes.cri-o.ContainerType), the netns from
/// linux.namespaces. Empty when the text is not such a spec (not JSON, no pod name).
std::optional<RuntimeContainer> container_from_oci_spec(std::string_view config_json);

/// docker's config.v2.json: Name (without its leading '/'), State.Pid while State.Running, and
/// NetworkSettings.SandboxKey (its netns pin). Empty when the text is not such a file.
std::optional<RuntimeContainer> container_from_docker_config(std::string_view config_json);

/// The name of a netns from the containers found in it: "namespace/pod" for a pod (the same pod's
/// other containers add nothing), "docker:NAME" for a docker container, and for a netns shared by
/// several (pods on the host network, containers joined to another's netns) the first two in order
/// and "+N". Empty for none.
std::string netns_name_from(std::vector<RuntimeContainer> containers);

}  // namespace ctbpf::core
