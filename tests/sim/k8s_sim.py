#!/usr/bin/env python3
# k8s-sim: a stateful Kubernetes API server simulator for driver tests.
# Entry point: command line, run-time config, HTTP(S) server with bearer-token
# and client-certificate auth, fault injection, the /_sim/* control endpoints
# and the ticker that drives controllers, scheduler and kubelet.
#
#   python3 tests/sim/k8s_sim.py --state-dir DIR [--port 0] [--bind 127.0.0.1]
#       [--tls-cert F --tls-key F [--client-ca F]] [--token TOKEN] [--config FILE.json] [--verbose]
#
# DIR/url gets the base URL; config keys are those of DEFAULT_CONFIG below (also
# GET/PUT /_sim/config at run time).  No-auth control endpoints: GET /_sim/config,
# PUT /_sim/config (merge), GET /_sim/inventory, GET /_sim/stats, POST /_sim/reset.
import argparse
import collections
import copy
import hmac
import json
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from k8s_api import Api, Request  # noqa: E402
from k8s_controllers import Controllers  # noqa: E402
from k8s_kubelet import Kubelet  # noqa: E402
from k8s_store import SYSTEM_NAMESPACES, ApiError, Store  # noqa: E402

DEFAULT_CONFIG = {
    "nodes": [
        {"name": "gpu-node-1", "cpu": "32", "memory": "256Gi", "gpus": 4, "address": "10.0.0.11",
         "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/gpu.count": "4"}},
        {"name": "cpu-node-1", "cpu": "16", "memory": "64Gi", "gpus": 0, "address": "10.0.0.12",
         "labels": {}},
    ],
    "mode": "simulate", "schedule_ms": 100, "pull_ms": 100, "run_ms": 500, "lb_ms": 200,
    "lb_cidr": "172.18.255.0/24", "max_grace_s": 2, "stop_ms": 100, "crash_backoff_ms": 200, "probe_scale": 0.1,
    "exec_pod_ip": "127.0.0.1", "field_validation": "Strict", "latency_ms": [0, 0],
    "faults": {"rate": 0.0, "kinds": ["500", "503", "429", "reset", "timeout"],
               "methods": ["GET", "POST", "DELETE", "PATCH"], "when": "before", "hang_ms": 40000,
               "retry_after_s": 1, "seed": None},
    "bad_images": [], "crash_images": [], "image_entrypoints": {}, "image_run_ms": {},
}
FAULT_STATUS = {
    "500": ("InternalError", "Internal error occurred: injected fault (k8s-sim)"),
    "503": ("ServiceUnavailable", "the server is currently unable to handle the request"),
    "429": ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
}
PUBLIC_PATHS = ("/healthz", "/readyz", "/livez", "/version")


def check_type(key, value, default):
    number = (int, float)
    if default is None:
        ok = value is None or isinstance(value, int)
    elif isinstance(default, number) and not isinstance(default, bool):
        ok = isinstance(value, number) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"config key {key!r} wants a {type(default).__name__}, got {value!r}")


def merge_config(config, patch):
    """Merge a JSON patch into the config ('faults' merges one level down); ValueError if bad."""
    if not isinstance(patch, dict):
        raise ValueError("config must be a JSON object")
    out = copy.deepcopy(config)
    for key, value in patch.items():
        if key not in DEFAULT_CONFIG:
            raise ValueError(f"unknown config key {key!r}")
        if key == "faults":
            unknown = set(value) - set(DEFAULT_CONFIG["faults"]) if isinstance(value, dict) else {"?"}
            if unknown:
                raise ValueError(f"unknown faults keys {sorted(unknown)}")
            for sub, item in value.items():
                check_type("faults." + sub, item, DEFAULT_CONFIG["faults"][sub])
            out["faults"].update(value)
        else:
            check_type(key, value, DEFAULT_CONFIG[key])
            out[key] = value
    if out["mode"] not in ("simulate", "exec"):
        raise ValueError("mode must be 'simulate' or 'exec'")
    if out["faults"]["when"] not in ("before", "after", "mixed"):
        raise ValueError("faults.when must be before, after or mixed")
    if any(not isinstance(n, dict) or not n.get("name") for n in out["nodes"]):
        raise ValueError("every node needs a name")
    if len(out["latency_ms"]) != 2:
        raise ValueError("latency_ms is [low, high]")
    return out


class Simulator:
    """Everything behind the HTTP handler: state, controllers, faults, stats."""

    def __init__(self, args, config):
        self.args, self.state_dir = args, args.state_dir
        self.store = Store(config)
        if args.tls_cert:
            with open(args.tls_cert) as f:
                self.store.root_ca = f.read()
        self.kubelet = Kubelet(self.store, self.state_dir)
        self.controllers = Controllers(self.store)
        self.api = None
        self.stopping = threading.Event()
        self.stats_lock = threading.Lock()
        self.reset_stats()
        self.fault_rng = random.Random(config["faults"]["seed"])

    @property
    def config(self):
        return self.store.config

    def reset_stats(self):
        with self.stats_lock:
            self.requests, self.by_route, self.faults = 0, collections.Counter(), collections.Counter()

    def count(self, route):
        with self.stats_lock:
            self.requests += 1
            self.by_route[route] += 1

    # ---- ticker ----
    def run_ticker(self):
        while not self.stopping.wait(0.05):
            now = time.monotonic()
            with self.store.lock:
                self.controllers.tick(now)
                try:
                    self.kubelet.tick(now)
                except Exception:
                    import traceback
                    traceback.print_exc(file=sys.stderr)

    # ---- auth ----
    def authorized(self, handler):
        if not self.args.token and not self.args.client_ca:
            return True
        auth = handler.headers.get("Authorization", "")
        if self.args.token and auth.startswith("Bearer ") and \
                hmac.compare_digest(auth[7:].strip().encode(), self.args.token.encode()):
            return True
        if self.args.client_ca and isinstance(handler.connection, ssl.SSLSocket):
            return bool(handler.connection.getpeercert())
        return False

    # ---- faults ----
    def pick_fault(self, method):
        """-> (kind, after) or None, drawn from faults.rate / kinds / methods / when."""
        faults = self.config["faults"]
        with self.stats_lock:
            if method not in faults["methods"] or not faults["kinds"]:
                return None
            if self.fault_rng.random() >= faults["rate"]:
                return None
            kind = self.fault_rng.choice(faults["kinds"])
            when = faults["when"]
            after = when == "after" or (when == "mixed" and self.fault_rng.random() < 0.5)
            self.faults[str(kind)] += 1
            return str(kind), after

    # ---- /_sim/* ----
    def control(self, method, path, body):
        if path == "/_sim/config" and method == "GET":
            return 200, self.config
        if path == "/_sim/config" and method == "PUT":
            try:
                patch = json.loads(body or b"{}")
                with self.store.lock:
                    self.store.config = merge_config(self.config, patch)
                    self.store.sync_nodes()
                    if "faults" in patch and "seed" in patch["faults"]:
                        self.fault_rng = random.Random(self.config["faults"]["seed"])
            except ValueError as err:
                return 400, {"error": str(err)}
            return 200, self.config
        if path == "/_sim/inventory" and method == "GET":
            return 200, self.inventory()
        if path == "/_sim/stats" and method == "GET":
            with self.stats_lock:
                return 200, {"requests": self.requests, "by_route": dict(self.by_route),
                             "faults": dict(self.faults)}
        if path == "/_sim/reset" and method == "POST":
            self.reset()
            return 200, {"reset": True}
        return 404, {"error": f"no such endpoint: {method} {path}"}

    def inventory(self):
        with self.store.lock:
            names = lambda r: [f"{o['metadata']['namespace']}/{o['metadata']['name']}"
                               for o in self.store.items(r)]
            return {"namespaces": [o["metadata"]["name"] for o in self.store.items("namespaces")
                                   if o["metadata"]["name"] not in SYSTEM_NAMESPACES],
                    "jobs": names("jobs"), "deployments": names("deployments"),
                    "replicasets": names("replicasets"), "pods": names("pods"),
                    "services": names("services"), "secrets": names("secrets"),
                    "configmaps": [n for n in names("configmaps") if not n.endswith("/kube-root-ca.crt")],
                    "processes": self.kubelet.live_processes()}

    def reset(self):
        with self.store.lock:
            self.kubelet.kill_all()
            self.store.reset()
            self.controllers.reset()
            shutil.rmtree(os.path.join(self.state_dir, "pods"), ignore_errors=True)
        self.reset_stats()

    def shutdown(self):
        self.stopping.set()
        with self.store.lock:
            self.kubelet.kill_all()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "k8s-sim"
    timeout = 300

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, fmt, *args):
        if self.server.sim.args.verbose:
            sys.stderr.write("k8s-sim: %s %s\n" % (self.address_string(), fmt % args))

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def dispatch(self):
        sim = self.server.sim
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self.read_body()
        if url.path.startswith("/_sim/"):
            code, payload = sim.control(self.command, url.path, body)
            return self.reply(code, payload)
        sim.count(sim.api.route_label(self.command, url.path))
        fault = sim.pick_fault(self.command)
        if fault and not fault[1]:
            return self.inject(fault[0])
        if url.path.rstrip("/") in ("/healthz", "/readyz", "/livez"):
            code, payload, headers = 200, "ok", [("Content-Type", "text/plain; charset=utf-8")]
        elif url.path not in PUBLIC_PATHS and not sim.authorized(self):
            err = ApiError(401, "Unauthorized", "Unauthorized")
            code, payload, headers = 401, err.body(), []
        else:
            resp = sim.api.handle(Request(self.command, url.path, query, self.headers, body))
            code, payload, headers = resp.code, resp.payload, resp.headers
        if fault:
            return self.inject(fault[0])
        low, high = sim.config["latency_ms"]
        if high > 0:
            time.sleep(random.uniform(low, high) / 1000)
        self.reply(code, payload, headers)

    def reply(self, code, payload, headers=()):
        ctype = "application/json"
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain"
        else:
            data = json.dumps(payload, separators=(",", ":")).encode()
        headers = list(headers)
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", ctype))
        self.send_response(code)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def inject(self, kind):
        """Answer with an injected fault: a Status error, a reset or a hang."""
        faults = self.server.sim.config["faults"]
        if kind in FAULT_STATUS:
            reason, message = FAULT_STATUS[kind]
            details = {"retryAfterSeconds": faults["retry_after_s"]} if kind == "429" else \
                {"causes": [{"message": "injected fault"}]} if kind == "500" else None
            headers = [("Retry-After", str(faults["retry_after_s"]))] if kind == "429" else []
            body = ApiError(int(kind), reason, message, details).body()
            return self.reply(int(kind), body, headers)
        if kind == "timeout":
            self.server.sim.stopping.wait(faults["hang_ms"] / 1000)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()
        return None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, sim, tls):
        super().__init__(address, Handler)
        self.sim, self.tls = sim, tls

    def finish_request(self, request, client_address):
        if self.tls is not None:
            try:
                request.settimeout(10)
                request = self.tls.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        except (ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            if self.tls is not None:
                request.close()

    def handle_error(self, request, client_address):
        if self.sim.args.verbose:
            super().handle_error(request, client_address)


def tls_context(args):
    if not args.tls_cert:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def parse_args(argv):
    p = argparse.ArgumentParser(description="Kubernetes API server simulator")
    p.add_argument("--state-dir", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--client-ca")
    p.add_argument("--token")
    p.add_argument("--config")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key) or (args.client_ca and not args.tls_cert):
        p.error("--tls-cert and --tls-key go together; --client-ca needs them")
    return args


def load_config(path):
    config = copy.deepcopy(DEFAULT_CONFIG)
    if path:
        with open(path) as f:
            config = merge_config(config, json.load(f))
    return config


def write_url(state_dir, url):
    tmp = os.path.join(state_dir, f".url.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(url)
    os.replace(tmp, os.path.join(state_dir, "url"))


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.state_dir, exist_ok=True)
    try:
        config = load_config(args.config)
    except (OSError, ValueError) as err:
        sys.exit(f"k8s-sim: bad --config: {err}")
    sim = Simulator(args, config)
    server = Server((args.bind, args.port), sim, tls_context(args))
    host = "127.0.0.1" if args.bind in ("0.0.0.0", "") else args.bind
    address = f"{host}:{server.server_address[1]}"
    url = ("https://" if args.tls_cert else "http://") + address
    sim.api = Api(sim.store, sim.kubelet, address)
    sim.kubelet.api_port = server.server_address[1]
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threads = [threading.Thread(target=server.serve_forever, daemon=True),
               threading.Thread(target=sim.run_ticker, daemon=True)]
    for t in threads:
        t.start()
    write_url(args.state_dir, url)
    print(f"k8s-sim listening on {url}", flush=True)
    while not stop.wait(0.5):
        pass
    sim.shutdown()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
