# k8s-sim: the kubelet.  Runs the containers of pods bound to a node, either as
# timers ("simulate") or as real local processes ("exec"), and writes the pod
# status: phase, conditions, containerStatuses (workload-resources/pod-v1,
# PodStatus and ContainerStatus; concepts/workloads/pods/pod-lifecycle).
import base64
import fnmatch
import hashlib
import http.client
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid

from k8s_store import bad_request, now_str, set_condition

POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
COND_ORDER = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


def matches(image, patterns):
    return any(image == p or fnmatch.fnmatchcase(image, p) for p in patterns or [])


def normalized_image(image):
    """nginx -> docker.io/library/nginx:latest, as containerd reports it."""
    name = image
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif "." not in first and ":" not in first and first != "localhost":
        name = "docker.io/" + name
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def image_id(image):
    repo = normalized_image(image).split("@")[0].rsplit(":", 1)[0]
    return repo + "@sha256:" + hashlib.sha256(image.encode()).hexdigest()


def expand(text, env):
    """$(VAR) references in command, args and env values; $$ escapes a dollar."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), text)


class EnvError(Exception):
    pass


class Probe:
    """Readiness probe state; each check runs in its own thread, off the lock."""

    def __init__(self, spec, scale, now):
        self.spec, self.busy, self.ok = spec, False, False
        self.period = max(0.2, spec.get("periodSeconds", 10) * scale)
        self.next_at = now + spec.get("initialDelaySeconds", 0) * scale
        self.fails = self.successes = 0


class Container:
    def __init__(self, spec, now, pull_s):
        self.spec, self.name, self.image = spec, spec["name"], spec.get("image", "")
        self.state, self.reason, self.message = "waiting", "ContainerCreating", None
        self.next_at, self.attempts, self.runs, self.restarts = now + pull_s, 0, 0, 0
        self.started_at = self.term = self.last = self.proc = self.end_at = self.probe = None
        self.exit_code, self.ready, self.cid, self.env = 0, False, "", {}
        self.lines, self.prev_lines = [], None
        self.kill_at = None


class PodRuntime:
    def __init__(self, pod, now, cfg, ip, host_ip, sandbox):
        self.start_time, self.ip, self.host_ip, self.sandbox = now_str(), ip, host_ip, sandbox
        pull_s = cfg["pull_ms"] / 1000
        self.containers = [Container(c, now, pull_s) for c in pod["spec"]["containers"]]
        self.phase, self.final = "Pending", False


class Kubelet:
    def __init__(self, store, state_dir):
        self.store, self.dir = store, state_dir
        self.pods = {}
        self.api_port = 0
        self.next_ip = 2

    @property
    def cfg(self):
        return self.store.config

    # ---- the loop ----
    def tick(self, now):
        seen = set()
        for pod in self.store.items("pods"):
            if not pod["spec"].get("nodeName"):
                continue
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            rt = self.pods.get(uid) or self._admit(pod, now)
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(pod, rt, now)
            elif not rt.final:
                self._advance(pod, rt, now)
            if self.store.by_uid.get(uid) is pod:
                self.store.set_status(pod, self._status(pod, rt))
        for uid in set(self.pods) - seen:
            self._forget(uid)

    def _admit(self, pod, now):
        meta = pod["metadata"]
        node = self.store.get("nodes", "", pod["spec"]["nodeName"])
        host_ip = next((a["address"] for a in (node or {}).get("status", {}).get("addresses", [])
                        if a["type"] == "InternalIP"), "10.0.0.10")
        sandbox = os.path.join(self.dir, "pods", meta["namespace"], meta["name"])
        if self.cfg["mode"] == "exec":
            shutil.rmtree(sandbox, ignore_errors=True)
            os.makedirs(sandbox, exist_ok=True)
            ip = self.cfg["exec_pod_ip"]
        else:
            ip = str(POD_CIDR[self.next_ip % (POD_CIDR.num_addresses - 2) + 1])
            self.next_ip += 1
        rt = self.pods[meta["uid"]] = PodRuntime(pod, now, self.cfg, ip, host_ip, sandbox)
        return rt

    def _advance(self, pod, rt, now):
        for c in rt.containers:
            if c.state == "waiting" and now >= c.next_at:
                self._try_start(pod, rt, c, now)
            elif c.state == "running":
                self._check_running(pod, rt, c, now)
        rt.phase = self._phase(rt)
        rt.final = rt.phase in ("Succeeded", "Failed")

    @staticmethod
    def _phase(rt):
        cs = rt.containers
        if any(c.state == "waiting" and not c.runs for c in cs):
            return "Pending"
        if any(c.state in ("running", "waiting") for c in cs):
            return "Running"
        return "Succeeded" if all(c.term["exitCode"] == 0 for c in cs) else "Failed"

    def _backoff(self, n):
        return min(self.cfg["crash_backoff_ms"] * 2 ** max(n - 1, 0), 5000) / 1000

    # ---- starting ----
    def _wait(self, c, reason, message, now):
        c.attempts += 1
        c.reason, c.message = reason, message
        c.next_at = now + self._backoff(c.attempts)

    def _try_start(self, pod, rt, c, now):
        if matches(c.image, self.cfg["bad_images"]):
            if c.reason == "ErrImagePull":
                self._wait(c, "ImagePullBackOff", f'Back-off pulling image "{c.image}"', now)
            else:
                self._wait(c, "ErrImagePull", f'failed to pull and unpack image "{normalized_image(c.image)}": '
                           f'failed to resolve reference: not found', now)
            return
        if self.cfg["mode"] == "exec":
            self._spawn(pod, rt, c, now)
            return
        self._started(pod, c, now)
        run_ms = next((ms for p, ms in self.cfg["image_run_ms"].items() if matches(c.image, [p])),
                      self.cfg["run_ms"])
        crash = matches(c.image, self.cfg["crash_images"])
        forever = any(r.get("kind") == "ReplicaSet" for r in pod["metadata"].get("ownerReferences") or [])
        c.exit_code = 1 if crash else 0
        c.end_at = None if forever and not crash else now + run_ms / 1000

    def _started(self, pod, c, now):
        if c.runs:
            c.restarts += 1
            c.prev_lines = c.lines
        c.runs += 1
        c.state, c.reason, c.message = "running", None, None
        c.started_at, c.cid = now_str(), uuid.uuid4().hex + uuid.uuid4().hex
        c.lines = [f"k8s-sim: started container {c.name} (image {c.image}, run {c.runs})",
                   f"k8s-sim: pod {pod['metadata']['namespace']}/{pod['metadata']['name']} "
                   f"on node {pod['spec']['nodeName']}"]
        spec = c.spec.get("readinessProbe")
        c.probe = Probe(spec, self.cfg["probe_scale"], now) if spec and self.cfg["mode"] == "exec" else None

    def _spawn(self, pod, rt, c, now):
        entrypoint = next((argv for image, argv in self.cfg["image_entrypoints"].items()
                           if matches(c.image, [image])), None)
        argv = list(c.spec.get("command") or entrypoint or [])
        if not argv:
            self._wait(c, "RunContainerError", f'failed to start container "{c.name}": image "{c.image}" '
                       f'has no entrypoint here (set command, or image_entrypoints in the k8s-sim config)', now)
            return
        try:
            c.env = self._env(pod, rt, c.spec)
        except EnvError as err:
            self._wait(c, "CreateContainerConfigError", str(err), now)
            return
        argv = [expand(a, c.env) for a in argv + list(c.spec.get("args") or [])]
        path = os.path.join(rt.sandbox, c.name + ".log")
        if os.path.exists(path):
            os.replace(path, os.path.join(rt.sandbox, c.name + ".previous.log"))
        self._started(pod, c, now)
        with open(path, "wb") as out:
            try:
                c.proc = subprocess.Popen(argv, cwd=rt.sandbox, env=c.env, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as err:
                self._exit(pod, c, 128, now, "StartError", f'failed to create containerd task: exec: '
                           f'"{argv[0]}": {err.strerror}: unknown')

    def _env(self, pod, rt, spec):
        meta = pod["metadata"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": rt.sandbox,
               "HOSTNAME": pod["spec"].get("hostname") or meta["name"], "POD_NAME": meta["name"],
               "POD_NAMESPACE": meta["namespace"], "KUBERNETES_SERVICE_HOST": "127.0.0.1",
               "KUBERNETES_SERVICE_PORT": str(self.api_port)}
        for src in spec.get("envFrom") or []:
            ref = src.get("configMapRef") or src.get("secretRef") or {}
            data = self._data("configmaps" if "configMapRef" in src else "secrets", meta["namespace"], ref)
            env.update({src.get("prefix", "") + k: v for k, v in data.items()})
        for item in spec.get("env") or []:
            if "valueFrom" in item:
                value = self._value_from(pod, rt, item["valueFrom"])
                if value is not None:
                    env[item["name"]] = value
            else:
                env[item["name"]] = expand(str(item.get("value", "")), env)
        return env

    def _data(self, resource, ns, ref):
        obj = self.store.get(resource, ns, ref.get("name", ""))
        if obj is None:
            if ref.get("optional"):
                return {}
            raise EnvError(f'{resource[:-1]} "{ref.get("name")}" not found')
        data = dict(obj.get("data") or {})
        if resource == "secrets":
            data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
        return data

    def _value_from(self, pod, rt, src):
        meta = pod["metadata"]
        if "fieldRef" in src:
            path = src["fieldRef"].get("fieldPath", "")
            m = re.match(r"metadata\.(labels|annotations)\['(.*)'\]$", path)
            if m:
                return (meta.get(m.group(1)) or {}).get(m.group(2), "")
            fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                      "metadata.uid": meta["uid"], "spec.nodeName": pod["spec"].get("nodeName"),
                      "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
                      "status.podIP": rt.ip, "status.hostIP": rt.host_ip}
            return fields.get(path, "")
        for key, resource in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
            if key in src:
                ref = src[key]
                data = self._data(resource, meta["namespace"], ref)
                if ref.get("key") not in data:
                    if ref.get("optional"):
                        return None
                    raise EnvError(f"couldn't find key {ref.get('key')} in {resource[:-1]} "
                                   f"{meta['namespace']}/{ref.get('name')}")
                return data[ref["key"]]
        return ""

    # ---- running and exiting ----
    def _check_running(self, pod, rt, c, now):
        if c.proc is not None:
            code = c.proc.poll()
            if code is not None:
                self._exit(pod, c, code if code >= 0 else 128 - code, now)
                return
        elif c.end_at is not None and now >= c.end_at:
            self._exit(pod, c, c.exit_code, now)
            return
        if c.probe is None:
            c.ready = True
        else:
            self._maybe_probe(pod, rt, c, now)
            c.ready = c.probe.ok

    def _exit(self, pod, c, code, now, reason=None, message=None):
        term = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error")}
        if message:
            term["message"] = message
        term.update({"startedAt": c.started_at, "finishedAt": now_str(), "containerID": "containerd://" + c.cid})
        c.lines.append(f"k8s-sim: container {c.name} exited with code {code}")
        c.ready, c.proc, c.end_at, c.probe = False, None, None, None
        policy = pod["spec"].get("restartPolicy", "Always")
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            delay = self._backoff(c.restarts + 1)
            meta = pod["metadata"]
            c.last, c.state, c.reason = term, "waiting", "CrashLoopBackOff"
            c.message = (f"back-off {int(delay * 1000)}ms restarting failed container={c.name} "
                         f"pod={meta['name']}_{meta['namespace']}({meta['uid']})")
            c.next_at = now + delay
        else:
            c.state, c.term = "terminated", term

    # ---- readiness probes (exec mode) ----
    def _maybe_probe(self, pod, rt, c, now):
        probe = c.probe
        if probe.busy or now < probe.next_at:
            return
        probe.busy = True
        args = (probe, self._probe_target(c, rt), rt.sandbox, dict(c.env))
        threading.Thread(target=self._run_probe, args=args, daemon=True).start()

    @staticmethod
    def _probe_target(c, rt):
        spec = c.probe.spec
        handler = spec.get("httpGet") or spec.get("tcpSocket") or {}
        port = handler.get("port")
        if isinstance(port, str) and not port.isdigit():
            port = next((p["containerPort"] for p in c.spec.get("ports") or [] if p.get("name") == port), None)
        return {"host": handler.get("host") or rt.ip, "port": int(port) if port else None}

    def _run_probe(self, probe, target, sandbox, env):
        try:
            ok = self._check(probe.spec, target, sandbox, env)
        except Exception:
            ok = False
        with self.store.lock:
            probe.busy = False
            probe.next_at = time.monotonic() + probe.period
            probe.successes, probe.fails = (probe.successes + 1, 0) if ok else (0, probe.fails + 1)
            if ok and probe.successes >= probe.spec.get("successThreshold", 1):
                probe.ok = True
            elif not ok and probe.fails >= probe.spec.get("failureThreshold", 3):
                probe.ok = False

    @staticmethod
    def _check(spec, target, sandbox, env):
        timeout = spec.get("timeoutSeconds", 1)
        if "exec" in spec:
            result = subprocess.run(spec["exec"].get("command") or ["false"], cwd=sandbox, env=env,
                                    timeout=timeout, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            return result.returncode == 0
        if target["port"] is None:
            return False
        if "tcpSocket" in spec:
            socket.create_connection((target["host"], target["port"]), timeout).close()
            return True
        get = spec.get("httpGet", {})
        if get.get("scheme") == "HTTPS":
            conn = http.client.HTTPSConnection(target["host"], target["port"], timeout=timeout,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(target["host"], target["port"], timeout=timeout)
        try:
            headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
            conn.request("GET", get.get("path", "/"), headers=headers)
            return 200 <= conn.getresponse().status < 400
        finally:
            conn.close()

    # ---- deletion ----
    def _terminate(self, pod, rt, now):
        grace = min(pod["metadata"].get("deletionGracePeriodSeconds") or 0, self.cfg["max_grace_s"])
        running = False
        for c in rt.containers:
            if c.proc is not None:
                running |= self._stop_process(pod, c, grace, now)
            elif c.state == "running":
                c.kill_at = c.kill_at or now + min(self.cfg["stop_ms"] / 1000, grace)
                if now < c.kill_at:
                    running = True
                    continue
                self._exit(dict(pod, spec=dict(pod["spec"], restartPolicy="Never")), c, 143, now)
        rt.final = True
        if not running and not pod["metadata"].get("finalizers"):
            self.store.remove(pod)

    def _stop_process(self, pod, c, grace, now):
        """SIGTERM the group, SIGKILL after the grace period; True while it still runs."""
        code = c.proc.poll()
        if code is None and c.kill_at is None:
            c.kill_at = now + grace
            self._signal(c.proc, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        elif code is None and now >= c.kill_at:
            self._signal(c.proc, signal.SIGKILL)
        if code is None:
            return True
        self._exit(dict(pod, spec=dict(pod["spec"], restartPolicy="Never")), c,
                   code if code >= 0 else 128 - code, now)
        return False

    @staticmethod
    def _signal(proc, sig):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _forget(self, uid):
        rt = self.pods.pop(uid)
        for c in rt.containers:
            if c.proc is not None and c.proc.poll() is None:
                self._signal(c.proc, signal.SIGKILL)
                c.proc.wait()

    def kill_all(self):
        procs = [c.proc for rt in self.pods.values() for c in rt.containers
                 if c.proc is not None and c.proc.poll() is None]
        for proc in procs:
            self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        for proc in procs:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait()
        self.pods.clear()

    def live_processes(self):
        return sum(1 for rt in self.pods.values() for c in rt.containers
                   if c.proc is not None and c.proc.poll() is None)

    # ---- status ----
    def _status(self, pod, rt):
        old = pod.get("status") or {}
        conds = [dict(c) for c in old.get("conditions") or []]
        names = [c.name for c in rt.containers if not c.ready]
        ready = not names and rt.phase == "Running"
        if rt.final:
            reason, message = "PodCompleted", None
        else:
            reason, message = ("ContainersNotReady", f"containers with unready status: [{' '.join(names)}]")
        set_condition(conds, "Initialized", "True")
        for ctype in ("Ready", "ContainersReady"):
            set_condition(conds, ctype, "True" if ready else "False",
                          None if ready else reason, None if ready else message)
        conds.sort(key=lambda c: COND_ORDER.index(c["type"]) if c["type"] in COND_ORDER else 9)
        status = {"phase": rt.phase, "conditions": conds, "hostIP": rt.host_ip,
                  "hostIPs": [{"ip": rt.host_ip}], "podIP": rt.ip, "podIPs": [{"ip": rt.ip}],
                  "startTime": rt.start_time,
                  "containerStatuses": [self._container_status(c) for c in rt.containers],
                  "qosClass": old.get("qosClass", "BestEffort")}
        return status

    @staticmethod
    def _container_status(c):
        if c.state == "running":
            state = {"running": {"startedAt": c.started_at}}
        elif c.state == "terminated":
            state = {"terminated": c.term}
        else:
            state = {"waiting": {"reason": c.reason}}
            if c.message:
                state["waiting"]["message"] = c.message
        status = {"name": c.name, "state": state, "lastState": {"terminated": c.last} if c.last else {},
                  "ready": c.ready, "restartCount": c.restarts, "image": normalized_image(c.image),
                  "imageID": image_id(c.image) if c.runs else "", "started": c.state == "running"}
        if c.runs:
            status["containerID"] = "containerd://" + c.cid
        return status

    # ---- logs (GET pods/{name}/log) ----
    def log_text(self, pod, name, previous):
        rt = self.pods.get(pod["metadata"]["uid"])
        c = next((c for c in rt.containers if c.name == name), None) if rt else None
        pod_name = pod["metadata"]["name"]
        if c is None or not c.runs:
            why = (c.reason if c else "ContainerCreating")
            if why in ("ErrImagePull", "ImagePullBackOff"):
                why = "trying and failing to pull image"
            raise bad_request(f'container "{name}" in pod "{pod_name}" is waiting to start: {why}')
        if previous and c.runs < 2:
            raise bad_request(f'previous terminated container "{name}" in pod "{pod_name}" not found')
        if self.cfg["mode"] != "exec" or not os.path.isdir(rt.sandbox):
            lines = c.prev_lines if previous else c.lines
            return "".join(line + "\n" for line in lines or [])
        path = os.path.join(rt.sandbox, name + (".previous.log" if previous else ".log"))
        try:
            with open(path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

