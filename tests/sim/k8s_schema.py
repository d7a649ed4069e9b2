# k8s-sim: validation and defaulting of the bodies clients send (create, PUT,
# PATCH).  Field names, defaults and error texts follow the API reference pages
# workload-resources/pod-v1, job-v1, deployment-v1, replica-set-v1,
# service-resources/service-v1, config-and-storage-resources/config-map-v1,
# secret-v1, cluster-resources/namespace-v1, and common-definitions/quantity.
import base64
import binascii
import copy
import ipaddress
import json
import random
import re
import uuid

from k8s_store import bad_request, invalid, selector_matches

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORTS = range(30000, 32768)
EXTENDED = re.compile(r"^[a-z0-9.-]+/[A-Za-z0-9._-]+$")   # nvidia.com/gpu

# ---- quantities (common-definitions/quantity) ----

QUANTITY_RE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
SUFFIX = {"": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "P": 1e15, "E": 1e18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
          "Pi": 2**50, "Ei": 2**60}


def parse_quantity(value):
    """'500m' -> 0.5, '2' -> 2, '1Gi' -> 1073741824; raises ValueError."""
    text = str(value).strip()
    m = QUANTITY_RE.match(text)
    if not m:
        raise ValueError(text)
    number, suffix = m.groups()
    if suffix in SUFFIX:
        return float(number) * SUFFIX[suffix]
    if suffix[:1] in "eE":
        return float(number + suffix)
    raise ValueError(text)


def quantity_or_400(value, path):
    try:
        return parse_quantity(value)
    except ValueError:
        raise bad_request(f"quantities must match the regular expression "
                          f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' ({path}: {value!r})")


# ---- names (overview/working-with-objects/names) ----

LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
NAME_RULES = {
    "label": (LABEL_RE, 63, "a lowercase RFC 1123 label must consist of lower case alphanumeric "
              "characters or '-', and must start and end with an alphanumeric character (e.g. "
              "'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    "subdomain": (SUBDOMAIN_RE, 253, "a lowercase RFC 1123 subdomain must consist of lower case "
                  "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                  "character (e.g. 'example.com', regex used for validation is "
                  "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    "label1035": (DNS1035_RE, 63, "a DNS-1035 label must consist of lower case alphanumeric "
                  "characters or '-', start with an alphabetic character, and end with an "
                  "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                  "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
}

# ---- known fields, for fieldValidation=Strict|Warn ----

META = {"name", "generateName", "namespace", "labels", "annotations", "ownerReferences",
        "finalizers", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"}
POD_SPEC = {"activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "containers",
            "dnsConfig", "dnsPolicy", "enableServiceLinks", "ephemeralContainers", "hostAliases",
            "hostIPC", "hostNetwork", "hostPID", "hostUsers", "hostname", "imagePullSecrets",
            "initContainers", "nodeName", "nodeSelector", "os", "overhead", "preemptionPolicy",
            "priority", "priorityClassName", "readinessGates", "resourceClaims", "restartPolicy",
            "runtimeClassName", "schedulerName", "schedulingGates", "securityContext",
            "serviceAccount", "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace",
            "subdomain", "terminationGracePeriodSeconds", "tolerations",
            "topologySpreadConstraints", "volumes"}
CONTAINER = {"args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle",
             "livenessProbe", "name", "ports", "readinessProbe", "resizePolicy", "resources",
             "restartPolicy", "securityContext", "startupProbe", "stdin", "stdinOnce",
             "terminationMessagePath", "terminationMessagePolicy", "tty", "volumeDevices",
             "volumeMounts", "workingDir"}
SPECS = {
    "jobs": {"activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex", "completionMode",
             "completions", "managedBy", "manualSelector", "maxFailedIndexes", "parallelism",
             "podFailurePolicy", "podReplacementPolicy", "selector", "successPolicy", "suspend",
             "template", "ttlSecondsAfterFinished"},
    "deployments": {"minReadySeconds", "paused", "progressDeadlineSeconds", "replicas",
                    "revisionHistoryLimit", "selector", "strategy", "template"},
    "replicasets": {"minReadySeconds", "replicas", "selector", "template"},
    "services": {"allocateLoadBalancerNodePorts", "clusterIP", "clusterIPs", "externalIPs",
                 "externalName", "externalTrafficPolicy", "healthCheckNodePort",
                 "internalTrafficPolicy", "ipFamilies", "ipFamilyPolicy", "loadBalancerClass",
                 "loadBalancerIP", "loadBalancerSourceRanges", "ports", "publishNotReadyAddresses",
                 "selector", "sessionAffinity", "sessionAffinityConfig", "trafficDistribution", "type"},
    "pods": POD_SPEC, "namespaces": {"finalizers"},
}
TOP = {"apiVersion", "kind", "metadata"}
TOP_EXTRA = {"configmaps": {"data", "binaryData", "immutable"},
             "secrets": {"data", "stringData", "type", "immutable"}}
HAS_STATUS = {"namespaces", "nodes", "pods", "services", "jobs", "deployments", "replicasets"}


def _unknown(obj, known, path):
    if not isinstance(obj, dict):
        return []
    return [f"{path}.{k}" if path else k for k in obj if k not in known]


def unknown_fields(resource, obj):
    """Dotted paths of fields this API version does not define (strict decoding)."""
    known = TOP | TOP_EXTRA.get(resource, set()) | ({"spec", "status"} if resource in HAS_STATUS else set())
    out = _unknown(obj, known, "")
    out += _unknown(obj.get("metadata"), META, "metadata")
    spec = obj.get("spec")
    if resource in SPECS:
        out += _unknown(spec, SPECS[resource], "spec")
    pod_spec, path = (spec, "spec") if resource == "pods" else (None, "")
    if isinstance(spec, dict) and isinstance(spec.get("template"), dict):
        out += _unknown(spec["template"], {"metadata", "spec"}, "spec.template")
        out += _unknown(spec["template"].get("metadata"), META, "spec.template.metadata")
        pod_spec, path = spec["template"].get("spec"), "spec.template.spec"
        out += _unknown(pod_spec, POD_SPEC, path)
    if isinstance(pod_spec, dict):
        for group in ("containers", "initContainers"):
            items = pod_spec.get(group)
            for i, c in enumerate(items if isinstance(items, list) else []):
                out += _unknown(c, CONTAINER, f"{path}.{group}[{i}]")
    return out


# ---- a collector of StatusCauses ----

def go_value(value):
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "map[string]string{" + ", ".join(f"{json.dumps(k)}:{json.dumps(v)}"
                                                for k, v in value.items()) + "}"
    return json.dumps(value)


GO_TYPES = {int: "int32", str: "string", list: "array", dict: "object", bool: "bool"}


class Check:
    """Gathers field errors for one object; raise_if_any() turns them into a 422."""

    def __init__(self, kind, name):
        self.kind, self.name, self.causes = kind, name, []

    def add(self, reason, field, message):
        self.causes.append({"reason": reason, "message": message, "field": field})

    def required(self, field, detail=""):
        self.add("FieldValueRequired", field, "Required value" + (": " + detail if detail else ""))

    def invalid(self, field, value, detail):
        self.add("FieldValueInvalid", field, f"Invalid value: {go_value(value)}: {detail}")

    def unsupported(self, field, value, supported):
        values = ", ".join(json.dumps(s) for s in supported)
        self.add("FieldValueNotSupported", field,
                 f"Unsupported value: {go_value(value)}: supported values: {values}")

    def forbidden(self, field, detail):
        self.add("FieldValueForbidden", field, "Forbidden: " + detail)

    def typed(self, parent, key, typ, field):
        """parent[key] if it has JSON type typ (or is absent: None); a wrong type is a 400."""
        value = parent.get(key) if isinstance(parent, dict) else None
        if value is None:
            return None
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            got = {bool: "bool", int: "number", float: "number", str: "string", list: "array",
                   dict: "object"}.get(type(value), "value")
            kind = self.kind.kind
            raise bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot '
                              f'unmarshal {got} into Go struct field {field} of type {GO_TYPES[typ]}')
        return value

    def need_dict(self, value, field):
        if not isinstance(value, dict):
            self.typed({"v": value if value is not None else 0}, "v", dict, field)
        return value

    def non_negative(self, parent, key, field, default=None):
        value = self.typed(parent, key, int, field)
        if value is None:
            if default is not None:
                parent[key] = default
            return default
        if value < 0:
            self.invalid(field, value, "must be greater than or equal to 0")
        return value

    def check_name(self, name, field, rule):
        regex, limit, text = NAME_RULES[rule]
        if len(name) > limit:
            self.invalid(field, name, f"must be no more than {limit} characters")
        elif not regex.match(name):
            self.invalid(field, name, text)

    def labels(self, labels, field):
        for key, value in (labels or {}).items():
            if not isinstance(value, str):
                self.typed({key: value}, key, str, field)
            if len(value) > 63:
                self.invalid(field, value, "must be no more than 63 characters")
            elif not LABEL_VALUE_RE.match(value):
                self.invalid(field, value, "a valid label must be an empty string or consist of "
                             "alphanumeric characters, '-', '_' or '.', and must start and end with "
                             "an alphanumeric character")

    def raise_if_any(self):
        if self.causes:
            raise invalid(self.kind, self.name, self.causes)


# ---- pods and pod templates ----

PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
     "tolerationSeconds": 300}]


def image_pull_policy(image):
    tail = image.split("@")[0].rsplit("/", 1)[-1]
    tag = tail.split(":", 1)[1] if ":" in tail else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def resources(chk, res, path, pod):
    limits = chk.typed(res, "limits", dict, path + ".limits") or {}
    requests = chk.typed(res, "requests", dict, path + ".requests") or {}
    parsed = {}
    for group, values in (("limits", limits), ("requests", requests)):
        parsed[group] = {k: quantity_or_400(v, f"{path}.{group}[{k}]") for k, v in values.items()}
    for name, req in parsed["requests"].items():
        lim = parsed["limits"].get(name)
        field = f"{path}.requests[{name}]"
        if EXTENDED.match(name) and "kubernetes.io/" not in name:
            if lim is None:
                chk.required(path + ".limits", "Limit must be set for non overcommitable resources")
            elif req != lim:
                chk.invalid(field, requests[name], f"must be equal to {name} limit of {limits[name]}")
        elif lim is not None and req > lim:
            chk.invalid(field, requests[name], f"must be less than or equal to {name} limit of {limits[name]}")
    if pod:
        for name, value in limits.items():
            requests.setdefault(name, value)
        if requests:
            res["requests"] = requests


def probe(chk, spec, path):
    if spec is None:
        return
    for key, value in PROBE_DEFAULTS.items():
        spec.setdefault(key, value)
    if isinstance(spec.get("httpGet"), dict):
        spec["httpGet"].setdefault("path", "/")
        spec["httpGet"].setdefault("scheme", "HTTP")
    if not any(k in spec for k in ("httpGet", "tcpSocket", "exec", "grpc")):
        chk.required(path, "must specify a handler type")


def container(chk, c, path, names, pod):
    chk.need_dict(c, path)
    name = chk.typed(c, "name", str, path + ".name")
    if not name:
        chk.required(path + ".name")
    else:
        chk.check_name(name, path + ".name", "label")
        if name in names:
            chk.add("FieldValueDuplicate", path + ".name", f"Duplicate value: {go_value(name)}")
        names.add(name)
    image = chk.typed(c, "image", str, path + ".image")
    if not image:
        chk.required(path + ".image")
    for key in ("command", "args"):
        for i, arg in enumerate(chk.typed(c, key, list, f"{path}.{key}") or []):
            chk.typed({"a": arg}, "a", str, f"{path}.{key}[{i}]")
    for i, env in enumerate(chk.typed(c, "env", list, path + ".env") or []):
        env_name = chk.typed(env, "name", str, f"{path}.env[{i}].name")
        if not env_name:
            chk.required(f"{path}.env[{i}].name")
        elif not ENV_NAME_RE.match(env_name):
            chk.invalid(f"{path}.env[{i}].name", env_name, "a valid environment variable name must "
                        "consist of alphabetic characters, digits, '_', '-', or '.', and must not "
                        "start with a digit")
    for i, port in enumerate(chk.typed(c, "ports", list, path + ".ports") or []):
        number = chk.typed(port, "containerPort", int, f"{path}.ports[{i}].containerPort")
        if number is None:
            chk.required(f"{path}.ports[{i}].containerPort")
        elif not 0 < number < 65536:
            chk.invalid(f"{path}.ports[{i}].containerPort", number, "must be between 1 and 65535, inclusive")
        port.setdefault("protocol", "TCP")
    c.setdefault("resources", {})
    resources(chk, chk.typed(c, "resources", dict, path + ".resources"), path + ".resources", pod)
    for key in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe(chk, chk.typed(c, key, dict, f"{path}.{key}"), f"{path}.{key}")
    if image:
        c.setdefault("imagePullPolicy", image_pull_policy(image))
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")


def pod_spec(chk, spec, path, pod=False, policies=("Always", "OnFailure", "Never")):
    containers = chk.typed(spec, "containers", list, path + ".containers")
    if not containers:
        chk.required(path + ".containers")
    names = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(chk.typed(spec, group, list, f"{path}.{group}") or []):
            container(chk, c, f"{path}.{group}[{i}]", names, pod)
    policy = chk.typed(spec, "restartPolicy", str, path + ".restartPolicy") or "Always"
    spec["restartPolicy"] = policy
    if policy not in policies:
        chk.unsupported(path + ".restartPolicy", policy, policies)
    for key, value in (chk.typed(spec, "nodeSelector", dict, path + ".nodeSelector") or {}).items():
        chk.typed({key: value}, key, str, f"{path}.nodeSelector")
    chk.non_negative(spec, "terminationGracePeriodSeconds", path + ".terminationGracePeriodSeconds", 30)
    chk.typed(spec, "tolerations", list, path + ".tolerations")
    for key, value in (("dnsPolicy", "ClusterFirst"), ("schedulerName", "default-scheduler"),
                       ("securityContext", {})):
        spec.setdefault(key, value)
    if pod:
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        spec.setdefault("tolerations", copy.deepcopy(DEFAULT_TOLERATIONS))


def qos_class(spec):
    reqs, lims = [], []
    for c in spec.get("containers", []):
        res = c.get("resources") or {}
        reqs.append({k: v for k, v in (res.get("requests") or {}).items() if k in ("cpu", "memory")})
        lims.append({k: v for k, v in (res.get("limits") or {}).items() if k in ("cpu", "memory")})
    if not any(reqs) and not any(lims):
        return "BestEffort"
    if all(len(lim) == 2 and lim == (req or lim) for req, lim in zip(reqs, lims)):
        return "Guaranteed"
    return "Burstable"


def template(chk, spec, path, policies, pod_labels=None):
    tmpl = chk.typed(spec, "template", dict, path)
    if tmpl is None:
        chk.required(path)
        return None
    meta = tmpl.setdefault("metadata", {})
    chk.typed(tmpl, "metadata", dict, path + ".metadata")
    meta["creationTimestamp"] = None
    if pod_labels:
        meta.setdefault("labels", {}).update(pod_labels)
    chk.labels(meta.get("labels"), path.rsplit(".", 1)[0] + ".template.labels")
    tmpl.setdefault("spec", {})
    pod_spec(chk, chk.typed(tmpl, "spec", dict, path + ".spec"), path + ".spec", policies=policies)
    return tmpl


# ---- per-kind checks ----

def check_job(chk, obj, store, old):
    spec = chk.typed(obj, "spec", dict, "spec")
    if spec is None:
        chk.required("spec.template")
        return
    uid = obj["metadata"].setdefault("uid", str(uuid.uuid4()))
    name = obj["metadata"].get("name", "")
    labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
              "controller-uid": uid, "job-name": name}
    if spec.get("selector") is not None and not spec.get("manualSelector") and old is None:
        chk.invalid("spec.selector", spec["selector"], "`selector` not auto-generated")
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    both_unset = "parallelism" not in spec and "completions" not in spec
    chk.non_negative(spec, "parallelism", "spec.parallelism", 1)
    if both_unset:
        spec["completions"] = 1
    completions = chk.non_negative(spec, "completions", "spec.completions")
    chk.non_negative(spec, "backoffLimit", "spec.backoffLimit", 6)
    chk.non_negative(spec, "ttlSecondsAfterFinished", "spec.ttlSecondsAfterFinished")
    deadline = chk.typed(spec, "activeDeadlineSeconds", int, "spec.activeDeadlineSeconds")
    if deadline is not None and deadline <= 0:
        chk.invalid("spec.activeDeadlineSeconds", deadline, "must be greater than 0")
    mode = spec.setdefault("completionMode", "NonIndexed")
    if mode not in ("NonIndexed", "Indexed"):
        chk.unsupported("spec.completionMode", mode, ("NonIndexed", "Indexed"))
    elif mode == "Indexed" and completions is None:
        chk.required("spec.completions", "when completion mode is Indexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template(chk, spec, "spec.template", ("OnFailure", "Never"), labels)
    obj["metadata"].setdefault("labels", dict(labels))
    if old is not None:
        for key in ("template", "selector", "completionMode"):
            if spec.get(key) != old["spec"].get(key):
                chk.invalid("spec." + key, spec.get(key), "field is immutable")


def check_workload(chk, obj, store, old):
    """Deployments and ReplicaSets: selector, template, replicas."""
    spec = chk.typed(obj, "spec", dict, "spec")
    if spec is None:
        chk.required("spec.selector")
        chk.required("spec.template")
        return
    chk.non_negative(spec, "replicas", "spec.replicas", 1)
    selector = chk.typed(spec, "selector", dict, "spec.selector")
    if selector is None:
        chk.required("spec.selector")
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        chk.invalid("spec.selector", selector, "empty selector is invalid for deployment")
    tmpl = template(chk, spec, "spec.template", ("Always",))
    if tmpl and selector and not selector_matches(selector, tmpl["metadata"].get("labels") or {}):
        chk.invalid("spec.template.metadata.labels", tmpl["metadata"].get("labels") or {},
                    "`selector` does not match template `labels`")
    if obj.get("kind") == "Deployment":
        spec.setdefault("strategy", {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        spec.setdefault("revisionHistoryLimit", 10)
        chk.non_negative(spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds", 600)
    if old is not None and spec.get("selector") != old["spec"].get("selector"):
        chk.invalid("spec.selector", spec.get("selector"), "field is immutable")


def check_pod(chk, obj, store, old):
    spec = chk.typed(obj, "spec", dict, "spec")
    if spec is None:
        chk.required("spec.containers")
        return
    if old is not None:
        strip = lambda s: [dict(c, image=None) for c in s.get("containers", [])]
        if strip(spec) != strip(old["spec"]) or {k: v for k, v in spec.items() if k != "containers"} != \
                {k: v for k, v in old["spec"].items() if k != "containers"}:
            chk.forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`")
        return
    pod_spec(chk, spec, "spec", pod=True)
    obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def check_service(chk, obj, store, old):
    spec = obj.setdefault("spec", {})
    chk.typed(obj, "spec", dict, "spec")
    kind = spec.setdefault("type", "ClusterIP")
    kinds = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
    if kind not in kinds:
        chk.unsupported("spec.type", kind, kinds)
    others = [s for s in store.items("services") if old is None or s["metadata"]["uid"] != old["metadata"]["uid"]]
    service_ports(chk, spec, old, others)
    if kind != "ExternalName":
        cluster_ip(chk, spec, old, others)
    for key, value in (("sessionAffinity", "None"), ("internalTrafficPolicy", "Cluster")):
        spec.setdefault(key, value)
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    obj["status"] = old["status"] if old else {"loadBalancer": {}}
    if old and kind != "LoadBalancer":
        obj["status"] = {"loadBalancer": {}}


def service_ports(chk, spec, old, others):
    ports = chk.typed(spec, "ports", list, "spec.ports") or []
    if not ports and spec.get("clusterIP") != "None" and spec["type"] != "ExternalName":
        chk.required("spec.ports")
    used = {p.get("nodePort") for s in others for p in s["spec"].get("ports", [])}
    old_ports = {p.get("port"): p.get("nodePort") for p in (old or {}).get("spec", {}).get("ports", [])}
    names = set()
    for i, port in enumerate(ports):
        field = f"spec.ports[{i}]"
        number = chk.typed(port, "port", int, field + ".port")
        if number is None:
            chk.required(field + ".port")
        elif not 0 < number < 65536:
            chk.invalid(field + ".port", number, "must be between 1 and 65535, inclusive")
        if len(ports) > 1 and not port.get("name"):
            chk.required(field + ".name")
        elif port.get("name") in names:
            chk.add("FieldValueDuplicate", field + ".name", f"Duplicate value: {go_value(port['name'])}")
        names.add(port.get("name"))
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", number)
        node_port(chk, spec["type"], port, field, used, old_ports.get(number))


def node_port(chk, kind, port, field, used, previous):
    wanted = chk.typed(port, "nodePort", int, field + ".nodePort")
    if kind not in ("NodePort", "LoadBalancer"):
        if wanted:
            chk.forbidden(field + ".nodePort", f"may not be used when `type` is '{kind}'")
        return
    if wanted is None:
        free = [p for p in ([previous] if previous else []) + list(NODE_PORTS) if p not in used]
        wanted = free[0] if previous in free else random.choice(free)
    elif wanted not in NODE_PORTS:
        chk.invalid(field + ".nodePort", wanted, "provided port is not in the valid range. "
                    "The range of valid ports is 30000-32767")
    elif wanted in used:
        chk.invalid(field + ".nodePort", wanted, "provided port is already allocated")
    port["nodePort"] = wanted
    used.add(wanted)


def cluster_ip(chk, spec, old, others):
    ip = chk.typed(spec, "clusterIP", str, "spec.clusterIP") or ""
    previous = (old or {}).get("spec", {}).get("clusterIP")
    if previous and ip and ip != previous:
        chk.invalid("spec.clusterIPs[0]", [ip], "may not change once set")
    ip = ip or previous or ""
    used = {s["spec"].get("clusterIP") for s in others}
    if ip == "None":
        pass
    elif not ip:
        while not ip or ip in used:
            ip = str(SERVICE_CIDR[random.randrange(11, SERVICE_CIDR.num_addresses - 1)])
    elif ip != previous:
        try:
            inside = ipaddress.ip_address(ip) in SERVICE_CIDR
        except ValueError:
            inside = False
        if not inside or ip in used:
            why = "is not in the valid range. The range of valid IPs is 10.96.0.0/12" if not inside \
                else "is already allocated"
            chk.invalid("spec.clusterIPs", [ip], f"failed to allocate IP {ip}: the provided IP ({ip}) {why}")
    spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")


def check_data(chk, obj, store, old):
    """ConfigMaps and Secrets: string maps; secrets carry base64 and accept stringData."""
    if old is not None and old.get("immutable") and (obj.get("data") != old.get("data")):
        chk.forbidden("data", "field is immutable when `immutable` is set")
    data = chk.typed(obj, "data", dict, "data") or {}
    for key, value in data.items():
        chk.typed(data, key, str, "data")
        if not re.match(r"^[-._a-zA-Z0-9]+$", key):
            chk.invalid("data", key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'")
    if obj["kind"] != "Secret":
        return
    obj.setdefault("type", "Opaque")
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: '
                              f'illegal base64 data (data[{key}])')
    for key, value in (chk.typed(obj, "stringData", dict, "stringData") or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    obj.pop("stringData", None)
    if data:
        obj["data"] = data


def check_namespace(chk, obj, store, old):
    obj["spec"] = {"finalizers": ["kubernetes"]}
    obj["status"] = old["status"] if old else {"phase": "Active"}


CHECKS = {"jobs": check_job, "deployments": check_workload, "replicasets": check_workload,
          "pods": check_pod, "services": check_service, "configmaps": check_data,
          "secrets": check_data, "namespaces": check_namespace}


def prepare(kind, obj, store, old=None):
    """Validate and default obj in place (422 Invalid / 400 BadRequest on failure)."""
    meta = obj["metadata"]
    chk = Check(kind, meta.get("name") or meta.get("generateName") or "")
    if not meta.get("name"):
        chk.required("metadata.name", "name or generateName is required")
    else:
        chk.check_name(meta["name"], "metadata.name", kind.name_rule)
    for key in ("labels", "annotations"):
        for k, v in (chk.typed(meta, key, dict, "metadata." + key) or {}).items():
            chk.typed({k: v}, k, str, f"metadata.{key}")
    chk.labels(meta.get("labels"), "metadata.labels")
    chk.typed(meta, "finalizers", list, "metadata.finalizers")
    if kind.resource in CHECKS:
        CHECKS[kind.resource](chk, obj, store, old)
    chk.raise_if_any()
    if kind.resource in HAS_STATUS:
        obj.setdefault("status", {})
    return obj
