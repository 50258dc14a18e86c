// SPDX-License-Identifier: Apache-2.0
#include "core/pods.h"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

namespace ctbpf::core {

namespace {

using nlohmann::json;

std::optional<json> parse(std::string_view text) {
  auto doc = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return std::nullopt;
  return doc;
}

// A string member of an object, or "" (absent, or not a string).
std::string text_of(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

std::optional<RuntimeContainer> container_from_oci_spec(std::string_view config_json) {
  auto doc = parse(config_json);
  if (!doc) return std::nullopt;
  const json& annotations = doc->contains("annotations") ? (*doc)["annotations"] : json::object();
  RuntimeContainer c;
  // containerd's CRI plugin (pkg/cri/annotations): the same keys on the sandbox and on each container.
  c.pod_name = text_of(annotations, "io.kubernetes.cri.sandbox-name");
  if (!c.pod_name.empty()) {
    c.runtime = "containerd";
    c.pod_namespace = text_of(annotations, "io.kubernetes.cri.sandbox-namespace");
    c.pod_uid = text_of(annotations, "io.kubernetes.cri.sandbox-uid");
    c.container = text_of(annotations, "io.kubernetes.cri.container-name");
    c.sandbox = text_of(annotations, "io.kubernetes.cri.container-type") == "sandbox";
  } else {
    // CRI-O: the kubelet's labels as annotations, and its own container type.
    c.pod_name = text_of(annotations, "io.kubernetes.pod.name");
    if (c.pod_name.empty()) return std::nullopt;
    c.runtime = "cri-o";
    c.pod_namespace = text_of(annotations, "io.kubernetes.pod.namespace");
    c.pod_uid = text_of(annotations, "io.kubernetes.pod.uid");
    c.container = text_of(annotations, "io.kubernetes.container.name");
    c.sandbox = text_of(annotations, "io.kubernetes.cri-o.ContainerType") == "sandbox";
  }
  // linux.namespaces: [{"type": "network", "path": ...}]; no "network" entry: the host's network.
  c.host_network = true;
  const json* linux = doc->contains("linux") ? &(*doc)["linux"] : nullptr;
  if (linux && linux->is_object() && linux->contains("namespaces") && (*linux)["namespaces"].is_array()) {
    for (const auto& ns : (*linux)["namespaces"]) {
      if (text_of(ns, "type") != "network") continue;
      c.host_network = false;
      c.netns_path = text_of(ns, "path");
    }
  }
  return c;
}

std::optional<RuntimeContainer> container_from_docker_config(std::string_view config_json) {
  auto doc = parse(config_json);
  if (!doc) return std::nullopt;
  RuntimeContainer c;
  c.runtime = "docker";
  c.container = text_of(*doc, "Name");
  if (!c.container.empty() && c.container.front() == '/') c.container.erase(0, 1);
  if (c.container.empty()) return std::nullopt;
  if (doc->contains("State") && (*doc)["State"].is_object()) {
    const auto& state = (*doc)["State"];
    const bool running = state.contains("Running") && state["Running"].is_boolean() && state["Running"].get<bool>();
    if (running && state.contains("Pid") && state["Pid"].is_number_integer()) c.pid = state["Pid"].get<int>();
  }
  if (doc->contains("NetworkSettings")) c.netns_path = text_of((*doc)["NetworkSettings"], "SandboxKey");
  return c;
}

std::string netns_name_from(std::vector<RuntimeContainer> containers) {
  std::set<std::string> names;
  for (const auto& c : containers) {
    if (!c.pod_name.empty())
      names.insert(c.pod_namespace.empty() ? c.pod_name : c.pod_namespace + "/" + c.pod_name);
    else if (!c.container.empty())
      names.insert(c.runtime + ":" + c.container);
  }
  std::string out;
  std::size_t shown = 0;
  for (const auto& name : names) {
    if (shown == 2) break;
    out += (shown++ ? ", " : "") + name;
  }
  if (names.size() > shown) out += " +" + std::to_string(names.size() - shown);
  return out;
}

}  // namespace ctbpf::core
