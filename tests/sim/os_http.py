"""HTTP layer of the OpenStack simulator: request context, routing, the
keystonemiddleware-like token check, latency/fault injection, statistics and
the ThreadingHTTPServer request handler that ties the services together."""

import json
import os
import re
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from os_util import dumps, new_uuid

UNAUTHORIZED_MSG = "The request you have made requires authentication."


class Response:
    """A response to send: status, JSON-able body (or bytes), extra headers."""

    def __init__(self, status, body=None, headers=None, content_type="application/json"):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        self.content_type = content_type

    def payload(self):
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return dumps(self.body)


class HttpError(Exception):
    """Raised by handlers to answer with an error response."""

    def __init__(self, response):
        super().__init__(response.status)
        self.response = response


class Route:
    """METHOD + path template such as /servers/{id}/action."""

    def __init__(self, method, template, handler, public=False):
        self.method = method
        self.template = template
        self.handler = handler
        self.public = public
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
        self.regex = re.compile("^" + pattern + "$")

    def match(self, path):
        m = self.regex.match(path)
        if not m:
            return None
        return {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}


class Context:
    """Everything a service handler needs about one request."""

    def __init__(self, state, service, method, path, query, headers, body):
        self.state = state
        self.service = service
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.raw_body = body
        self.params = {}
        self.auth = None
        self.microversion = None
        self._json = None

    def q(self, name, default=None):
        values = self.query.get(name)
        return values[0] if values else default

    def json(self):
        """Parsed JSON body; a service-shaped 400 when it is not JSON."""
        if self._json is None:
            try:
                self._json = json.loads(self.raw_body.decode() or "null")
            except (ValueError, UnicodeDecodeError):
                raise self.service.error(400, "Malformed request body")
        return self._json

    def base(self, service_path=""):
        return self.state.url + service_path

    def int_q(self, name, default=None, minimum=0):
        """An integer query parameter; a service-shaped 400 when malformed."""
        raw = self.q(name)
        if raw is None:
            return default
        try:
            value = int(raw)
            if value < minimum:
                raise ValueError
        except ValueError:
            raise self.service.error(400, "Invalid %s parameter: %s" % (name, raw),
                                     accept=self.headers.get("Accept"))
        return value


class Service:
    """Base for the four API services; subclasses set name/prefix/routes."""

    name = ""
    prefix = ""
    routes = []
    url = ""  # the simulator's public URL, set once it listens

    def error(self, status, message, **kw):
        raise NotImplementedError

    def before(self, ctx):
        """Hook run before routing (e.g. Nova microversion negotiation)."""

    def after(self, ctx, resp):
        """Hook run on every response of the service (e.g. version headers)."""

    def find_route(self, method, path):
        allowed = False
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, params
            allowed = True
        return None, allowed


def unauthorized(state, service):
    """keystonemiddleware's 401 (same JSON shape for every service)."""
    body = {"error": {"code": 401, "title": "Unauthorized", "message": UNAUTHORIZED_MSG}}
    hdr = {"WWW-Authenticate": 'Keystone uri="%s/identity"' % state.url}
    return HttpError(Response(401, body, hdr))


def check_token(ctx):
    """Validate X-Auth-Token like keystonemiddleware does (project scope)."""
    token = ctx.state.tokens_valid(ctx.headers.get("X-Auth-Token"))
    if token is None or token.get("project") is None:
        raise unauthorized(ctx.state, ctx.service.name)
    ctx.auth = token


def dispatch(ctx):
    """Route ctx to its handler and return a Response (errors included)."""
    service = ctx.service
    try:
        route, params = service.find_route(ctx.method, ctx.path)
        if route is None:
            status = 405 if params else 404
            raise service.error(status, "The resource could not be found."
                                if status == 404 else "Method not allowed.",
                                accept=ctx.headers.get("Accept"))
        ctx.params = params
        if not route.public:
            check_token(ctx)
        service.before(ctx)
        resp = route.handler(ctx)
    except HttpError as err:
        resp = err.response
    except Exception:  # a simulator bug: answer like the service would
        traceback.print_exc()
        resp = service.error(500, None, accept=ctx.headers.get("Accept")).response
    service.after(ctx, resp)
    return resp


VERSION_SEGMENT = re.compile(r"^/v\d+(\.\d+)?(?=/|$)")


def route_name(service, method, path):
    """Stats key such as "POST /servers": the route template without its
    API version segment (version documents are named by service prefix)."""
    route, _ = service.find_route(method, path)
    template = VERSION_SEGMENT.sub("", route.template if route else path)
    if template in ("", "/"):
        template = service.prefix
    return "%s %s" % (method, template)


class FaultPlan:
    """One fault decision: which kind and whether before or after the effect."""

    def __init__(self, kind, when):
        self.kind = kind
        self.when = when


def plan_fault(state, service_name, method):
    """Roll the faults knob for an API request (never for /_sim)."""
    cfg = state.config["faults"]
    if not cfg.get("rate") or service_name not in cfg.get("services", []):
        return None
    if cfg.get("methods") and method not in cfg["methods"]:
        return None
    rng = state.fault_rng
    if rng.random() >= cfg["rate"] or not cfg.get("kinds"):
        return None
    when = cfg.get("when", "before")
    if when == "mixed":
        when = rng.choice(["before", "after"])
    return FaultPlan(rng.choice(cfg["kinds"]), when)


def fault_response(state, service, kind, accept):
    """An injected 500/503/429 in the service's own error shape."""
    status = int(kind)
    retry = state.config["faults"].get("retry_after_s", 1)
    resp = service.error(status, None, retry_after=retry, accept=accept).response
    if status == 429:
        resp.headers["Retry-After"] = str(retry)
    return resp


class Handler(BaseHTTPRequestHandler):
    """Reads a request, hands it to a service or to /_sim, writes the answer."""

    protocol_version = "HTTP/1.1"
    server_version = "openstack-sim/1.0"
    timeout = 300  # idle keep-alive connections are dropped after this

    def setup(self):
        super().setup()
        if hasattr(self.connection, "do_handshake"):  # TLS: handshake here
            self.connection.settimeout(10)
            self.connection.do_handshake()
            self.connection.settimeout(self.timeout)

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("openstack-sim: %s\n" % (fmt % args))

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self.read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def read_chunked(self):
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def handle_any(self):
        state = self.server.state
        body = self.read_body()
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path.rstrip("/") or "/"
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        if path == "/_sim" or path.startswith("/_sim/"):
            import os_inspect
            with state.lock:
                resp = os_inspect.handle(state, self.command, path, body)
            return self.send(resp)
        service, rest = self.server.find_service(path)
        if service is None:
            return self.send(Response(404, {"error": {"code": 404, "title": "Not Found",
                                                      "message": "No such service"}}))
        self.handle_api(state, service, rest, query, body)

    def handle_api(self, state, service, path, query, body):
        self.sleep_latency(state)
        with state.lock:
            state.count_request(route_name(service, self.command, path))
            plan = plan_fault(state, service.name, self.command)
        if plan and plan.when == "before":
            return self.apply_fault(state, service, plan)
        ctx = Context(state, service, self.command, path, query, self.headers, body)
        with state.lock:
            resp = dispatch(ctx)
        if plan:
            return self.apply_fault(state, service, plan)
        self.send(resp)

    def sleep_latency(self, state):
        low, high = state.config.get("latency_ms") or [0, 0]
        if high > 0:
            with state.lock:
                delay = state.rng.uniform(low, high)
            time.sleep(delay / 1000.0)

    def apply_fault(self, state, service, plan):
        with state.lock:
            state.count_fault(plan.kind)
            hang = state.config["faults"].get("hang_ms", 40000) / 1000.0
        if plan.kind == "reset":
            return self.reset_connection()
        if plan.kind == "timeout":
            time.sleep(hang)
            return self.drop_connection()
        with state.lock:
            resp = fault_response(state, service, plan.kind, self.headers.get("Accept"))
        self.send(resp)

    def reset_connection(self):
        """Close with SO_LINGER 0 so that the peer sees a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
        except OSError:
            pass

    def drop_connection(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send(self, resp):
        payload = resp.payload()
        self.send_response(resp.status)
        if payload or resp.status != 204:
            self.send_header("Content-Type", resp.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Openstack-Request-Id", "req-" + new_uuid())
        for key, value in resp.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)


class SimServer(ThreadingHTTPServer):
    """ThreadingHTTPServer holding the state and the service prefix table."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, state, services, verbose=False, ssl_context=None):
        self.state = state
        self.services = services
        self.verbose = verbose
        self.ssl_context = ssl_context
        super().__init__(address, Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            # Handshake lazily in the worker thread, not in the accept loop.
            sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)

    def find_service(self, path):
        for service in self.services:
            if path == service.prefix or path.startswith(service.prefix + "/"):
                return service, path[len(service.prefix):] or "/"
        return None, None


def serve_in_thread(server):
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="openstack-sim-http", daemon=True)
    thread.start()
    return thread
