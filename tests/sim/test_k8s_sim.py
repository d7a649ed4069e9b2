# Contract tests for tests/sim/k8s_sim.py: the simulator is started as a real
# process and driven over HTTP(S), and its JSON is pinned to reference examples
# from the Kubernetes documentation kept in tests/sim/contract/k8s/*.json.
#   python3 -m unittest discover -s tests/sim -p 'test_k8s*.py'
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "k8s_sim.py")
FIXTURES = os.path.join(HERE, "contract", "k8s")
FAST = {"schedule_ms": 10, "pull_ms": 10, "run_ms": 300, "lb_ms": 50, "crash_backoff_ms": 50,
        "max_grace_s": 1, "stop_ms": 50, "probe_scale": 0.1}
# Maps whose keys are user data, not schema: only their JSON type is compared.
FREE_MAPS = {"labels", "annotations", "matchLabels", "selector", "nodeSelector", "data"}


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)["example"]


def shape_mismatches(example, actual, path="$"):
    """Key paths of example missing from actual or of another JSON type (lists: first item)."""
    if example is None:      # null in the reference (lastProbeTime): any value
        return []
    if isinstance(example, dict):
        if not isinstance(actual, dict):
            return [f"{path}: want object, got {type(actual).__name__}"]
        if path.rsplit(".", 1)[-1] in FREE_MAPS:
            return []
        out = []
        for key, value in example.items():
            if key not in actual:
                out.append(f"{path}.{key}: missing")
            else:
                out += shape_mismatches(value, actual[key], f"{path}.{key}")
        return out
    if isinstance(example, list):
        if not isinstance(actual, list):
            return [f"{path}: want array, got {type(actual).__name__}"]
        if example and not actual:
            return [f"{path}: empty array"]
        return shape_mismatches(example[0], actual[0], path + "[0]") if example else []
    number = (int, float)
    same = type(example) is type(actual) or (
        isinstance(example, number) and isinstance(actual, number)
        and not isinstance(example, bool) and not isinstance(actual, bool))
    return [] if same else [f"{path}: want {type(example).__name__}, got {type(actual).__name__}"]


def shape_matches(example, actual):
    return not shape_mismatches(example, actual)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimProcess:
    """One k8s_sim.py process in a temp state dir."""

    def __init__(self, *args, config=None):
        self.dir = tempfile.mkdtemp(prefix="k8s-sim-test-")
        argv = [sys.executable, SIM, "--state-dir", self.dir, *args]
        if config is not None:
            path = os.path.join(self.dir, "config.json")
            with open(path, "w") as f:
                json.dump(config, f)
            argv += ["--config", path]
        self.err = open(os.path.join(self.dir, "stderr.log"), "w+")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.banner = self.proc.stdout.readline().strip()
        with open(os.path.join(self.dir, "url")) as f:
            self.url = f.read()
        self.context = None
        self.token = None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.err.seek(0)
        errors = self.err.read()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return self.proc.returncode, errors

    def call(self, method, path, body=None, ctype="application/json", headers=None, token=None,
             context=None, timeout=10):
        data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", ctype)
        token = token or self.token
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        handlers = [urllib.request.ProxyHandler({})]
        if self.url.startswith("https"):
            handlers.append(urllib.request.HTTPSHandler(context=context or self.context))
        opener = urllib.request.build_opener(*handlers)
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.headers, self._body(resp)
        except urllib.error.HTTPError as err:
            return err.code, err.headers, self._body(err)

    @staticmethod
    def _body(resp):
        raw = resp.read()
        if "json" in (resp.headers.get("Content-Type") or ""):
            return json.loads(raw)
        return raw.decode()

    def ok(self, method, path, body=None, **kw):
        code, _, data = self.call(method, path, body, **kw)
        assert code in (200, 201), f"{method} {path} -> {code} {data}"
        return data

    def get(self, path):
        code, _, data = self.call("GET", path)
        return data if code == 200 else None


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def wait_for(fn, timeout=8.0, what="condition"):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")


def condition(obj, ctype):
    """The status of condition ctype of obj, or None."""
    return next((c["status"] for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), None)


# ---- manifests ----

def container(name="main", image="busybox:1.36", **extra):
    return dict({"name": name, "image": image}, **extra)


def job(name, *containers, restart="Never", **spec):
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": dict({"template": {"spec": {"containers": list(containers) or [container()],
                                                "restartPolicy": restart}}}, **spec)}


def deployment(name, replicas=1, *containers, labels=None, **spec):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": dict({"replicas": replicas, "selector": {"matchLabels": labels},
                          "template": {"metadata": {"labels": labels},
                                       "spec": {"containers": list(containers) or [container()]}}}, **spec)}


def pod(name, *containers, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": dict({"containers": list(containers) or [container()]}, **spec)}


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(name, data=None, labels=None):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": data or {"k": "v"}}


def service(name, kind="ClusterIP", ports=None, **spec):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": dict({"type": kind, "selector": {"app": name},
                          "ports": ports or [{"port": 80, "targetPort": 8080}]}, **spec)}


JOBS = "/apis/batch/v1/namespaces/{ns}/jobs"
DEPLOYS = "/apis/apps/v1/namespaces/{ns}/deployments"
RSES = "/apis/apps/v1/namespaces/{ns}/replicasets"
PODS = "/api/v1/namespaces/{ns}/pods"


class SimCase(unittest.TestCase):
    """A shared simulator per class, reset before every test."""
    args, config = (), {}
    sim = None

    @classmethod
    def setUpClass(cls):
        cls.sim = SimProcess(*cls.args)

    @classmethod
    def tearDownClass(cls):
        code, errors = cls.sim.stop()
        assert code == 0, f"simulator exit code {code}: {errors}"
        assert "Traceback" not in errors, errors

    def setUp(self):
        self.sim.ok("POST", "/_sim/reset")
        self.sim.ok("PUT", "/_sim/config", dict(FAST, faults={"rate": 0.0, "seed": None},
                                                 **self.config))
        self.ns = "t" + str(int(time.monotonic() * 1000) % 100000)
        self.sim.ok("POST", "/api/v1/namespaces", namespace(self.ns))

    def path(self, template, *parts):
        return template.format(ns=self.ns) + "".join("/" + p for p in parts)

    def assertShape(self, example, actual):
        self.assertEqual(shape_mismatches(example, actual), [], json.dumps(actual, indent=1)[:3000])

    def pods(self, selector=""):
        return self.sim.ok("GET", self.path(PODS) + ("?labelSelector=" + selector if selector else ""))["items"]

    def wait_job(self, name, ctype):
        def done():
            obj = self.sim.get(self.path(JOBS, name))
            conds = (obj or {}).get("status", {}).get("conditions", [])
            return obj if any(c["type"] == ctype and c["status"] == "True" for c in conds) else None
        return wait_for(done, what=f"job {name} {ctype}")

    def wait_container(self, pred, selector="", what="container state"):
        def check():
            for p in self.pods(selector):
                for cs in p.get("status", {}).get("containerStatuses", []):
                    if pred(cs, p):
                        return p
            return None
        return wait_for(check, what=what)


class DiscoveryAndObjectsTest(SimCase):
    def test_discovery_and_health(self):
        self.assertEqual(self.sim.call("GET", "/healthz")[2], "ok")
        self.assertEqual(self.sim.call("GET", "/readyz")[2], "ok")
        version = self.sim.ok("GET", "/version")
        self.assertEqual((version["major"], version["minor"]), ("1", "29"))
        self.assertEqual(self.sim.ok("GET", "/api")["versions"], ["v1"])
        groups = {g["name"] for g in self.sim.ok("GET", "/apis")["groups"]}
        self.assertTrue({"apps", "batch"} <= groups)
        names = {r["name"] for r in self.sim.ok("GET", "/apis/batch/v1")["resources"]}
        self.assertIn("jobs", names)

    def test_nodes_from_config(self):
        nodes = self.sim.ok("GET", "/api/v1/nodes")
        self.assertEqual(nodes["kind"], "NodeList")
        gpu = self.sim.ok("GET", "/api/v1/nodes/gpu-node-1")
        self.assertEqual(gpu["status"]["allocatable"]["nvidia.com/gpu"], "4")
        self.assertIn({"type": "InternalIP", "address": "10.0.0.11"}, gpu["status"]["addresses"])
        self.assertEqual(self.sim.call("DELETE", "/api/v1/nodes/gpu-node-1")[0], 405)

    def test_namespace_lifecycle(self):
        created = self.sim.call("POST", "/api/v1/namespaces", namespace("life"))
        self.assertEqual(created[0], 201)
        self.assertEqual(created[2]["status"]["phase"], "Active")
        code, _, body = self.sim.call("POST", "/api/v1/namespaces", namespace("life"))
        self.assertEqual((code, body["reason"], body["message"]),
                         (409, "AlreadyExists", 'namespaces "life" already exists'))
        self.sim.ok("POST", "/api/v1/namespaces/life/configmaps", configmap("cm"))
        self.sim.ok("POST", "/apis/apps/v1/namespaces/life/deployments", deployment("web"))
        wait_for(lambda: self.sim.ok("GET", "/api/v1/namespaces/life/pods")["items"], what="pod")
        self.sim.ok("PUT", "/_sim/config", {"stop_ms": 400})
        code, _, body = self.sim.call("DELETE", "/api/v1/namespaces/life")
        self.assertEqual((code, body["status"]["phase"]), (200, "Terminating"))
        self.assertEqual(self.sim.ok("GET", "/api/v1/namespaces/life")["status"]["phase"], "Terminating")
        code, _, body = self.sim.call("POST", "/api/v1/namespaces/life/configmaps", configmap("late"))
        self.assertEqual((code, body["reason"]), (403, "Forbidden"))
        wait_for(lambda: self.sim.call("GET", "/api/v1/namespaces/life")[0] == 404, what="namespace gone")
        inv = self.sim.ok("GET", "/_sim/inventory")
        self.assertNotIn("life", inv["namespaces"])
        self.assertFalse([p for p in inv["pods"] if p.startswith("life/")])
        self.assertEqual(self.sim.call("DELETE", "/api/v1/namespaces/default")[0], 403)

    def test_configmap_and_secret_crud(self):
        cms = self.path("/api/v1/namespaces/{ns}/configmaps")
        code, _, cm = self.sim.call("POST", cms, configmap("settings", {"a": "1"}, {"tier": "x"}))
        self.assertEqual(code, 201)
        for key in ("uid", "resourceVersion", "creationTimestamp", "namespace"):
            self.assertIn(key, cm["metadata"])
        self.assertEqual(self.sim.ok("GET", cms + "/settings")["data"], {"a": "1"})
        listed = self.sim.ok("GET", cms + "?labelSelector=tier%3Dx")
        self.assertEqual(([i["metadata"]["name"] for i in listed["items"]], listed["kind"]),
                         (["settings"], "ConfigMapList"))
        self.assertIn("resourceVersion", listed["metadata"])
        stale = dict(cm, data={"a": "2"})
        self.sim.ok("PUT", cms + "/settings", dict(cm, data={"a": "3"}))
        code, _, body = self.sim.call("PUT", cms + "/settings", stale)
        self.assertEqual((code, body["reason"]), (409, "Conflict"))
        code, _, body = self.sim.call("DELETE", cms + "/settings")
        self.assertEqual((code, body["kind"], body["status"]), (200, "Status", "Success"))
        self.assertEqual(self.sim.call("GET", cms + "/settings")[0], 404)
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"pw": "hunter2"}}
        made = self.sim.ok("POST", self.path("/api/v1/namespaces/{ns}/secrets"), secret)
        self.assertEqual((made["data"], made["type"]), ({"pw": "aHVudGVyMg=="}, "Opaque"))
        inv = self.sim.ok("GET", "/_sim/inventory")
        self.assertEqual(inv["configmaps"], [])
        self.assertIn(f"{self.ns}/s", inv["secrets"])

    def test_selectors_and_cluster_wide_lists(self):
        self.sim.ok("PUT", "/_sim/config", {"image_run_ms": {"long": 30000}})
        self.sim.ok("POST", self.path(JOBS), job("sel-a", container(image="long"), parallelism=1))
        made = self.sim.ok("POST", self.path(PODS), pod("solo", container(image="long")))
        self.assertEqual(made["status"]["phase"], "Pending")
        wait_for(lambda: len([p for p in self.pods() if p["status"]["phase"] == "Running"]) == 2, what="running")
        self.assertEqual(len(self.pods("job-name%3Dsel-a")), 1)
        self.assertEqual(len(self.pods("job-name")), 1)
        self.assertEqual(len(self.pods("%21job-name")), 1)
        self.assertEqual(len(self.pods("job-name%20in%20(sel-a,other)")), 1)
        self.assertEqual(len(self.pods("job-name!%3Dsel-a")), 1)
        by_name = self.sim.ok("GET", self.path(PODS) + "?fieldSelector=metadata.name%3Dsolo")["items"]
        self.assertEqual([p["metadata"]["name"] for p in by_name], ["solo"])
        node = by_name[0]["spec"]["nodeName"]
        on_node = self.sim.ok("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3D" + node)["items"]
        self.assertIn("solo", [p["metadata"]["name"] for p in on_node])
        running = self.sim.ok("GET", "/api/v1/pods?fieldSelector=status.phase%21%3DRunning")["items"]
        self.assertEqual([p for p in running if p["metadata"]["namespace"] == self.ns], [])
        jobs = self.sim.ok("GET", "/apis/batch/v1/jobs")["items"]
        self.assertEqual([j["metadata"]["name"] for j in jobs], ["sel-a"])
        self.assertEqual(self.sim.call("GET", "/apis/batch/v1/jobs?fieldSelector=status.phase%3Dx")[0], 400)
        page = self.sim.ok("GET", self.path(PODS) + "?limit=1")
        self.assertEqual(len(page["items"]), 1)
        rest = self.sim.ok("GET", self.path(PODS) + "?limit=1&continue=" + page["metadata"]["continue"])
        self.assertNotEqual(rest["items"][0]["metadata"]["name"], page["items"][0]["metadata"]["name"])


class ErrorStatusTest(SimCase):
    def test_not_found_and_already_exists(self):
        code, _, body = self.sim.call("GET", self.path(JOBS, "nope"))
        self.assertEqual((code, body["message"]), (404, 'jobs.batch "nope" not found'))
        self.assertEqual(body["details"], {"name": "nope", "group": "batch", "kind": "jobs"})
        self.assertShape(fixture("status_not_found.json"), body)
        code, _, body = self.sim.call("DELETE", self.path(PODS, "grafana"))
        self.assertEqual(body, dict(fixture("status_not_found.json")))
        self.sim.ok("POST", self.path(JOBS), job("dup"))
        code, _, body = self.sim.call("POST", self.path(JOBS), job("dup"))
        self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": 'jobs.batch "dup" already exists', "reason": "AlreadyExists",
                                "details": {"name": "dup", "group": "batch", "kind": "jobs"}, "code": 409})
        self.assertEqual(code, 409)
        code, _, body = self.sim.call("POST", "/apis/batch/v1/namespaces/ghost/jobs", job("x"))
        self.assertEqual((code, body["message"]), (404, 'namespaces "ghost" not found'))

    def test_invalid_bodies(self):
        cases = [
            (JOBS, job("Bad_Name"), "metadata.name", "FieldValueInvalid"),
            (JOBS, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                    "spec": {"template": {"spec": {"restartPolicy": "Never"}}}},
             "spec.template.spec.containers", "FieldValueRequired"),
            (JOBS, job("j", {"name": "c"}), "spec.template.spec.containers[0].image", "FieldValueRequired"),
            (JOBS, job("j", restart="Always"), "spec.template.spec.restartPolicy", "FieldValueNotSupported"),
            (DEPLOYS, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                       "spec": {"template": {"metadata": {"labels": {"a": "b"}},
                                             "spec": {"containers": [container()]}}}},
             "spec.selector", "FieldValueRequired"),
            ("/api/v1/namespaces/{ns}/services", service("1svc"), "metadata.name", "FieldValueInvalid"),
            (PODS, pod("p", container(resources={"requests": {"nvidia.com/gpu": "1"}})),
             "spec.containers[0].resources.limits", "FieldValueRequired"),
        ]
        for path, body, field, reason in cases:
            code, _, status = self.sim.call("POST", path.format(ns=self.ns), body)
            self.assertEqual(code, 422, status)
            example = fixture("status_invalid.json")
            if not path.startswith("/apis/"):      # core kinds have no group (omitted when empty)
                del example["details"]["group"]
            self.assertShape(example, status)
            self.assertIn({"field": field, "reason": reason},
                          [{"field": c["field"], "reason": c["reason"]} for c in status["details"]["causes"]])
            self.assertIn(" is invalid: ", status["message"])

    def test_bad_requests(self):
        path = self.path(JOBS)
        self.assertEqual(self.sim.call("POST", path, b"{not json")[0], 400)
        wrong_version = dict(job("j"), apiVersion="batch/v2")
        wrong_kind = dict(job("j"), kind="Deployment")
        for body in (wrong_version, wrong_kind):
            code, _, status = self.sim.call("POST", path, body)
            self.assertEqual((code, status["reason"]), (400, "BadRequest"))
        typo = job("j", {"name": "c", "imagee": "x"})
        code, _, status = self.sim.call("POST", path, typo)
        self.assertEqual(code, 400)
        self.assertIn('unknown field "spec.template.spec.containers[0].imagee"', status["message"])
        code, headers, _ = self.sim.call("POST", path + "?fieldValidation=Warn", typo)
        self.assertEqual(code, 422)  # the image is still missing
        code, headers, _ = self.sim.call("POST", path + "?fieldValidation=Warn",
                                         job("w", container(colour="red")))
        self.assertEqual(code, 201)
        self.assertIn("unknown field", headers.get("Warning"))
        wrong_type = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                      "spec": {"replicas": "two"}}
        self.assertEqual(self.sim.call("POST", self.path(DEPLOYS), wrong_type)[0], 400)
        self.assertEqual(self.sim.call("PATCH", self.path(JOBS, "w"), {"spec": {}},
                                       ctype="application/json-patch+json")[0], 415)


class JobTest(SimCase):
    def test_job_shape_and_success(self):
        self.sim.ok("PUT", "/_sim/config", {"image_run_ms": {"perl:*": 600}})
        spec = container("pi", "perl:5.34.0", command=["perl", "-Mbignum=bpi", "-wle", "print bpi(2000)"])
        code, _, created = self.sim.call("POST", self.path(JOBS), job("pi", spec, backoffLimit=4))
        self.assertEqual(code, 201)
        running = wait_for(lambda: (lambda j: j if j["status"].get("ready") == 1 else None)(
            self.sim.ok("GET", self.path(JOBS, "pi"))), what="job ready")
        self.assertShape(fixture("job_pi.json"), running)
        self.assertEqual(running["spec"]["selector"]["matchLabels"],
                         {"batch.kubernetes.io/controller-uid": running["metadata"]["uid"]})
        (p,) = self.pods("job-name%3Dpi")
        self.assertRegex(p["metadata"]["name"], r"^pi-[a-z0-9]{5}$")
        self.assertEqual(p["metadata"]["labels"]["batch.kubernetes.io/job-name"], "pi")
        self.assertEqual(p["metadata"]["labels"]["controller-uid"], running["metadata"]["uid"])
        self.assertEqual(p["metadata"]["ownerReferences"][0]["controller"], True)
        done = self.wait_job("pi", "Complete")
        self.assertShape(fixture("job_conditions.json"), done)
        self.assertEqual(done["status"]["succeeded"], 1)
        self.assertNotIn("active", done["status"])
        self.assertIn("completionTime", done["status"])
        (p,) = self.pods("job-name%3Dpi")
        self.assertEqual(p["status"]["phase"], "Succeeded")
        term = p["status"]["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual((term["exitCode"], term["reason"]), (0, "Completed"))
        log = self.sim.call("GET", self.path(PODS, p["metadata"]["name"], "log"))[2]
        self.assertIn("exited with code 0", log)
        self.assertEqual(self.sim.call("GET", self.path(PODS, p["metadata"]["name"], "log") + "?tailLines=1")[2],
                         "k8s-sim: container pi exited with code 0\n")
        self.assertEqual(self.sim.call("GET", self.path(PODS, p["metadata"]["name"], "log") + "?limitBytes=7")[2],
                         "k8s-sim")

    def test_backoff_limit_zero_with_crash_image(self):
        self.sim.ok("PUT", "/_sim/config", {"crash_images": ["crasher:*"], "run_ms": 50})
        self.sim.ok("POST", self.path(JOBS), job("boom", container(image="crasher:1"), backoffLimit=0))
        failed = self.wait_job("boom", "Failed")
        cond = next(c for c in failed["status"]["conditions"] if c["type"] == "Failed")
        self.assertEqual((cond["reason"], cond["message"]),
                         ("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
        self.assertShape(fixture("job_conditions.json"), failed)
        self.assertEqual(failed["status"]["failed"], 1)
        time.sleep(0.2)
        (p,) = self.pods("job-name%3Dboom")
        term = p["status"]["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual((p["status"]["phase"], term["exitCode"], term["reason"]), ("Failed", 1, "Error"))

    def test_retries_until_backoff_limit(self):
        self.sim.ok("PUT", "/_sim/config", {"crash_images": ["crasher"], "run_ms": 30})
        self.sim.ok("POST", self.path(JOBS), job("retry", container(image="crasher"), backoffLimit=2))
        failed = self.wait_job("retry", "Failed")
        self.assertEqual(failed["status"]["failed"], 3)
        self.assertEqual(len(self.pods("job-name%3Dretry")), 3)

    def test_active_deadline(self):
        self.sim.ok("PUT", "/_sim/config", {"run_ms": 30000})
        self.sim.ok("POST", self.path(JOBS), job("slow", activeDeadlineSeconds=1))
        failed = self.wait_job("slow", "Failed")
        self.assertIn("DeadlineExceeded", [c.get("reason") for c in failed["status"]["conditions"]])
        wait_for(lambda: not self.pods("job-name%3Dslow"), what="pods deleted")

    def test_indexed_parallel_job(self):
        self.sim.ok("PUT", "/_sim/config", {"run_ms": 100})
        self.sim.ok("POST", self.path(JOBS), job("idx", completions=3, parallelism=2, completionMode="Indexed"))
        done = self.wait_job("idx", "Complete")
        self.assertEqual((done["status"]["succeeded"], done["status"]["completedIndexes"]), (3, "0-2"))
        indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                         for p in self.pods("job-name%3Didx"))
        self.assertEqual(indexes, ["0", "1", "2"])

    def test_foreground_and_orphan_deletion(self):
        self.sim.ok("PUT", "/_sim/config", {"run_ms": 30000, "stop_ms": 500})
        self.sim.ok("POST", self.path(JOBS), job("fg"))
        wait_for(lambda: [p for p in self.pods("job-name%3Dfg") if p["status"]["phase"] == "Running"])
        code, _, body = self.sim.call("DELETE", self.path(JOBS, "fg") + "?propagationPolicy=Foreground")
        self.assertEqual(code, 200)
        self.assertEqual(body["metadata"]["finalizers"], ["foregroundDeletion"])
        self.assertIn("deletionTimestamp", body["metadata"])
        still = self.sim.ok("GET", self.path(JOBS, "fg"))
        self.assertIn("deletionTimestamp", still["metadata"])
        wait_for(lambda: self.pods("job-name%3Dfg")[0]["metadata"].get("deletionTimestamp"), what="pod deleting")
        self.assertEqual(self.sim.call("GET", self.path(JOBS, "fg"))[0], 200)
        wait_for(lambda: self.sim.call("GET", self.path(JOBS, "fg"))[0] == 404, what="job gone")
        self.assertEqual(self.pods("job-name%3Dfg"), [])
        self.sim.ok("POST", self.path(JOBS), job("orph"))
        wait_for(lambda: self.pods("job-name%3Dorph"))
        code, _, body = self.sim.call("DELETE", self.path(JOBS, "orph"), {"kind": "DeleteOptions",
                                      "apiVersion": "v1", "propagationPolicy": "Orphan"})
        self.assertEqual((code, body["kind"], body["metadata"]["finalizers"]), (200, "Job", ["orphan"]))
        wait_for(lambda: self.sim.call("GET", self.path(JOBS, "orph"))[0] == 404, what="job gone")
        time.sleep(0.2)
        (p,) = self.pods("job-name%3Dorph")
        self.assertNotIn("ownerReferences", p["metadata"])
        self.assertIsNone(p["metadata"].get("deletionTimestamp"))


class DeploymentTest(SimCase):
    def nginx(self, replicas=2):
        c = container("nginx", "nginx", ports=[{"containerPort": 80}],
                      resources={"limits": {"cpu": "500m", "memory": "128Mi"},
                                 "requests": {"cpu": "500m", "memory": "128Mi"}})
        return deployment("nginx-deployment", replicas, c, labels={"app": "nginx"})

    def wait_ready(self, name, count):
        def ready():
            d = self.sim.ok("GET", self.path(DEPLOYS, name))
            st = d["status"]
            return d if (st.get("readyReplicas", 0) == count and st.get("replicas", 0) == count
                         and st.get("observedGeneration") == d["metadata"]["generation"]) else None
        return wait_for(ready, what=f"{count} ready replicas")

    def test_readiness_scaling_and_pod_shape(self):
        self.assertEqual(self.sim.call("POST", self.path(DEPLOYS), self.nginx())[0], 201)
        d = self.wait_ready("nginx-deployment", 2)
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        self.assertEqual(conds["Available"]["status"], "True")
        self.assertEqual(conds["Progressing"]["reason"], "NewReplicaSetAvailable")
        (rs,) = self.sim.ok("GET", self.path(RSES))["items"]
        self.assertRegex(rs["metadata"]["name"], r"^nginx-deployment-[bcdfghjklmnpqrstvwxz2456789]{10}$")
        pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
        self.assertEqual(rs["metadata"]["name"], "nginx-deployment-" + pod_hash)
        pods = self.pods("app%3Dnginx")
        self.assertEqual(len(pods), 2)
        for p in pods:
            self.assertRegex(p["metadata"]["name"], "^" + rs["metadata"]["name"] + "-[a-z0-9]{5}$")
            self.assertShape(fixture("pod_running.json"), dict(p, apiVersion="v1", kind="Pod"))
        one = self.sim.ok("GET", self.path(PODS, pods[0]["metadata"]["name"]))
        self.assertShape(fixture("pod_running.json"), one)
        self.assertEqual(one["status"]["qosClass"], "Guaranteed")
        self.assertEqual(one["status"]["containerStatuses"][0]["image"], "docker.io/library/nginx:latest")
        patch = self.sim.call("PATCH", self.path(DEPLOYS, "nginx-deployment"), {"spec": {"replicas": 3}},
                              ctype="application/merge-patch+json")
        self.assertEqual((patch[0], patch[2]["metadata"]["generation"]), (200, 2))
        self.wait_ready("nginx-deployment", 3)
        self.sim.ok("PATCH", self.path(DEPLOYS, "nginx-deployment"), {"spec": {"replicas": 1}},
                    ctype="application/merge-patch+json")
        self.wait_ready("nginx-deployment", 1)
        wait_for(lambda: len(self.pods("app%3Dnginx")) == 1, what="scaled down")
        scale = self.sim.ok("GET", self.path(DEPLOYS, "nginx-deployment", "scale"))
        self.assertEqual((scale["kind"], scale["spec"]["replicas"]), ("Scale", 1))

    def test_partial_availability_status_shape(self):
        gpu = container("trainer", "trainer:1", resources={"limits": {"nvidia.com/gpu": "3"}})
        self.sim.ok("POST", self.path(DEPLOYS), deployment("gpus", 2, gpu))
        def partial():
            st = self.sim.ok("GET", self.path(DEPLOYS, "gpus"))["status"]
            return st if st.get("availableReplicas") == 1 and st.get("unavailableReplicas") == 1 else None
        status = wait_for(partial, what="one of two replicas available")
        self.assertShape(fixture("deployment_status.json"), {"status": status})
        self.assertEqual(status["replicas"], 2)

    def test_progress_deadline_and_background_delete(self):
        self.sim.ok("PUT", "/_sim/config", {"bad_images": ["registry.invalid/*"]})
        self.sim.ok("POST", self.path(DEPLOYS), deployment("stuck", 1, container(image="registry.invalid/x:1"),
                                                           progressDeadlineSeconds=1))
        def exceeded():
            conds = self.sim.ok("GET", self.path(DEPLOYS, "stuck"))["status"].get("conditions", [])
            return [c for c in conds if c["type"] == "Progressing" and c["status"] == "False"]
        (cond,) = wait_for(exceeded, timeout=5, what="ProgressDeadlineExceeded")
        self.assertEqual(cond["reason"], "ProgressDeadlineExceeded")
        code, _, body = self.sim.call("DELETE", self.path(DEPLOYS, "stuck") + "?propagationPolicy=Background")
        self.assertEqual((code, body["status"]), (200, "Success"))
        self.assertEqual(self.sim.call("GET", self.path(DEPLOYS, "stuck"))[0], 404)
        wait_for(lambda: not self.sim.ok("GET", self.path(RSES))["items"] and not self.pods(), what="GC")

    def test_crash_loop_backoff(self):
        self.sim.ok("PUT", "/_sim/config", {"crash_images": ["crashy"], "run_ms": 40})
        self.sim.ok("POST", self.path(DEPLOYS), deployment("loop", 1, container(image="crashy")))
        looping = lambda cs, p: cs["restartCount"] >= 2 and \
            cs["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
        p = self.wait_container(looping, what="CrashLoopBackOff")
        cs = p["status"]["containerStatuses"][0]
        self.assertEqual(cs["lastState"]["terminated"]["exitCode"], 1)
        self.assertEqual(p["status"]["phase"], "Running")
        self.assertIn("back-off", cs["state"]["waiting"]["message"])
        log = self.sim.call("GET", self.path(PODS, p["metadata"]["name"], "log") + "?previous=true")
        self.assertEqual(log[0], 200)
        self.assertIn("exited with code 1", log[2])


class SchedulingTest(SimCase):
    def test_unschedulable_message(self):
        nodes = [{"name": f"gpu-{i}", "cpu": "32", "memory": "256Gi", "gpus": 4, "address": f"10.0.0.2{i}",
                  "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}} for i in (1, 2)]
        nodes.append({"name": "cpu-1", "cpu": "16", "memory": "64Gi", "address": "10.0.0.30"})
        self.sim.ok("PUT", "/_sim/config", {"nodes": nodes})
        big = container(resources={"limits": {"nvidia.com/gpu": "8"}})
        self.sim.ok("POST", self.path(PODS), pod("big", big,
                                                 nodeSelector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}))
        def unschedulable():
            conds = self.sim.ok("GET", self.path(PODS, "big"))["status"].get("conditions", [])
            return next((c for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"), None)
        cond = wait_for(unschedulable, what="Unschedulable")
        self.assertEqual(cond["reason"], "Unschedulable")
        self.assertEqual(cond["message"], "0/3 nodes are available: 1 node(s) didn't match Pod's node "
                         "affinity/selector, 2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are "
                         "available: 1 Preemption is not helpful for scheduling, 2 No preemption victims "
                         "found for incoming pod.")
        nodes[0]["gpus"] = 8
        self.sim.ok("PUT", "/_sim/config", {"nodes": nodes})
        bound = wait_for(lambda: self.sim.ok("GET", self.path(PODS, "big"))["spec"].get("nodeName"))
        self.assertEqual(bound, "gpu-1")

    def test_schedules_once_capacity_frees(self):
        self.sim.ok("PUT", "/_sim/config", {"run_ms": 30000})
        four = container(resources={"limits": {"nvidia.com/gpu": "4"}})
        self.sim.ok("POST", self.path(JOBS), job("first", four))
        wait_for(lambda: [p for p in self.pods("job-name%3Dfirst") if p["spec"].get("nodeName")])
        self.sim.ok("POST", self.path(JOBS), job("second", four))
        def waiting():
            pods = self.pods("job-name%3Dsecond")
            conds = pods[0]["status"].get("conditions", []) if pods else []
            return next((c for c in conds if c.get("reason") == "Unschedulable"), None)
        cond = wait_for(waiting, what="second unschedulable")
        self.assertEqual(cond["message"], "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: "
                         "0/2 nodes are available: 2 No preemption victims found for incoming pod.")
        self.sim.ok("DELETE", self.path(JOBS, "first") + "?propagationPolicy=Background")
        p = wait_for(lambda: [p for p in self.pods("job-name%3Dsecond") if p["status"]["phase"] == "Running"],
                     what="second running")[0]
        self.assertEqual(p["spec"]["nodeName"], "gpu-node-1")
        scheduled = next(c for c in p["status"]["conditions"] if c["type"] == "PodScheduled")
        self.assertEqual(scheduled["status"], "True")

    def test_image_pull_backoff(self):
        self.sim.ok("PUT", "/_sim/config", {"bad_images": ["nosuch/image:*"]})
        self.sim.ok("POST", self.path(PODS), pod("pull", container(image="nosuch/image:1")))
        p = self.wait_container(lambda cs, p: cs["state"].get("waiting", {}).get("reason") == "ImagePullBackOff",
                                what="ImagePullBackOff")
        waiting = p["status"]["containerStatuses"][0]["state"]["waiting"]
        self.assertEqual(waiting["message"], 'Back-off pulling image "nosuch/image:1"')
        self.assertEqual(p["status"]["phase"], "Pending")
        code, _, body = self.sim.call("GET", self.path(PODS, "pull", "log"))
        self.assertEqual((code, body["message"]), (400, 'container "main" in pod "pull" is waiting to start: '
                                                        'trying and failing to pull image'))

    def test_pod_delete_returns_object(self):
        self.sim.ok("PUT", "/_sim/config", {"run_ms": 30000, "stop_ms": 300})
        self.sim.ok("POST", self.path(PODS), pod("bare"))
        wait_for(lambda: self.sim.ok("GET", self.path(PODS, "bare"))["status"]["phase"] == "Running")
        code, _, body = self.sim.call("DELETE", self.path(PODS, "bare"))
        self.assertEqual((code, body["kind"]), (200, "Pod"))
        self.assertEqual(body["metadata"]["deletionGracePeriodSeconds"], 30)
        wait_for(lambda: self.sim.call("GET", self.path(PODS, "bare"))[0] == 404, what="pod gone")


class ServiceTest(SimCase):
    def test_service_types(self):
        svcs = self.path("/api/v1/namespaces/{ns}/services")
        code, _, plain = self.sim.call("POST", svcs, service("plain"))
        self.assertEqual(code, 201)
        import ipaddress
        ip = plain["spec"]["clusterIP"]
        self.assertIn(ipaddress.ip_address(ip), ipaddress.ip_network("10.96.0.0/12"))
        self.assertEqual((plain["spec"]["clusterIPs"], plain["spec"]["ports"][0]["protocol"]), ([ip], "TCP"))
        node = self.sim.ok("POST", svcs, service("np", "NodePort"))
        self.assertTrue(30000 <= node["spec"]["ports"][0]["nodePort"] <= 32767)
        taken = node["spec"]["ports"][0]["nodePort"]
        code, _, body = self.sim.call("POST", svcs, service("np2", "NodePort", [{"port": 80, "nodePort": taken}]))
        self.assertEqual((code, body["details"]["causes"][0]["field"]), (422, "spec.ports[0].nodePort"))
        lb = dict(service("my-service", "LoadBalancer", [{"protocol": "TCP", "port": 80, "targetPort": 9376}]))
        lb["spec"]["selector"] = {"app.kubernetes.io/name": "MyApp"}
        made = self.sim.ok("POST", svcs, lb)
        self.assertEqual(made["status"], {"loadBalancer": {}})
        ready = wait_for(lambda: (lambda s: s if s["status"]["loadBalancer"].get("ingress") else None)(
            self.sim.ok("GET", svcs + "/my-service")), what="LB ingress")
        self.assertShape(fixture("service_loadbalancer.json"), ready)
        self.assertTrue(ready["status"]["loadBalancer"]["ingress"][0]["ip"].startswith("172.18.255."))
        headless = self.sim.ok("POST", svcs, service("hl", clusterIP="None"))
        self.assertEqual(headless["spec"]["clusterIP"], "None")
        self.assertEqual(len(self.sim.ok("GET", svcs)["items"]), 4)
        inv = self.sim.ok("GET", "/_sim/inventory")
        self.assertIn(f"{self.ns}/my-service", inv["services"])


class FaultTest(SimCase):
    def post_configmap(self, name):
        try:
            return self.sim.call("POST", self.path("/api/v1/namespaces/{ns}/configmaps"), configmap(name),
                                 timeout=3)
        except (urllib.error.URLError, ConnectionError, OSError) as err:
            return err

    def test_each_kind_after_and_before(self):
        cms = self.path("/api/v1/namespaces/{ns}/configmaps")
        for kind in ("500", "503", "429", "reset", "timeout"):
            for when in ("after", "before"):
                name = f"cm-{kind}-{when}"
                self.sim.ok("PUT", "/_sim/config", {"faults": {"rate": 1.0, "kinds": [kind], "when": when,
                                                               "hang_ms": 200, "retry_after_s": 2}})
                result = self.post_configmap(name)
                if kind in ("500", "503", "429"):
                    code, headers, body = result
                    self.assertEqual((code, body["kind"], body["code"]), (int(kind), "Status", int(kind)))
                    if kind == "429":
                        self.assertEqual((headers["Retry-After"], body["reason"]), ("2", "TooManyRequests"))
                else:
                    self.assertIsInstance(result, Exception, f"{kind}: got a response {result}")
                self.sim.ok("PUT", "/_sim/config", {"faults": {"rate": 0.0}})
                exists = self.sim.call("GET", f"{cms}/{name}")[0] == 200
                self.assertEqual(exists, when == "after", f"{kind}/{when}")
        stats = self.sim.ok("GET", "/_sim/stats")
        self.assertEqual(stats["faults"], {"500": 2, "503": 2, "429": 2, "reset": 2, "timeout": 2})
        self.assertGreaterEqual(stats["by_route"]["POST configmaps"], 10)

    def test_method_filter_seed_and_latency(self):
        self.sim.ok("PUT", "/_sim/config", {"faults": {"rate": 1.0, "kinds": ["503"], "methods": ["DELETE"]}})
        self.assertEqual(self.post_configmap("ok")[0], 201)
        self.assertEqual(self.sim.call("GET", "/_sim/inventory")[0], 200)
        self.assertEqual(self.sim.call("DELETE", self.path("/api/v1/namespaces/{ns}/configmaps/ok"))[0], 503)
        def sequence():
            self.sim.ok("PUT", "/_sim/config", {"faults": {"rate": 0.5, "kinds": ["500", "503"],
                                                           "methods": ["GET"], "seed": 7}})
            return [self.sim.call("GET", "/version")[0] for _ in range(12)]
        self.assertEqual(sequence(), sequence())
        self.sim.ok("PUT", "/_sim/config", {"faults": {"rate": 0.0}, "latency_ms": [150, 150]})
        start = time.monotonic()
        self.sim.ok("GET", "/version")
        self.assertGreaterEqual(time.monotonic() - start, 0.14)
        self.sim.ok("PUT", "/_sim/config", {"latency_ms": [0, 0]})
        self.assertEqual(self.sim.call("PUT", "/_sim/config", {"nope": 1})[0], 400)


class ExecModeTest(SimCase):
    config = {"mode": "exec"}

    def test_exit_code_and_log(self):
        c = container(image="busybox", command=["/bin/sh", "-c", "echo hi; echo \"pod=$POD_NAME\"; exit 3"])
        self.sim.ok("POST", self.path(JOBS), job("sh", c, backoffLimit=0))
        self.wait_job("sh", "Failed")
        (p,) = self.pods("job-name%3Dsh")
        term = p["status"]["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual((term["exitCode"], term["reason"]), (3, "Error"))
        log = self.sim.call("GET", self.path(PODS, p["metadata"]["name"], "log") + "?container=main")[2]
        self.assertEqual(log, f"hi\npod={p['metadata']['name']}\n")

    def test_readiness_http_probe_and_cleanup(self):
        port = free_port()
        server = container("web", "python:3", command=["python3", "-m", "http.server", str(port),
                                                       "--bind", "127.0.0.1"],
                           ports=[{"name": "http", "containerPort": port}],
                           readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2})
        self.sim.ok("POST", self.path(DEPLOYS), deployment("web", 1, server))
        p = self.wait_container(lambda cs, p: cs["ready"], what="probe passes")
        self.assertEqual(p["status"]["podIP"], "127.0.0.1")
        ready = next(c for c in p["status"]["conditions"] if c["type"] == "Ready")
        self.assertEqual(ready["status"], "True")
        self.assertEqual(self.sim.ok("GET", "/_sim/inventory")["processes"], 1)
        tcp = container("tcp", command=["sleep", "30"],
                        readinessProbe={"tcpSocket": {"port": port}, "periodSeconds": 2})
        touch = container("file", command=["/bin/sh", "-c", "sleep 0.3; touch ready; exec sleep 30"],
                          readinessProbe={"exec": {"command": ["test", "-f", "ready"]}, "periodSeconds": 2})
        self.sim.ok("POST", self.path(PODS), pod("probes", tcp, touch))
        wait_for(lambda: condition(self.sim.ok("GET", self.path(PODS, "probes")), "Ready") == "True",
                 what="tcpSocket and exec probes pass")
        self.sim.ok("DELETE", self.path(PODS, "probes") + "?gracePeriodSeconds=0")
        self.sim.ok("DELETE", self.path(DEPLOYS, "web"))
        wait_for(lambda: self.sim.ok("GET", "/_sim/inventory")["processes"] == 0 and not self.pods(),
                 what="process stopped")

    def test_env_configmap_and_sigterm_ignoring_process(self):
        self.sim.ok("POST", self.path("/api/v1/namespaces/{ns}/configmaps"), configmap("cfg", {"mode": "fast"}))
        script = 'trap "" TERM; echo "$MODE $MY_IP $(echo nested)"; while :; do sleep 0.1; done'
        c = container(image="busybox", command=["/bin/sh", "-c", script],
                      env=[{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                           {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}])
        self.sim.ok("POST", self.path(PODS), pod("stubborn", c))
        wait_for(lambda: self.sim.call("GET", self.path(PODS, "stubborn", "log"))[2] == "fast 127.0.0.1 nested\n",
                 what="log line")
        start = time.monotonic()
        self.sim.ok("DELETE", self.path(PODS, "stubborn"))
        wait_for(lambda: self.sim.call("GET", self.path(PODS, "stubborn"))[0] == 404, what="pod gone")
        self.assertGreaterEqual(time.monotonic() - start, 0.9)   # SIGKILL after max_grace_s
        self.assertEqual(self.sim.ok("GET", "/_sim/inventory")["processes"], 0)

    def test_entrypoint_missing_config_error_and_restart(self):
        self.sim.ok("POST", self.path(PODS), pod("noentry", container(image="mystery")))
        self.wait_container(lambda cs, p: cs["state"].get("waiting", {}).get("reason") == "RunContainerError",
                            what="RunContainerError")
        env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}]
        self.sim.ok("POST", self.path(PODS), pod("noconf", container(command=["true"], env=env)))
        missing = lambda cs, p: cs["state"].get("waiting", {}).get("message") == 'configmap "absent" not found'
        self.wait_container(missing, what="CreateContainerConfigError")
        self.sim.ok("PUT", "/_sim/config", {"image_entrypoints": {"counter": ["/bin/sh", "-c"]}})
        self.sim.ok("POST", self.path(PODS), pod("again", container(image="counter", args=["echo run; exit 1"]),
                                                 restartPolicy="OnFailure"))
        self.wait_container(lambda cs, p: cs["restartCount"] >= 1 and p["metadata"]["name"] == "again",
                            what="restart")
        prev = self.sim.call("GET", self.path(PODS, "again", "log") + "?previous=true")
        self.assertEqual(prev[:1] + (prev[2],), (200, "run\n"))


class LifecycleTest(unittest.TestCase):
    def test_url_banner_and_sigterm_kills_processes(self):
        sim = SimProcess(config=dict(FAST, mode="exec"))
        try:
            self.assertRegex(sim.url, r"^http://127\.0\.0\.1:\d+$")
            self.assertEqual(sim.banner, "k8s-sim listening on " + sim.url)
            sim.ok("POST", "/api/v1/namespaces", namespace("life"))
            sim.ok("POST", "/api/v1/namespaces/life/pods",
                   pod("sleeper", container(command=["/bin/sh", "-c", "echo $$$$ > pid; exec sleep 30"])))
            pid_file = os.path.join(sim.dir, "pods", "life", "sleeper", "pid")
            pid = int(wait_for(lambda: read_text(pid_file).strip(), what="pid file"))
            os.kill(pid, 0)
        finally:
            code, errors = sim.stop()
        self.assertEqual(code, 0, errors)
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)

    def test_bad_config_is_refused(self):
        d = tempfile.mkdtemp()
        try:
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump({"no_such_knob": 1}, f)
            result = subprocess.run([sys.executable, SIM, "--state-dir", d, "--config", path],
                                    capture_output=True, text=True, timeout=10)
            self.assertNotEqual(result.returncode, 0)
            self.assertIn("no_such_knob", result.stderr)
        finally:
            shutil.rmtree(d)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d):
    """A CA, a server certificate for IP 127.0.0.1, a client certificate, and a stranger's one."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                "-subj", f"/CN=k8s-sim-test-{ca}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    exts = {"server": "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            "client": "extendedKeyUsage=clientAuth\n", "stranger": "extendedKeyUsage=clientAuth\n"}
    for name, ext in exts.items():
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n" + ext)
        ca = "other-ca" if name == "stranger" else "ca"
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl CLI")
class TlsAuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="k8s-sim-certs-")
        make_certs(cls.certs)
        f = lambda n: os.path.join(cls.certs, n)
        cls.sim = SimProcess("--tls-cert", f("server.crt"), "--tls-key", f("server.key"),
                             "--client-ca", f("ca.crt"), "--token", "s3cret")
        cls.sim.context = ssl.create_default_context(cafile=f("ca.crt"))

    @classmethod
    def tearDownClass(cls):
        code, errors = cls.sim.stop()
        shutil.rmtree(cls.certs, ignore_errors=True)
        assert code == 0, errors

    def client_context(self, name):
        ctx = ssl.create_default_context(cafile=os.path.join(self.certs, "ca.crt"))
        ctx.load_cert_chain(os.path.join(self.certs, name + ".crt"), os.path.join(self.certs, name + ".key"))
        return ctx

    def test_https_url(self):
        self.assertRegex(self.sim.url, r"^https://127\.0\.0\.1:\d+$")

    def test_unauthorized_status(self):
        for token in (None, "wrong"):
            code, _, body = self.sim.call("GET", "/api/v1/namespaces", token=token)
            self.assertEqual(code, 401)
            self.assertEqual(body, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                    "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
            example = {k: v for k, v in fixture("status_not_found.json").items() if k != "details"}
            self.assertTrue(shape_matches(example, body))

    def test_bearer_token(self):
        code, _, body = self.sim.call("GET", "/api/v1/namespaces", token="s3cret")
        self.assertEqual((code, body["kind"]), (200, "NamespaceList"))

    def test_client_certificate(self):
        code, _, body = self.sim.call("GET", "/api/v1/nodes", context=self.client_context("client"))
        self.assertEqual((code, body["kind"]), (200, "NodeList"))
        with self.assertRaises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            self.sim.call("GET", "/api/v1/nodes", context=self.client_context("stranger"))

    def test_reset_fault_over_tls(self):
        self.sim.ok("PUT", "/_sim/config", {"faults": {"rate": 1.0, "kinds": ["reset"], "when": "after"}})
        try:
            with self.assertRaises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
                self.sim.call("GET", "/api/v1/nodes", token="s3cret")
        finally:
            self.sim.ok("PUT", "/_sim/config", {"faults": {"rate": 0.0}})
        self.assertEqual(self.sim.call("GET", "/api/v1/nodes", token="s3cret")[0], 200)

    def test_control_endpoints_and_health_need_no_auth(self):
        self.assertEqual(self.sim.call("GET", "/_sim/inventory")[0], 200)
        self.assertEqual(self.sim.call("GET", "/healthz")[2], "ok")


if __name__ == "__main__":
    unittest.main()
