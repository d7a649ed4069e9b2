# k8s-sim: the object store (kinds, object metadata, Status errors, label and
# field selectors, deletion with propagation).  Shapes follow the Kubernetes
# API reference, common-definitions: object-meta, status, list-meta,
# delete-options, label-selector (kubernetes.io/docs/reference/kubernetes-api/).
import copy
import datetime
import random
import re
import string
import threading
import time
import uuid


def now_str():
    """RFC 3339 UTC seconds, the form of creationTimestamp: 2026-12-04T06:00:00Z."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rand_suffix(n=5):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


class Kind:
    """One REST resource: 'jobs' of group 'batch' is kind Job, apiVersion batch/v1."""

    def __init__(self, resource, kind, group="", namespaced=True, name_rule="subdomain",
                 verbs=("get", "list", "create", "update", "patch", "delete")):
        self.resource, self.kind, self.group = resource, kind, group
        self.namespaced, self.name_rule, self.verbs = namespaced, name_rule, verbs
        self.api_version = group + "/v1" if group else "v1"
        self.qualified = resource + "." + group if group else resource      # jobs.batch
        self.group_kind = kind + "." + group if group else kind             # Job.batch

    def details(self, name, kind=None):
        d = {"name": name}
        if self.group:
            d["group"] = self.group
        d["kind"] = kind or self.resource
        return d


KINDS = {k.resource: k for k in [
    Kind("namespaces", "Namespace", namespaced=False, name_rule="label"),
    Kind("nodes", "Node", namespaced=False, verbs=("get", "list")),
    Kind("configmaps", "ConfigMap"),
    Kind("secrets", "Secret"),
    Kind("services", "Service", name_rule="label1035"),
    Kind("pods", "Pod"),
    Kind("jobs", "Job", "batch"),
    Kind("deployments", "Deployment", "apps"),
    Kind("replicasets", "ReplicaSet", "apps", verbs=("get", "list", "update", "patch", "delete")),
]}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class ApiError(Exception):
    """A failure rendered as a meta/v1 Status (common-definitions/status)."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, headers or {}

    def body(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason}
        if self.details:
            st["details"] = self.details
        st["code"] = self.code
        return st


def not_found(kind, name):
    return ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', kind.details(name))


def already_exists(kind, name):
    return ApiError(409, "AlreadyExists", f'{kind.qualified} "{name}" already exists',
                    kind.details(name))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def conflict(kind, name, why):
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {kind.qualified} "{name}": {why}',
                    kind.details(name))


def invalid(kind, name, causes):
    parts = [f"{c['field']}: {c['message']}" for c in causes]
    text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    details = kind.details(name, kind.kind)
    details["causes"] = causes
    return ApiError(422, "Invalid", f'{kind.group_kind} "{name}" is invalid: {text}', details)


def success_status(kind, obj):
    """What DELETE returns when the object went away at once (api-conventions)."""
    details = kind.details(obj["metadata"]["name"])
    details["uid"] = obj["metadata"]["uid"]
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}


# ---- selectors (overview/working-with-objects/labels, field-selectors) ----

_SET_RE = re.compile(r"^\s*(!?)([^\s!=()]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_top(text):
    """Split on commas that are not inside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [p for p in (s.strip() for s in out) if p]


def parse_label_selector(text):
    """'a=b,c!=d,e,!f,g in (x,y)' -> [(key, op, [values])]; ops: In NotIn Exists DoesNotExist."""
    reqs = []
    for part in _split_top(text or ""):
        m = re.match(r"^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$", part)
        if m:
            reqs.append((m.group(1), "NotIn" if m.group(2) == "!=" else "In", [m.group(3)]))
            continue
        m = _SET_RE.match(part)
        if not m:
            raise bad_request(f"unable to parse requirement: {part!r}")
        neg, key, op, vals = m.groups()
        if op:
            reqs.append((key, "In" if op == "in" else "NotIn", [v.strip() for v in vals.split(",")]))
        else:
            reqs.append((key, "DoesNotExist" if neg else "Exists", []))
    return reqs


def expr_matches(labels, key, op, values):
    has = key in labels
    if op == "In":
        return has and labels[key] in values
    if op == "NotIn":
        return not has or labels[key] not in values
    if op == "Exists":
        return has
    if op == "DoesNotExist":
        return not has
    if op in ("Gt", "Lt") and has:
        try:
            a, b = int(labels[key]), int(values[0])
        except (ValueError, IndexError):
            return False
        return a > b if op == "Gt" else a < b
    return False


def labels_match(reqs, labels):
    return all(expr_matches(labels or {}, k, op, v) for k, op, v in reqs)


def selector_matches(selector, labels):
    """A LabelSelector object {matchLabels, matchExpressions}."""
    reqs = [(k, "In", [v]) for k, v in (selector.get("matchLabels") or {}).items()]
    reqs += [(e.get("key"), e.get("operator"), e.get("values") or [])
             for e in selector.get("matchExpressions") or []]
    return labels_match(reqs, labels)


FIELD_PATHS = {"metadata.name", "metadata.namespace", "status.phase", "spec.nodeName",
               "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "status.podIP"}


def parse_field_selector(text, resource):
    reqs = []
    for part in _split_top(text or ""):
        m = re.match(r"^([^=!\s]+)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, value = m.groups()
        allowed = FIELD_PATHS if resource == "pods" else {"metadata.name", "metadata.namespace"}
        if path not in allowed:
            raise bad_request(f'field label not supported: {path}')
        reqs.append((path, op != "!=", value))
    return reqs


def field_value(obj, path):
    cur = obj
    for p in path.split("."):
        cur = cur.get(p) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def fields_match(reqs, obj):
    return all((field_value(obj, p) == v) == eq for p, eq, v in reqs)


# ---- the store ----

class Store:
    """All objects, keyed by (resource, namespace, name); one lock for everything."""

    def __init__(self, config):
        self.lock = threading.RLock()
        self.config = config
        self.reset()

    def reset(self):
        self.objects = {}
        self.by_uid = {}
        self.born = {}          # uid -> monotonic creation time
        self.rv = 0
        for ns in SYSTEM_NAMESPACES:
            self.insert(KINDS["namespaces"], {"metadata": {"name": ns}, "spec": {"finalizers": ["kubernetes"]},
                                              "status": {"phase": "Active"}})
        self.sync_nodes()

    # -- basic access --
    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def get(self, resource, ns, name):
        return self.objects.get((resource, ns or "", name))

    def items(self, resource, ns=None):
        keys = sorted(k for k in self.objects if k[0] == resource and (ns is None or k[1] == ns))
        return [self.objects[k] for k in keys]

    def namespaced_objects(self, ns):
        return [o for k, o in self.objects.items() if k[1] == ns]

    def children(self, uid):
        return [o for o in self.objects.values()
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])]

    def touch(self, obj):
        obj["metadata"]["resourceVersion"] = self.next_rv()

    def set_status(self, obj, status):
        if obj.get("status") != status:
            obj["status"] = status
            self.touch(obj)

    def age(self, obj):
        return time.monotonic() - self.born.get(obj["metadata"]["uid"], time.monotonic())

    # -- create / remove --
    def insert(self, kind, obj):
        """Fill the server-owned metadata and keep the object (it is now owned by the store)."""
        meta = obj.setdefault("metadata", {})
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        if not kind.namespaced:
            meta.pop("namespace", None)
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())
        meta["resourceVersion"] = self.next_rv()
        meta["generation"] = 1
        meta["creationTimestamp"] = now_str()
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(key, None)
        if kind.resource == "namespaces":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        ordered = {"apiVersion": obj.pop("apiVersion"), "kind": obj.pop("kind"), "metadata": obj.pop("metadata")}
        ordered.update(obj)
        self.objects[(kind.resource, ordered["metadata"].get("namespace", ""), meta["name"])] = ordered
        self.by_uid[meta["uid"]] = ordered
        self.born[meta["uid"]] = time.monotonic()
        return ordered

    def remove(self, obj):
        meta = obj["metadata"]
        self.objects.pop((kind_of(obj).resource, meta.get("namespace", ""), meta["name"]), None)
        self.by_uid.pop(meta["uid"], None)
        self.born.pop(meta["uid"], None)

    # -- nodes come from the config --
    def sync_nodes(self):
        wanted = {n["name"]: n for n in self.config["nodes"]}
        for node in self.items("nodes"):
            if node["metadata"]["name"] not in wanted:
                self.remove(node)
        for name, spec in wanted.items():
            obj = node_object(spec)
            old = self.get("nodes", "", name)
            if old is None:
                self.insert(KINDS["nodes"], obj)
            elif old["status"]["allocatable"] != obj["status"]["allocatable"] or \
                    old["metadata"]["labels"] != obj["metadata"]["labels"]:
                old["metadata"]["labels"], old["status"] = obj["metadata"]["labels"], obj["status"]
                self.touch(old)

    # -- deletion (overview/working-with-objects/owners-dependents, finalizers) --
    def delete(self, kind, obj, policy=None, grace=None):
        """Start deleting obj; returns it while it lingers (grace, finalizers), None once gone."""
        meta = obj["metadata"]
        policy = policy or ("Orphan" if kind.resource == "jobs" else "Background")
        if meta.get("deletionTimestamp"):
            return obj
        if kind.resource == "pods":
            return self._delete_pod(obj, policy, grace)
        if kind.resource == "namespaces":
            meta["deletionTimestamp"] = now_str()
            obj["status"]["phase"] = "Terminating"
            self.touch(obj)
            return obj
        if policy in ("Foreground", "Orphan"):
            meta.setdefault("finalizers", []).append("foregroundDeletion" if policy == "Foreground" else "orphan")
        if meta.get("finalizers"):
            meta["deletionTimestamp"] = now_str()
            meta["deletionGracePeriodSeconds"] = 0
            self.touch(obj)
            return obj
        self.remove(obj)
        return None

    def orphan_children(self, obj):
        uid = obj["metadata"]["uid"]
        for child in self.children(uid):
            refs = [r for r in child["metadata"]["ownerReferences"] if r.get("uid") != uid]
            child["metadata"]["ownerReferences"] = refs
            if not refs:
                del child["metadata"]["ownerReferences"]
            self.touch(child)

    def _delete_pod(self, pod, policy, grace):
        meta, spec = pod["metadata"], pod["spec"]
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if not spec.get("nodeName") or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            grace = 0
        if policy == "Foreground":
            meta.setdefault("finalizers", []).append("foregroundDeletion")
        stamp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=grace)
        meta["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        meta["deletionGracePeriodSeconds"] = grace
        self.touch(pod)
        if not spec.get("nodeName") and not meta.get("finalizers"):
            self.remove(pod)
        return copy.deepcopy(pod)


def quantity_str(value):
    return str(int(value)) if float(value).is_integer() else str(value)


def node_object(spec):
    """A v1 Node built from a config entry (cluster-resources/node-v1)."""
    gpus = int(spec.get("gpus", 0))
    res = {"cpu": str(spec.get("cpu", "4")), "memory": str(spec.get("memory", "16Gi")),
           "ephemeral-storage": "100Gi", "pods": str(spec.get("pods", 110))}
    if gpus:
        res["nvidia.com/gpu"] = str(gpus)
    labels = {"kubernetes.io/hostname": spec["name"], "kubernetes.io/os": "linux",
              "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
              "beta.kubernetes.io/arch": "amd64"}
    labels.update(spec.get("labels") or {})
    stamp = now_str()
    return {
        "metadata": {"name": spec["name"], "labels": labels, "annotations": {}},
        "spec": {"podCIDR": spec.get("podCIDR", "10.244.0.0/24"), "taints": spec.get("taints") or []},
        "status": {
            "capacity": dict(res), "allocatable": dict(res),
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
            "addresses": [{"type": "InternalIP", "address": spec.get("address", "10.0.0.10")},
                          {"type": "Hostname", "address": spec["name"]}],
            "nodeInfo": {"kubeletVersion": "v1.29.0", "kubeProxyVersion": "v1.29.0",
                         "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "containerd://1.7.11", "osImage": "k8s-sim",
                         "kernelVersion": "6.1.0", "machineID": "", "systemUUID": "", "bootID": ""},
        },
    }


def set_condition(conds, ctype, status, reason=None, message=None, style="pod", progressed=False):
    """Upsert one condition; lastTransitionTime moves only when status changes.

    style: "pod" (lastProbeTime null), "job" (lastProbeTime), "deployment" (lastUpdateTime,
    which also moves when reason/message change or progressed is set)."""
    stamp = now_str()
    old = next((c for c in conds if c["type"] == ctype), None)
    same = old is not None and old["status"] == status
    unchanged = same and old.get("reason") == reason and old.get("message") == message
    new = {"type": ctype, "status": status}
    if style == "pod":
        new["lastProbeTime"] = None
    elif style == "job":
        new["lastProbeTime"] = old["lastProbeTime"] if unchanged else stamp
    else:
        new["lastUpdateTime"] = old["lastUpdateTime"] if unchanged and not progressed else stamp
    new["lastTransitionTime"] = old["lastTransitionTime"] if same else stamp
    if reason:
        new["reason"] = reason
    if message:
        new["message"] = message
    if old:
        conds[conds.index(old)] = new
    else:
        conds.append(new)
    return new


def kind_of(obj):
    """The Kind entry for a stored object."""
    return next(k for k in KINDS.values() if k.kind == obj["kind"])


def is_deleting(obj):
    return bool(obj["metadata"].get("deletionTimestamp"))
