#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""check_manifest.py FILE.yaml...: the Kubernetes manifests as an API server in strict field
validation would take them, offline, without a cluster.

Kubernetes' own kinds (Namespace, DaemonSet, Service, ...) are checked against the API's types as
Debian's python3-kubernetes ships them (models generated from Kubernetes' OpenAPI document): every
field must be one the type has (a misspelled field fails), every value of the field's type (a string
where an integer belongs fails), every required field present, and no key given twice. The fields the
API checks by value and the client does not (protocols, pull policies, seccomp types, hostPath types,
mount propagation, capability names, resource quantities) are checked against their lists. The
Prometheus Operator's PodMonitor, a custom resource, is checked against podmonitor.schema.json beside
this file: the fields a PodMonitor has, strict (additionalProperties false), with their types.
Then, across the documents: selectors match the pod template's labels, named ports exist, and the
scrape annotations name the container's port.

check_manifest.py --bites FILE.yaml...: the check can fail: each of a set of damaged copies (a
misspelled field, a wrong type, a required field removed, a misspelled capability, a bad quantity,
a PodMonitor field misspelled, a port name that does not exist) must be refused, for its reason."""
import json
import os
import re
import sys

import jsonschema
import kubernetes.client as k8s
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))

# Values the API server checks and the generated client does not (Kubernetes' validation).
ENUMS = {
    ("V1ContainerPort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1ServicePort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1Container", "image_pull_policy"): {"Always", "Never", "IfNotPresent"},
    ("V1SeccompProfile", "type"): {"RuntimeDefault", "Unconfined", "Localhost"},
    ("V1HostPathVolumeSource", "type"): {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File",
                                          "Socket", "CharDevice", "BlockDevice"},
    ("V1VolumeMount", "mount_propagation"): {"None", "HostToContainer", "Bidirectional"},
    ("V1Toleration", "operator"): {"Exists", "Equal"},
    ("V1Toleration", "effect"): {"NoSchedule", "PreferNoSchedule", "NoExecute"},
    ("V1DaemonSetUpdateStrategy", "type"): {"RollingUpdate", "OnDelete"},
    ("V1ServiceSpec", "type"): {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"},
    ("V1PodSpec", "dns_policy"): {"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"},
    ("V1PodSpec", "restart_policy"): {"Always", "OnFailure", "Never"},
    ("V1HTTPGetAction", "scheme"): {"HTTP", "HTTPS"},
    ("V1ObjectFieldSelector", "field_path"): {
        "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
        "status.hostIP", "status.podIP", "status.podIPs"},
}
# Linux capabilities as the container runtimes take them (capability.h, without CAP_).
CAPABILITIES = {
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE", "ALL"}
# resource.Quantity's serialised form (k8s.io/apimachinery/pkg/api/resource).
QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
RESOURCES = {"cpu", "memory", "ephemeral-storage"}


class UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def model_class(api_version, kind):
    version = api_version.split("/")[-1]
    return getattr(k8s, version[0].upper() + version[1:] + kind, None)


def check_value(value, type_name, path, owner, field, errors):
    """Checks value against a type name of the generated client: 'str', 'int', 'list[V1Container]', ..."""
    if value is None:
        return
    if type_name in ("str", "datetime", "date"):
        ok = isinstance(value, str)
    elif type_name == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif type_name == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif type_name == "bool":
        ok = isinstance(value, bool)
    elif type_name == "object":  # IntOrString and free-form fields
        ok = isinstance(value, (str, int, dict)) and not isinstance(value, bool)
    elif type_name.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: a list expected, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check_value(item, type_name[5:-1], f"{path}[{i}]", owner, field, errors)
        return
    elif type_name.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: a mapping expected, got {type(value).__name__}")
            return
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(f"{path}: key {key!r} is not a string")
            check_value(item, inner, f"{path}.{key}", owner, field, errors)
        return
    else:
        check_object(value, type_name, path, errors)
        return
    if not ok:
        errors.append(f"{path}: {type_name} expected, got {type(value).__name__} {value!r}")
        return
    allowed = ENUMS.get((owner, field))
    if allowed is not None and value not in allowed:
        errors.append(f"{path}: {value!r} is not one of {sorted(allowed)}")
    if owner == "V1Capabilities" and value not in CAPABILITIES:
        errors.append(f"{path}: {value!r} is no Linux capability")
    if owner == "V1ResourceRequirements":
        if path.rsplit(".", 1)[-1] not in RESOURCES:
            errors.append(f"{path}: unknown resource")
        if not QUANTITY.match(value):
            errors.append(f"{path}: {value!r} is not a quantity")


def check_object(value, class_name, path, errors):
    cls = getattr(k8s, class_name, None)
    if cls is None:
        errors.append(f"{path}: no type {class_name} in the Kubernetes API")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: an object ({class_name}) expected, got {type(value).__name__} {value!r}")
        return
    by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{path}.{key}: no field {key!r} in {class_name}")
            continue
        check_value(item, cls.openapi_types[attr], f"{path}.{key}", class_name, attr, errors)


def check_required(doc, class_name, path, errors):
    """The generated models refuse a required field left out (client-side validation)."""
    try:
        k8s.ApiClient()._ApiClient__deserialize(doc, class_name)
    except (ValueError, TypeError) as e:
        errors.append(f"{path}: {e}")


def check_document(doc, where, errors):
    if not isinstance(doc, dict):
        errors.append(f"{where}: not a mapping")
        return
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        errors.append(f"{where}: no apiVersion or kind")
        return
    name = (doc.get("metadata") or {}).get("name", "?")
    where = f"{where} {kind}/{name}"
    if api_version == "monitoring.coreos.com/v1" and kind == "PodMonitor":
        with open(os.path.join(HERE, "podmonitor.schema.json")) as f:
            schema = json.load(f)
        for e in sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path)):
            errors.append(f"{where}: /{'/'.join(str(p) for p in e.path)}: {e.message}")
        return
    cls = model_class(api_version, kind)
    if cls is None or "kind" not in cls.attribute_map.values():
        errors.append(f"{where}: {api_version} {kind} is no kind this check knows")
        return
    before = len(errors)
    check_object(doc, cls.__name__, where, errors)
    if len(errors) == before:
        check_required(doc, cls.__name__, where, errors)


def pod_templates(docs):
    for doc in docs:
        if doc.get("kind") in ("DaemonSet", "Deployment", "StatefulSet"):
            yield doc, doc["spec"]["template"]


def labels_of(template):
    return template.get("metadata", {}).get("labels", {})


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def port_names(templates):
    return {p.get("name") for t in templates for c in t["spec"]["containers"] for p in c.get("ports", [])}


def check_references(docs, errors):
    """What the API server does not check: the objects agree with each other."""
    templates = list(pod_templates(docs))
    for owner, template in templates:
        name = f"{owner['kind']}/{owner['metadata']['name']}"
        if not matches(owner["spec"]["selector"].get("matchLabels"), labels_of(template)):
            errors.append(f"{name}: its selector does not match its pod template's labels")
        spec = template["spec"]
        ports = {p["name"]: p["containerPort"] for c in spec["containers"] for p in c.get("ports", []) if "name" in p}
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                port = ((c.get(probe) or {}).get("httpGet") or {}).get("port")
                if isinstance(port, str) and port not in ports:
                    errors.append(f"{name}: {c['name']}'s {probe} names port {port!r}, which no container has")
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    errors.append(f"{name}: {c['name']} mounts volume {m['name']!r}, which the pod does not have")
        scrape = template.get("metadata", {}).get("annotations", {})
        scrape_port = int(scrape.get("prometheus.io/port", 0))
        if scrape.get("prometheus.io/scrape") == "true" and scrape_port not in ports.values():
            errors.append(f"{name}: prometheus.io/port {scrape.get('prometheus.io/port')} is no container port")
    for doc in docs:
        name = f"{doc.get('kind')}/{doc['metadata']['name']}"
        if doc.get("kind") == "Service":
            hit = [t for _, t in templates if matches(doc["spec"].get("selector"), labels_of(t))]
            if not hit:
                errors.append(f"{name}: its selector matches no pod template")
            for p in doc["spec"].get("ports", []):
                if isinstance(p.get("targetPort"), str) and p["targetPort"] not in port_names(hit):
                    errors.append(f"{name}: targetPort {p['targetPort']!r} is no port of its pods")
        if doc.get("kind") == "PodMonitor":
            spec = doc.get("spec", {})
            selector = spec.get("selector", {}).get("matchLabels")
            hit = [t for _, t in templates if matches(selector, labels_of(t))]
            if templates and not hit:
                errors.append(f"{name}: its selector matches no pod template")
            for ep in spec.get("podMetricsEndpoints", []):
                if ep.get("port") and hit and ep["port"] not in port_names(hit):
                    errors.append(f"{name}: port {ep['port']!r} is no port of its pods")


def check_texts(texts):
    """texts: [(name, yaml text)]. Returns the errors, one line each."""
    errors, docs = [], []
    for name, text in texts:
        try:
            loaded = [d for d in yaml.load_all(text, Loader=UniqueKeyLoader) if d is not None]
        except yaml.YAMLError as e:
            errors.append(f"{name}: {e}")
            continue
        for i, doc in enumerate(loaded):
            check_document(doc, f"{name}#{i + 1}", errors)
        docs += [d for d in loaded if isinstance(d, dict)]
    if not errors:
        check_references(docs, errors)
    return errors, docs


# Each damage: (what, file name's end, text replaced, replacement, words the refusal must contain).
DAMAGES = [
    ("a misspelled field", "ctbpf.yaml", "hostNetwork: true", "hostNetwrok: true",
     "no field 'hostNetwrok' in V1PodSpec"),
    ("a misspelled nested field", "ctbpf.yaml", "readOnlyRootFilesystem:", "readOnlyRootFileSystem:",
     "no field 'readOnlyRootFileSystem' in V1SecurityContext"),
    ("a string where an integer belongs", "ctbpf.yaml", "containerPort: 9640", 'containerPort: "9640"',
     "int expected, got str '9640'"),
    ("a boolean where a string belongs", "ctbpf.yaml", 'prometheus.io/scrape: "true"', "prometheus.io/scrape: true",
     "str expected, got bool"),
    ("a list where an object belongs", "ctbpf.yaml", "      hostNetwork: true", "      hostNetwork: [true]",
     "bool expected, got list"),
    ("a required field removed", "ctbpf.yaml", "        - name: ctbpf\n", "        - \n", "Invalid value for `name`"),
    ("a misspelled capability", "ctbpf.yaml", '"PERFMON"', '"PERFMOM"', "'PERFMOM' is no Linux capability"),
    ("a bad quantity", "ctbpf.yaml", "memory: 64Mi", "memory: 64MB", "'64MB' is not a quantity"),
    ("a misspelled enum value", "ctbpf.yaml", "type: RuntimeDefault", "type: Runtimedefault",
     "'Runtimedefault' is not one of"),
    ("a key given twice", "ctbpf.yaml", "      hostPID: true\n", "      hostPID: true\n      hostPID: false\n",
     "given twice"),
    ("a probe on a port no container has", "ctbpf.yaml", "              port: metrics\n            periodSeconds: 10",
     "              port: metric\n            periodSeconds: 10", "names port 'metric'"),
    ("a misspelled PodMonitor field", "podmonitor.yaml", "podMetricsEndpoints:", "podMetricEndpoints:",
     "'podMetricEndpoints' was unexpected"),
    ("a PodMonitor interval of the wrong form", "podmonitor.yaml", "interval: 15s", "interval: 15 seconds",
     "does not match"),
]


def main(argv):
    bites = argv[:1] == ["--bites"]
    files = argv[1:] if bites else argv
    if not files:
        print(__doc__.split("\n\n")[0])
        return 2
    texts = [(os.path.basename(f), open(f).read()) for f in files]
    errors, docs = check_texts(texts)
    for e in errors:
        print(e)
    if errors:
        print(f"FAIL {len(errors)} problems in {', '.join(files)}")
        return 1
    print(f"ok   {len(docs)} objects ({', '.join(d['kind'] for d in docs)}) valid")
    if not bites:
        return 0
    failed = False
    for what, target, old, new, reason in DAMAGES:
        damaged = []
        for name, text in texts:
            if name.endswith(target):
                if old not in text:
                    print(f"FAIL {what}: {old!r} not found in {name}: the damage list is out of date")
                    failed = True
                text = text.replace(old, new, 1)
            damaged.append((name, text))
        errs, _ = check_texts(damaged)
        if any(reason in e for e in errs):
            print(f"ok   refused {what}: {next(e for e in errs if reason in e)}")
        else:
            print(f"FAIL not refused for its reason, {what} (wanted {reason!r}): {errs}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
