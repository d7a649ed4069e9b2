# k8s-sim: the control-plane loops run by the ticker: garbage collector,
# namespace lifecycle, Job, Deployment and ReplicaSet controllers, scheduler and
# service load balancers.  Status fields follow workload-resources/job-v1,
# deployment-v1, replica-set-v1 and concepts/workloads/controllers/{job,deployment}.
import collections
import copy
import hashlib
import ipaddress
import json
import sys
import traceback

from k8s_schema import parse_quantity, prepare
from k8s_store import (ApiError, KINDS, expr_matches, is_deleting, kind_of, now_str, rand_suffix,
                       set_condition)

TERMINAL = ("Succeeded", "Failed")
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
JOB_INDEX = "batch.kubernetes.io/job-completion-index"
NO_SELECTOR_MATCH = "node(s) didn't match Pod's node affinity/selector"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
ROOT_CA = "-----BEGIN CERTIFICATE-----\nazhzLXNpbQ==\n-----END CERTIFICATE-----\n"


def owner_ref(obj):
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def template_hash(template):
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(HASH_ALPHABET[b % len(HASH_ALPHABET)] for b in digest[:10])


def phase(pod):
    return (pod.get("status") or {}).get("phase", "Pending")


def is_ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def index_ranges(indexes):
    """{0,1,2,5} -> '0-2,5' (JobStatus.completedIndexes)."""
    out, run = [], []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def pod_requests(pod):
    """Sum of container requests (limits where a request is absent)."""
    total = collections.defaultdict(float)
    for c in pod["spec"].get("containers", []):
        res = c.get("resources") or {}
        wanted = dict(res.get("limits") or {})
        wanted.update(res.get("requests") or {})
        for name, value in wanted.items():
            total[name] += parse_quantity(value)
    return total


def tolerates(tolerations, taint):
    for tol in tolerations or []:
        key_ok = tol.get("key") == taint.get("key") or (not tol.get("key") and tol.get("operator") == "Exists")
        value_ok = tol.get("operator") == "Exists" or tol.get("value", "") == taint.get("value", "")
        if key_ok and value_ok and tol.get("effect", "") in ("", taint.get("effect")):
            return True
    return False


def node_matches(pod, labels):
    spec = pod["spec"]
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    return any(all(expr_matches(labels, e.get("key"), e.get("operator"), e.get("values") or [])
                   for e in t.get("matchExpressions") or []) for t in terms)


class Controllers:
    def __init__(self, store):
        self.store = store
        self.jobs = {}        # job uid -> bookkeeping that survives pod deletion
        self.progress = {}    # deployment uid -> rollout progress

    @property
    def cfg(self):
        return self.store.config

    def reset(self):
        self.jobs.clear()
        self.progress.clear()

    def tick(self, now):
        steps = [self.collect_garbage, self.sync_namespaces, self.sync_jobs, self.sync_deployments,
                 self.sync_replicasets, self.schedule, self.load_balancers]
        for step in steps:
            try:
                step(now)
            except Exception:
                traceback.print_exc(file=sys.stderr)

    def delete(self, obj, policy="Background"):
        self.store.delete(kind_of(obj), obj, policy)

    def create_pod(self, owner, template, name, labels=None, annotations=None, hostname=None):
        meta = owner["metadata"]
        while self.store.get("pods", meta["namespace"], name):
            name = name[:-5] + rand_suffix()
        pod = {"metadata": {"name": name, "generateName": name[:-5], "namespace": meta["namespace"],
                            "labels": dict(template["metadata"].get("labels") or {}, **(labels or {})),
                            "annotations": dict(template["metadata"].get("annotations") or {},
                                                **(annotations or {})),
                            "ownerReferences": [owner_ref(owner)]},
               "spec": copy.deepcopy(template["spec"])}
        if hostname:
            pod["spec"]["hostname"] = hostname
        try:
            prepare(KINDS["pods"], pod, self.store)
        except ApiError as err:
            print(f"k8s-sim: cannot create pod {name}: {err.message}", file=sys.stderr)
            return None
        return self.store.insert(KINDS["pods"], pod)

    # ---- garbage collection and namespaces ----
    def collect_garbage(self, now):
        for obj in list(self.store.objects.values()):
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if refs and not is_deleting(obj):
                owners = [self.store.by_uid.get(r.get("uid")) for r in refs]
                if all(o is None for o in owners):
                    self.delete(obj, "Background")
                elif any(o and "foregroundDeletion" in (o["metadata"].get("finalizers") or []) for o in owners):
                    self.delete(obj, "Foreground")
            finalizers = meta.get("finalizers") or []
            if "orphan" in finalizers and is_deleting(obj):
                self.store.orphan_children(obj)
                finalizers.remove("orphan")
                self.store.touch(obj)
            if "foregroundDeletion" in finalizers and not self.store.children(meta["uid"]):
                finalizers.remove("foregroundDeletion")
                self.store.touch(obj)
            if not finalizers:
                meta.pop("finalizers", None)
            if is_deleting(obj) and not finalizers and (obj["kind"] != "Pod" or not obj["spec"].get("nodeName")):
                if obj["kind"] != "Namespace":
                    self.store.remove(obj)

    def sync_namespaces(self, now):
        for ns in self.store.items("namespaces"):
            name = ns["metadata"]["name"]
            contents = self.store.namespaced_objects(name)
            if not is_deleting(ns):
                if not self.store.get("configmaps", name, "kube-root-ca.crt"):
                    self.store.insert(KINDS["configmaps"], {"metadata": {
                        "name": "kube-root-ca.crt", "namespace": name,
                        "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be "
                                        "used to verify the kube-apiserver when using internal endpoints."}},
                        "data": {"ca.crt": getattr(self.store, "root_ca", ROOT_CA)}})
                continue
            for obj in contents:
                if not is_deleting(obj):
                    self.delete(obj, "Background")
            if not contents:
                self.store.remove(ns)

    # ---- Job controller ----
    def sync_jobs(self, now):
        for job in self.store.items("jobs"):
            if not is_deleting(job):
                self.sync_job(job, now)

    def sync_job(self, job, now):
        meta, spec = job["metadata"], job["spec"]
        book = self.jobs.setdefault(meta["uid"], {"succ": set(), "fail": set(), "indexes": set(),
                                                  "started": None, "done": None})
        status = copy.deepcopy(job.get("status") or {})
        conds = status.setdefault("conditions", [])
        if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in conds):
            self.expire_job(job, book, now)
            return
        if spec.get("suspend"):
            return
        if book["started"] is None:
            book["started"] = now
            status.setdefault("startTime", now_str())
        pods = [p for p in self.store.children(meta["uid"]) if p["kind"] == "Pod"]
        for pod in pods:
            if phase(pod) == "Succeeded":
                book["succ"].add(pod["metadata"]["uid"])
                if JOB_INDEX in pod["metadata"].get("annotations", {}):
                    book["indexes"].add(int(pod["metadata"]["annotations"][JOB_INDEX]))
            elif phase(pod) == "Failed":
                book["fail"].add(pod["metadata"]["uid"])
        active = [p for p in pods if phase(p) not in TERMINAL and not is_deleting(p)]
        failure = self.job_failure(job, book, active, now)
        if failure:
            for pod in active:
                book["fail"].add(pod["metadata"]["uid"])
                self.delete(pod)
            active = []
            set_condition(conds, "FailureTarget", "True", failure[0], failure[1], style="job")
            set_condition(conds, "Failed", "True", failure[0], failure[1], style="job")
            book["done"] = now
        elif self.job_complete(spec, book, active):
            message = "Reached expected number of succeeded pods"
            set_condition(conds, "SuccessCriteriaMet", "True", "CompletionsReached", message, style="job")
            set_condition(conds, "Complete", "True", "CompletionsReached", message, style="job")
            status["completionTime"] = now_str()
            book["done"] = now
        else:
            active += self.start_job_pods(job, book, active)
        self.store.set_status(job, self.job_status(spec, status, book, active))

    @staticmethod
    def job_status(spec, status, book, active):
        out = {}
        for key in ("conditions", "startTime", "completionTime"):
            if status.get(key):
                out[key] = status[key]
        for key, value in (("active", len(active)), ("succeeded", len(book["succ"])),
                           ("failed", len(book["fail"]))):
            if value:
                out[key] = value
        if spec.get("completionMode") == "Indexed" and book["indexes"]:
            out["completedIndexes"] = index_ranges(book["indexes"])
        out["uncountedTerminatedPods"] = {}
        out["ready"] = sum(1 for p in active if is_ready(p))
        return out

    @staticmethod
    def job_failure(job, book, active, now):
        spec = job["spec"]
        deadline = spec.get("activeDeadlineSeconds")
        if deadline and now - book["started"] >= deadline:
            return "DeadlineExceeded", "Job was active longer than specified deadline"
        limit = spec.get("backoffLimit", 6)
        if len(book["fail"]) > limit:
            return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        if spec["template"]["spec"].get("restartPolicy") == "OnFailure":
            restarts = sum(cs.get("restartCount", 0) for p in active
                           for cs in (p.get("status") or {}).get("containerStatuses") or [])
            if (restarts > 0) if limit == 0 else (restarts >= limit):
                return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        return None

    @staticmethod
    def job_complete(spec, book, active):
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed":
            return len(book["indexes"]) >= completions
        if completions is None:
            return bool(book["succ"]) and not active
        return len(book["succ"]) >= completions

    def start_job_pods(self, job, book, active):
        spec, name = job["spec"], job["metadata"]["name"]
        parallelism, completions = spec.get("parallelism", 1), spec.get("completions")
        if spec.get("completionMode") == "Indexed":
            busy = {int(p["metadata"]["annotations"][JOB_INDEX]) for p in active}
            todo = [i for i in range(completions) if i not in book["indexes"] and i not in busy]
            todo = todo[:max(parallelism - len(active), 0)]
            return [p for p in (self.job_pod(job, i) for i in todo) if p]
        if completions is None:
            want = 0 if book["succ"] else parallelism
        else:
            want = min(parallelism, completions - len(book["succ"]))
        return [p for p in (self.job_pod(job, None) for _ in range(want - len(active))) if p]

    def job_pod(self, job, index):
        name = job["metadata"]["name"]
        tmpl = job["spec"]["template"]
        if index is None:
            return self.create_pod(job, tmpl, f"{name}-{rand_suffix()}")
        tmpl = copy.deepcopy(tmpl)
        for c in tmpl["spec"]["containers"]:
            c.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                "apiVersion": "v1", "fieldPath": f"metadata.annotations['{JOB_INDEX}']"}}})
        return self.create_pod(job, tmpl, f"{name}-{index}-{rand_suffix()}", {JOB_INDEX: str(index)},
                               {JOB_INDEX: str(index)}, hostname=f"{name}-{index}")

    def expire_job(self, job, book, now):
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is not None and book["done"] is not None and now - book["done"] >= ttl:
            self.delete(job, "Background")

    # ---- Deployment and ReplicaSet controllers ----
    def sync_deployments(self, now):
        for d in self.store.items("deployments"):
            if not is_deleting(d):
                self.sync_deployment(d, now)

    def sync_deployment(self, d, now):
        spec, meta = d["spec"], d["metadata"]
        h = template_hash(spec["template"])
        rses = [o for o in self.store.children(meta["uid"]) if o["kind"] == "ReplicaSet"]
        new = next((rs for rs in rses if rs["metadata"]["labels"].get("pod-template-hash") == h), None)
        created = False
        if new is None and not spec.get("paused"):
            revision = 1 + max((int(rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision", 0))
                                for rs in rses), default=0)
            new, created = self.create_replicaset(d, h, revision), True
            rses.append(new)
        for rs in rses:
            want = spec["replicas"] if rs is new else 0
            if rs["spec"]["replicas"] != want:
                rs["spec"]["replicas"] = want
                rs["metadata"]["generation"] += 1
                rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] = str(spec["replicas"])
                self.store.touch(rs)
        if new is not None:
            revision = new["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            if meta.setdefault("annotations", {}).get("deployment.kubernetes.io/revision") != revision:
                meta["annotations"]["deployment.kubernetes.io/revision"] = revision
                self.store.touch(d)
        self.store.set_status(d, self.deployment_status(d, h, new, rses, created, now))

    def create_replicaset(self, d, h, revision):
        spec, meta = d["spec"], d["metadata"]
        tmpl = copy.deepcopy(spec["template"])
        tmpl["metadata"].setdefault("labels", {})["pod-template-hash"] = h
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = h
        rs = {"metadata": {"name": f"{meta['name']}-{h}", "namespace": meta["namespace"],
                           "labels": dict(tmpl["metadata"]["labels"]),
                           "annotations": {"deployment.kubernetes.io/desired-replicas": str(spec["replicas"]),
                                           "deployment.kubernetes.io/max-replicas": str(spec["replicas"] + 1),
                                           "deployment.kubernetes.io/revision": str(revision)},
                           "ownerReferences": [owner_ref(d)]},
              "spec": {"replicas": spec["replicas"], "minReadySeconds": spec.get("minReadySeconds", 0),
                       "selector": selector, "template": tmpl},
              "status": {"replicas": 0}}
        return self.store.insert(KINDS["replicasets"], rs)

    def deployment_status(self, d, h, new, rses, created, now):
        spec, meta = d["spec"], d["metadata"]
        want = spec["replicas"]
        sums = collections.Counter()
        for rs in rses:
            for key in ("replicas", "readyReplicas", "availableReplicas"):
                sums[key] += (rs.get("status") or {}).get(key, 0)
        updated = (new.get("status") or {}).get("replicas", 0) if new else 0
        available = sums["availableReplicas"]
        status = {"observedGeneration": meta["generation"], "replicas": sums["replicas"],
                  "updatedReplicas": updated, "readyReplicas": sums["readyReplicas"],
                  "availableReplicas": available, "unavailableReplicas": max(want - available, 0)}
        status = {k: v for k, v in status.items() if v}
        conds = copy.deepcopy((d.get("status") or {}).get("conditions") or [])
        if available >= want - self.max_unavailable(spec):
            set_condition(conds, "Available", "True", "MinimumReplicasAvailable",
                          "Deployment has minimum availability.", style="deployment")
        else:
            set_condition(conds, "Available", "False", "MinimumReplicasUnavailable",
                          "Deployment does not have minimum availability.", style="deployment")
        self.progressing(conds, d, h, new, created, (updated, sums["readyReplicas"], available, want),
                         updated == want == sums["replicas"] and available == want, now)
        status["conditions"] = conds
        return status

    def progressing(self, conds, d, h, new, created, key, complete, now):
        prog = self.progress.get(d["metadata"]["uid"])
        if prog is None or prog["hash"] != h:
            prog = self.progress[d["metadata"]["uid"]] = {"hash": h, "key": None, "at": now, "complete": False}
        moved = key != prog["key"]
        if moved:
            prog["key"], prog["at"] = key, now
        prog["complete"] = prog["complete"] or complete
        rs_name = new["metadata"]["name"] if new else d["metadata"]["name"]
        if prog["complete"]:
            args = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
        elif now - prog["at"] > d["spec"].get("progressDeadlineSeconds", 600):
            args = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
        elif created:
            args = ("True", "NewReplicaSetCreated", f'Created new replica set "{rs_name}"')
        else:
            args = ("True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        set_condition(conds, "Progressing", *args, style="deployment", progressed=moved and not complete)

    @staticmethod
    def max_unavailable(spec):
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return 0
        value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", "25%")
        if isinstance(value, str) and value.endswith("%"):
            return int(spec["replicas"] * int(value[:-1]) / 100)
        return int(value)

    def sync_replicasets(self, now):
        for rs in self.store.items("replicasets"):
            if not is_deleting(rs):
                self.sync_replicaset(rs)

    def sync_replicaset(self, rs):
        meta = rs["metadata"]
        pods = [p for p in self.store.children(meta["uid"]) if p["kind"] == "Pod" and not is_deleting(p)]
        for pod in [p for p in pods if phase(p) in TERMINAL]:
            self.delete(pod)
        live = [p for p in pods if phase(p) not in TERMINAL]
        want = rs["spec"].get("replicas", 1)
        for _ in range(want - len(live)):
            pod = self.create_pod(rs, rs["spec"]["template"], f"{meta['name']}-{rand_suffix()}")
            if pod:
                live.append(pod)
        if len(live) > want:
            live.sort(key=lambda p: (bool(p["spec"].get("nodeName")), is_ready(p), -self.store.age(p)))
            for pod in live[:len(live) - want]:
                self.delete(pod)
            live = live[len(live) - want:]
        ready = sum(1 for p in live if is_ready(p))
        status = {"replicas": len(live), "fullyLabeledReplicas": len(live), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": meta["generation"]}
        self.store.set_status(rs, {k: v for k, v in status.items() if v or k == "replicas"})

    # ---- scheduler ----
    def schedule(self, now):
        nodes = self.store.items("nodes")
        used = {n["metadata"]["name"]: collections.defaultdict(float) for n in nodes}
        pods = self.store.items("pods")
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if node in used and phase(pod) not in TERMINAL:
                for name, value in pod_requests(pod).items():
                    used[node][name] += value
                used[node]["pods"] += 1
        pending = [p for p in pods if not p["spec"].get("nodeName") and not is_deleting(p)
                   and self.store.age(p) * 1000 >= self.cfg["schedule_ms"]]
        for pod in sorted(pending, key=lambda p: int(p["metadata"]["resourceVersion"])):
            self.place(pod, nodes, used)

    def place(self, pod, nodes, used):
        want = pod_requests(pod)
        want["pods"] = 1
        reasons, preempt, fits = collections.Counter(), collections.Counter(), []
        for node in nodes:
            name, labels = node["metadata"]["name"], node["metadata"].get("labels") or {}
            taint = next((t for t in node["spec"].get("taints") or [] if t.get("effect") in
                          ("NoSchedule", "NoExecute") and not tolerates(pod["spec"].get("tolerations"), t)), None)
            if not node_matches(pod, labels) or taint:
                why = NO_SELECTOR_MATCH if taint is None else \
                    f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
                reasons[why] += 1
                preempt[NOT_HELPFUL] += 1
                continue
            alloc = {k: parse_quantity(v) for k, v in node["status"]["allocatable"].items()}
            short = [r for r, q in want.items() if q > 0 and used[name][r] + q > alloc.get(r, 0) + 1e-9]
            if short:
                for r in short:
                    reasons["Too many pods" if r == "pods" else f"Insufficient {r}"] += 1
                preempt[NO_VICTIMS] += 1
                continue
            free = sum((alloc.get(r, 0) - used[name][r] - want.get(r, 0)) / alloc[r]
                       for r in ("cpu", "memory") if alloc.get(r))
            fits.append((free, name))
        if fits:
            self.bind(pod, max(fits)[1], want, used)
        else:
            self.unschedulable(pod, len(nodes), reasons, preempt)

    def bind(self, pod, node, want, used):
        for name, value in want.items():
            used[node][name] += value
        pod["spec"]["nodeName"] = node
        status = copy.deepcopy(pod.get("status") or {})
        conds = status.setdefault("conditions", [])
        set_condition(conds, "PodScheduled", "True")
        pod["status"] = status
        self.store.touch(pod)

    def unschedulable(self, pod, count, reasons, preempt):
        """The FailedScheduling text of kube-scheduler (framework FitError.Error: sorted reason
        histogram, then the preemption PostFilter message)."""
        hist = lambda c: ", ".join(sorted(f"{v} {k}" for k, v in c.items()))
        message = f"0/{count} nodes are available: {hist(reasons)}." if reasons else \
            f"0/{count} nodes are available."
        if preempt:
            message += f" preemption: 0/{count} nodes are available: {hist(preempt)}."
        status = copy.deepcopy(pod.get("status") or {})
        conds = status.setdefault("conditions", [])
        set_condition(conds, "PodScheduled", "False", "Unschedulable", message)
        self.store.set_status(pod, status)

    # ---- services of type LoadBalancer ----
    def load_balancers(self, now):
        services = self.store.items("services")
        taken = {i.get("ip") for s in services for i in s["status"].get("loadBalancer", {}).get("ingress", [])}
        pool = ipaddress.ip_network(self.cfg["lb_cidr"])
        for svc in services:
            lb = svc["status"].setdefault("loadBalancer", {})
            if svc["spec"].get("type") != "LoadBalancer" or lb.get("ingress"):
                continue
            if self.store.age(svc) * 1000 < self.cfg["lb_ms"]:
                continue
            ip = next((str(a) for a in pool.hosts() if str(a) not in taken), None)
            if ip:
                taken.add(ip)
                self.store.set_status(svc, {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}})

