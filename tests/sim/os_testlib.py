"""Helpers for the OpenStack simulator contract tests: start/stop the
simulator as a real subprocess, a small keep-alive HTTP(S) JSON client,
fixture loading, and shape_matches (reference example vs. response)."""

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.path.join(HERE, "openstack_sim.py")
FIXTURES = os.path.join(HERE, "contract", "openstack")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


def read_text(path):
    """File content, or None while it does not exist yet."""
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


def shape_mismatches(example, actual, path="$", free_form=()):
    """Key paths of example missing from actual or of another JSON type.
    null in the example accepts any type; lists compare their first elements
    (an empty actual list matches). Paths listed in free_form are maps whose
    keys are data (metadata, extra_specs, addresses): each actual value is
    compared with the example's first value instead."""
    if example is None:
        return []
    if isinstance(example, dict):
        if not isinstance(actual, dict):
            return ["%s: expected object, got %s" % (path, type(actual).__name__)]
        if path in free_form:
            return _free_form(example, actual, path, free_form)
        out = []
        for key, value in example.items():
            if key not in actual:
                out.append("%s.%s: missing" % (path, key))
            else:
                out += shape_mismatches(value, actual[key], "%s.%s" % (path, key), free_form)
        return out
    if isinstance(example, list):
        if not isinstance(actual, list):
            return ["%s: expected list, got %s" % (path, type(actual).__name__)]
        if example and actual:
            return shape_mismatches(example[0], actual[0], path + "[0]", free_form)
        return []
    if _json_type(example) != _json_type(actual):
        return ["%s: expected %s, got %s (%r)" % (path, _json_type(example),
                                                  _json_type(actual), actual)]
    return []


def _free_form(example, actual, path, free_form):
    if not example:
        return []
    model = next(iter(example.values()))
    out = []
    for key, value in actual.items():
        out += shape_mismatches(model, value, "%s.%s" % (path, key), free_form)
    return out


def _json_type(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__


class Reply:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.body = json.loads(raw.decode()) if raw else None
        except ValueError:
            self.body = None

    def header(self, name):
        return self.headers.get(name.lower())


class Client:
    """Keep-alive JSON client; one connection, re-opened after errors."""

    def __init__(self, base_url, cafile=None, timeout=10):
        self.base = base_url
        parsed = urllib.parse.urlsplit(base_url)
        self.https = parsed.scheme == "https"
        self.host, self.port = parsed.hostname, parsed.port
        self.ctx = ssl.create_default_context(cafile=cafile) if self.https else None
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        if self.https:
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=self.ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method, url, body=None, headers=None, raw_body=None):
        if url.startswith("/"):
            url = self.base + url
        parsed = urllib.parse.urlsplit(url)
        target = parsed.path + ("?" + parsed.query if parsed.query else "")
        hdrs = {"Accept": "application/json"}
        hdrs.update(headers or {})
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if self.conn is None:
            self.conn = self._connect()
        try:
            self.conn.request(method, target, body=data, headers=hdrs)
            resp = self.conn.getresponse()
            raw = resp.read()
        except Exception:
            self.close()
            raise
        headers = {k.lower(): v for k, v in resp.getheaders()}
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(resp.status, headers, raw)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Sim:
    """The simulator as a subprocess with its own state dir."""

    def __init__(self, config=None, extra_args=()):
        self.tmp = tempfile.TemporaryDirectory(prefix="openstack-sim-test-")
        self.state_dir = os.path.join(self.tmp.name, "state")
        args = [sys.executable, SIM, "--state-dir", self.state_dir, "--port", "0"]
        if config is not None:
            path = os.path.join(self.tmp.name, "config.json")
            with open(path, "w") as f:
                json.dump(config, f)
            args += ["--config", path]
        self.stderr_path = os.path.join(self.tmp.name, "stderr.log")
        self.stderr_text = ""
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(args + list(extra_args), stdout=subprocess.PIPE,
                                         stderr=err, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("openstack-sim listening on "):
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            err_text = read_text(self.stderr_path)
            self.tmp.cleanup()
            raise RuntimeError("simulator did not start: %r %s" % (line, err_text))
        self.url = line.split(" on ", 1)[1].strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr_text = read_text(self.stderr_path) or ""
        self.tmp.cleanup()
        return self.proc.returncode

    def stop_clean(self):
        """stop(); an AssertionError unless exit 0 and no traceback was logged."""
        code = self.stop()
        if code != 0 or "Traceback" in self.stderr_text:
            raise AssertionError("simulator exit %s, stderr:\n%s" % (code, self.stderr_text))


def wait_for(predicate, timeout=5.0, interval=0.03):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


def password_auth(user="demo", password="secret", project="demo", domain="Default"):
    return {"auth": {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"name": domain}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
