# k8s-sim: the REST layer.  Maps Kubernetes API paths and verbs onto the store
# (reference/using-api/api-concepts: collections, list metadata, continue tokens;
# common-definitions/delete-options; workload-resources/pod-v1 "read log").
import base64
import copy
import json
import sys
import traceback

from k8s_schema import Check, prepare, unknown_fields
from k8s_store import (KINDS, SYSTEM_NAMESPACES, ApiError, already_exists, bad_request, conflict,
                       fields_match, invalid, is_deleting, labels_match, not_found,
                       parse_field_selector, parse_label_selector, rand_suffix, success_status)

SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "deletionTimestamp",
                 "deletionGracePeriodSeconds", "selfLink", "managedFields")
PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json")
POLICIES = ("Foreground", "Background", "Orphan")
VERSION = {"major": "1", "minor": "29", "gitVersion": "v1.29.0-k8s-sim", "gitCommit": "k8s-sim",
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.21.5",
           "compiler": "gc", "platform": "linux/amd64"}
VERBS = {"get": "GET", "list": "GET", "create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE"}


class Request:
    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = method, path, query, headers, body


class Response:
    def __init__(self, code, payload, headers=None):
        self.code, self.payload, self.headers = code, payload, headers or []


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def decode(body, what="object"):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not text.strip():
        raise bad_request(f"Object 'Kind' is missing in '{text}'")
    try:
        obj = json.loads(text)
    except ValueError as err:
        raise bad_request(f"couldn't get version/kind; json parse error: {err}")
    if not isinstance(obj, dict):
        raise bad_request(f"couldn't get version/kind; json parse error: json: cannot unmarshal "
                          f"{type(obj).__name__} into Go value of type struct")
    return obj


def int_param(query, key):
    if key not in query:
        return None
    try:
        return int(query[key])
    except ValueError:
        raise bad_request(f'invalid {key} parameter: "{query[key]}" is not an integer')


def parse_path(path):
    """-> (group, namespace, rest) for /api/v1/... and /apis/G/v1/..., else None."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, rest = "", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis" and parts[2] == "v1":
        group, rest = parts[1], parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        ns, rest = rest[1], rest[2:]
    return group, ns, rest


class Api:
    def __init__(self, store, kubelet, host):
        self.store, self.kubelet, self.host = store, kubelet, host

    def route_label(self, method, path):
        parsed = parse_path(path)
        if parsed and parsed[2] and parsed[2][0] in KINDS:
            rest = parsed[2]
            return f"{method} {rest[0]}" + (f"/{rest[2]}" if len(rest) > 2 else "")
        return f"{method} {path}"

    def handle(self, req):
        try:
            with self.store.lock:
                code, payload, headers = self._dispatch(req)
                if isinstance(payload, dict):
                    payload = json.loads(json.dumps(payload))
            return Response(code, payload, headers)
        except ApiError as err:
            return Response(err.code, err.body(), list(err.headers.items()))
        except Exception as err:
            traceback.print_exc(file=sys.stderr)
            return Response(500, ApiError(500, "InternalError", f"Internal error occurred: {err!r}").body())

    def _dispatch(self, req):
        discovery = self.discovery(req.path)
        if discovery is not None:
            if req.method != "GET":
                raise method_not_allowed()
            return 200, discovery, []
        parsed = parse_path(req.path)
        if parsed is None or not parsed[2] or len(parsed[2]) > 3:
            raise path_not_found()
        group, ns, rest = parsed
        kind = KINDS.get(rest[0])
        if kind is None or kind.group != group or (ns is not None and not kind.namespaced):
            raise path_not_found()
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return self.verb(req, kind, ns, name, sub)

    def verb(self, req, kind, ns, name, sub):
        m = req.method
        if sub:
            return self.subresource(req, kind, ns, name, sub)
        if name is None:
            if m == "GET":
                return 200, self.list(kind, ns, req.query), []
            if m == "POST" and "create" in kind.verbs and (ns is not None or not kind.namespaced):
                return self.create(req, kind, ns)
            if m == "DELETE" and "delete" in kind.verbs and (ns is not None or not kind.namespaced):
                return 200, self.delete_collection(req, kind, ns), []
            raise method_not_allowed()
        allowed = {VERBS[v] for v in kind.verbs if v != "list" and v != "create"}
        if m not in allowed or (kind.namespaced and ns is None):
            raise method_not_allowed()
        if m == "GET":
            return 200, self.must_get(kind, ns, name), []
        if m == "DELETE":
            return self.delete(req, kind, ns, name)
        return self.update(req, kind, ns, name)

    # ---- discovery (reference/using-api/api-concepts, "discovery") ----
    def discovery(self, path):
        path = path.rstrip("/") or "/"
        if path == "/version":
            return VERSION
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs":
                    [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.host}]}
        groups = sorted({k.group for k in KINDS.values() if k.group})
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self.group(g) for g in groups]}
        if path in (f"/apis/{g}" for g in groups):
            return dict(self.group(path.split("/")[2]), kind="APIGroup", apiVersion="v1")
        for group in [""] + groups:
            if path == ("/api/v1" if not group else f"/apis/{group}/v1"):
                return self.resource_list(group)
        return None

    @staticmethod
    def group(name):
        version = {"groupVersion": f"{name}/v1", "version": "v1"}
        return {"name": name, "versions": [version], "preferredVersion": version}

    @staticmethod
    def resource_list(group):
        resources = []
        for k in KINDS.values():
            if k.group == group:
                verbs = list(k.verbs) + (["deletecollection"] if "delete" in k.verbs else [])
                resources.append({"name": k.resource, "singularName": k.kind.lower(),
                                  "namespaced": k.namespaced, "kind": k.kind, "verbs": verbs})
                if k.resource == "pods":
                    resources.append({"name": "pods/log", "singularName": "", "namespaced": True,
                                      "kind": "Pod", "verbs": ["get"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/v1" if group else "v1", "resources": resources}

    # ---- reads ----
    def must_get(self, kind, ns, name):
        obj = self.store.get(kind.resource, ns, name)
        if obj is None:
            raise not_found(kind, name)
        return obj

    def select(self, kind, ns, query):
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""), kind.resource)
        return [o for o in self.store.items(kind.resource, ns)
                if labels_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)]

    def list(self, kind, ns, query):
        if query.get("watch") in ("true", "1"):
            raise bad_request("k8s-sim does not implement watch; poll with list instead")
        items = self.select(kind, ns, query)
        meta = {"resourceVersion": str(self.store.rv)}
        start = 0
        if query.get("continue"):
            try:
                start = int(base64.b64decode(query["continue"]).decode())
            except ValueError:
                raise bad_request("continue key is not valid: illegal base64 data")
        limit = int_param(query, "limit")
        end = start + limit if limit and limit > 0 else len(items)
        if end < len(items):
            meta["continue"] = base64.b64encode(str(end).encode()).decode()
            meta["remainingItemCount"] = len(items) - end
        page = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")} for o in items[start:end]]
        return {"kind": kind.kind + "List", "apiVersion": kind.api_version, "metadata": meta, "items": page}

    # ---- writes ----
    def checked_body(self, req, kind):
        obj = decode(req.body)
        version, k = obj.get("apiVersion"), obj.get("kind")
        if not k:
            raise bad_request(f"Object 'Kind' is missing in '{json.dumps(obj)[:200]}'")
        if version != kind.api_version:
            raise bad_request(f"the API version in the data ({version}) does not match the expected "
                              f"API version ({kind.api_version})")
        if k != kind.kind:
            raise bad_request(f"the kind in the data ({k}) does not match the expected kind ({kind.kind})")
        if not isinstance(obj.get("metadata", {}), dict):
            raise bad_request(f'{k} in version "v1" cannot be handled as a {k}: json: cannot unmarshal '
                              f'into Go struct field {k}.metadata of type v1.ObjectMeta')
        return obj

    def warnings(self, req, kind, obj):
        unknown = unknown_fields(kind.resource, obj)
        mode = req.query.get("fieldValidation") or self.store.config["field_validation"]
        if not unknown or mode == "Ignore":
            return []
        texts = [f'unknown field "{u}"' for u in unknown]
        if mode == "Strict":
            raise bad_request("strict decoding error: " + ", ".join(texts))
        return [("Warning", "299 - " + json.dumps(t)) for t in texts]

    def create(self, req, kind, ns):
        obj = self.checked_body(req, kind)
        headers = self.warnings(req, kind, obj)
        meta = obj.setdefault("metadata", {})
        for key in SERVER_FIELDS:
            meta.pop(key, None)
        obj.pop("status", None)
        if kind.namespaced:
            if meta.get("namespace", ns) != ns:
                raise bad_request("the namespace of the provided object does not match the namespace "
                                  "sent on the request")
            meta["namespace"] = ns
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + rand_suffix()
        if kind.namespaced:
            self.check_namespace(kind, ns, meta.get("name", ""))
        prepare(kind, obj, self.store)
        if self.store.get(kind.resource, ns, meta["name"]):
            raise already_exists(kind, meta["name"])
        return 201, self.store.insert(kind, obj), headers

    def check_namespace(self, kind, ns, name):
        ns_obj = self.store.get("namespaces", "", ns)
        if ns_obj is None:
            raise not_found(KINDS["namespaces"], ns)
        if is_deleting(ns_obj):
            details = kind.details(name)
            details["causes"] = [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                  "message": f"namespace {ns} is being terminated"}]
            raise ApiError(403, "Forbidden", f'{kind.qualified} "{name}" is forbidden: unable to create '
                           f'new content in namespace {ns} because it is being terminated', details)

    def update(self, req, kind, ns, name):
        old = self.must_get(kind, ns, name)
        if req.method == "PATCH":
            ctype = req.headers.get("Content-Type", "").split(";")[0].strip()
            if ctype not in PATCH_TYPES:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                               f"format - accepted media types include: {', '.join(PATCH_TYPES)}")
            new = merge_patch(old, decode(req.body))
        else:
            new = self.checked_body(req, kind)
            if new.get("metadata", {}).get("name") != name:
                raise bad_request(f"the name of the object ({new.get('metadata', {}).get('name')}) does "
                                  f"not match the name on the URL ({name})")
        headers = self.warnings(req, kind, new)
        return 200, self.apply_update(kind, old, new), headers

    def apply_update(self, kind, old, new):
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        if meta.get("resourceVersion") and meta["resourceVersion"] != old_meta["resourceVersion"]:
            raise conflict(kind, old_meta["name"], "the object has been modified; please apply your "
                           "changes to the latest version and try again")
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        for key in SERVER_FIELDS + ("name", "namespace"):
            if key in old_meta:
                meta[key] = old_meta[key]
        if "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        prepare(kind, new, self.store, old=old)
        if new.get("spec") != old.get("spec"):
            meta["generation"] = old_meta.get("generation", 1) + 1
        old.clear()
        old.update(new)
        self.store.touch(old)
        if is_deleting(old) and not meta.get("finalizers") and kind.resource not in ("pods", "namespaces"):
            self.store.remove(old)
        return old

    def delete(self, req, kind, ns, name):
        obj = self.must_get(kind, ns, name)
        opts = decode(req.body) if req.body and req.body.strip() else {}
        policy = req.query.get("propagationPolicy") or opts.get("propagationPolicy")
        orphan = req.query.get("orphanDependents", opts.get("orphanDependents"))
        if orphan is not None and policy is None:
            policy = "Orphan" if str(orphan).lower() == "true" else "Background"
        if policy is not None and policy not in POLICIES:
            chk = Check(kind, "")
            chk.unsupported("propagationPolicy", policy, POLICIES)
            raise ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: '
                           f'{chk.causes[0]["field"]}: {chk.causes[0]["message"]}',
                           {"kind": "DeleteOptions", "group": "meta.k8s.io", "causes": chk.causes})
        grace = int_param(req.query, "gracePeriodSeconds")
        grace = opts.get("gracePeriodSeconds") if grace is None else grace
        self.check_preconditions(kind, obj, opts.get("preconditions") or {})
        if kind.resource == "namespaces" and name in SYSTEM_NAMESPACES[:3]:
            raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not '
                           f'be deleted', kind.details(name))
        gone = copy.deepcopy(obj)
        still = self.store.delete(kind, obj, policy, grace)
        if still is not None:
            code = 202 if str(orphan).lower() == "false" and not is_deleting(gone) else 200
            return code, still, []
        return 200, gone if kind.resource == "pods" else success_status(kind, gone), []

    @staticmethod
    def check_preconditions(kind, obj, pre):
        meta = obj["metadata"]
        for key, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            if pre.get(key) and pre[key] != meta[key]:
                raise conflict(kind, meta["name"], f"Precondition failed: {label} in precondition: "
                               f"{pre[key]}, {label} in object meta: {meta[key]}")

    def delete_collection(self, req, kind, ns):
        deleted = []
        for obj in self.select(kind, ns, req.query):
            policy = req.query.get("propagationPolicy")
            snapshot = copy.deepcopy(obj)
            still = self.store.delete(kind, obj, policy, int_param(req.query, "gracePeriodSeconds"))
            deleted.append(still if still is not None else snapshot)
        return {"kind": kind.kind + "List", "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)}, "items": deleted}

    # ---- subresources: status, scale, log ----
    def subresource(self, req, kind, ns, name, sub):
        obj = self.must_get(kind, ns, name)
        if sub == "status" and req.method == "GET":
            return 200, obj, []
        if sub == "scale" and kind.resource in ("deployments", "replicasets"):
            if req.method in ("PUT", "PATCH"):
                scale = decode(req.body)
                replicas = (scale.get("spec") or {}).get("replicas")
                if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                    raise invalid(kind, name, [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                                "message": f"Invalid value: {json.dumps(replicas)}: "
                                                           f"must be greater than or equal to 0"}])
                self.apply_update(kind, obj, merge_patch(obj, {"spec": {"replicas": replicas}}))
            elif req.method != "GET":
                raise method_not_allowed()
            return 200, self.scale(obj), []
        if sub == "log" and kind.resource == "pods" and req.method == "GET":
            return 200, self.log(obj, req.query), [("Content-Type", "text/plain")]
        raise path_not_found()

    def scale(self, obj):
        meta = obj["metadata"]
        selector = obj["spec"].get("selector", {}).get("matchLabels", {})
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp")},
                "spec": {"replicas": obj["spec"].get("replicas", 0)},
                "status": {"replicas": obj.get("status", {}).get("replicas", 0),
                           "selector": ",".join(f"{k}={v}" for k, v in selector.items())}}

    def log(self, pod, query):
        pod_name = pod["metadata"]["name"]
        names = [c["name"] for c in pod["spec"]["containers"]]
        name = query.get("container") or (names[0] if len(names) == 1 else None)
        if name is None:
            raise bad_request(f"a container name must be specified for pod {pod_name}, "
                              f"choose one of: [{' '.join(names)}]")
        if name not in names:
            raise bad_request(f"container {name} is not valid for pod {pod_name}")
        text = self.kubelet.log_text(pod, name, query.get("previous") in ("true", "1"))
        tail = int_param(query, "tailLines")
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-tail:]) if tail > 0 else ""
        limit = int_param(query, "limitBytes")
        if limit is not None and limit > 0:
            text = text.encode()[:limit].decode("utf-8", "ignore")
        return text


def method_not_allowed():
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def path_not_found():
    return ApiError(404, "NotFound", "the server could not find the requested resource")
