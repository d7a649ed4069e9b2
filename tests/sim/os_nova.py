"""Nova (compute v2.1) front end of the OpenStack simulator, served under
/compute: microversion negotiation (2.1 .. 2.79), flavors, key pairs,
servers (create/list/show/delete, os-getConsoleOutput) and limits. Paths,
codes and error bodies follow https://docs.openstack.org/api-ref/compute/."""

import base64
import binascii
import re
import time

import os_lifecycle
import os_netmodel
import os_nova_keys
import os_nova_views as views
from os_config import find_by
from os_http import HttpError, Response, Route, Service
from os_util import new_uuid, random_password

MIN_VERSION, MAX_VERSION = (2, 1), (2, 79)
# Nova's wsgi.Fault names by status ("Faults" in the compute API guide).
FAULT_NAMES = {400: "badRequest", 401: "unauthorized", 403: "forbidden", 404: "itemNotFound",
               405: "badMethod", 409: "conflictingRequest", 413: "overLimit",
               415: "badMediaType", 429: "overLimit", 501: "notImplemented",
               503: "serviceUnavailable"}
DEFAULT_MESSAGES = {
    500: "Unexpected API Error. Please report this at http://bugs.launchpad.net/nova/ and "
         "attach the Nova API log if possible.\n<class 'oslo_db.exception.DBConnectionError'>",
    503: "Service Unavailable", 429: "This request was rate-limited."}
LEGACY_PROJECT = re.compile(r"^/v2\.1/([0-9a-f]{32}|[0-9a-f-]{36})(/.*)?$")


def version_string(v):
    return "%d.%d" % v


class Nova(Service):
    name = "compute"
    prefix = "/compute"

    def __init__(self):
        v = "/v2.1"
        self.routes = [
            Route("GET", "/", versions, public=True),
            Route("GET", v, version, public=True),
            Route("GET", v + "/flavors", list_flavors),
            Route("GET", v + "/flavors/detail", list_flavors_detail),
            Route("GET", v + "/flavors/{id}", show_flavor),
            Route("GET", v + "/flavors/{id}/os-extra_specs", flavor_extra_specs),
            Route("GET", v + "/flavors/{id}/os-extra_specs/{key}", flavor_extra_spec),
            Route("GET", v + "/os-keypairs", os_nova_keys.list_keypairs),
            Route("POST", v + "/os-keypairs", os_nova_keys.create_keypair),
            Route("GET", v + "/os-keypairs/{name}", os_nova_keys.show_keypair),
            Route("DELETE", v + "/os-keypairs/{name}", os_nova_keys.delete_keypair),
            Route("GET", v + "/servers", list_servers),
            Route("POST", v + "/servers", create_server),
            Route("GET", v + "/servers/detail", list_servers_detail),
            Route("GET", v + "/servers/{id}", show_server),
            Route("DELETE", v + "/servers/{id}", delete_server),
            Route("POST", v + "/servers/{id}/action", server_action),
            Route("GET", v + "/limits", show_limits),
        ]

    def find_route(self, method, path):
        m = LEGACY_PROJECT.match(path)
        if m and not path.startswith(("/v2.1/servers", "/v2.1/flavors")):
            path = "/v2.1" + (m.group(2) or "")
        return super().find_route(method, path)

    def error(self, status, message, **kw):
        """Nova fault body: {"<faultName>": {"code", "message"}}."""
        inner = {"code": status, "message": message or DEFAULT_MESSAGES.get(status, "Error")}
        if status == 429:
            inner["retryAfter"] = str(kw.get("retry_after", 1))
        return HttpError(Response(status, {FAULT_NAMES.get(status, "computeFault"): inner}))

    def before(self, ctx):
        ctx.microversion = negotiate(ctx)

    def after(self, ctx, resp):
        if ctx.microversion is None:  # keystonemiddleware or routing answered
            return
        v = version_string(ctx.microversion)
        resp.headers["OpenStack-API-Version"] = "compute " + v
        resp.headers["X-OpenStack-Nova-API-Version"] = v
        resp.headers["Vary"] = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"



def fail(status, message):
    return SERVICE.error(status, message)


def negotiate(ctx):
    """Microversion from OpenStack-API-Version or X-OpenStack-Nova-API-Version."""
    raw = None
    header = ctx.headers.get("OpenStack-API-Version")
    if header:
        parts = header.strip().split()
        if len(parts) == 2 and parts[0].lower() == "compute":
            raw = parts[1]
    if raw is None:
        raw = ctx.headers.get("X-OpenStack-Nova-API-Version")
    if not raw:
        return MIN_VERSION
    if raw.strip().lower() == "latest":
        return MAX_VERSION
    m = re.match(r"^(\d+)\.(\d+)$", raw.strip())
    if not m:
        raise fail(400, "API Version String %s is of invalid format. Must be of format "
                   "MajorNum.MinorNum." % raw)
    requested = (int(m.group(1)), int(m.group(2)))
    if not MIN_VERSION <= requested <= MAX_VERSION:
        raise fail(406, "Version %s is not supported by the API. Minimum is %s and maximum "
                   "is %s." % (raw, version_string(MIN_VERSION), version_string(MAX_VERSION)))
    return requested


# ----- versions ("API Versions") -------------------------------------------------------
def _version_doc(ctx):
    return {"id": "v2.1", "status": "CURRENT", "version": version_string(MAX_VERSION),
            "min_version": version_string(MIN_VERSION), "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": ctx.base("/compute/v2.1/")},
                      {"rel": "describedby", "type": "text/html",
                       "href": "http://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


def versions(ctx):
    return Response(200, {"versions": [_version_doc(ctx)]})


def version(ctx):
    return Response(200, {"version": _version_doc(ctx)})


# ----- flavors -------------------------------------------------------------------------
def find_flavor(ctx, ref):
    flavor_id = str(ref).rstrip("/").rsplit("/", 1)[-1]
    return find_by(ctx.state.config["flavors"], id=flavor_id)


def _flavors(ctx):
    flavors = sorted(ctx.state.config["flavors"], key=lambda f: f["id"])
    min_ram, min_disk = ctx.int_q("minRam", 0), ctx.int_q("minDisk", 0)
    return [f for f in flavors if f["ram"] >= min_ram and f["disk"] >= min_disk]


def list_flavors(ctx):
    return Response(200, {"flavors": [views.flavor_brief(ctx, f) for f in _flavors(ctx)]})


def list_flavors_detail(ctx):
    return Response(200, {"flavors": [views.flavor_detail(ctx, f) for f in _flavors(ctx)]})


def _flavor_or_404(ctx):
    flavor = find_flavor(ctx, ctx.params["id"])
    if flavor is None:
        raise fail(404, "Flavor %s could not be found." % ctx.params["id"])
    return flavor


def show_flavor(ctx):
    return Response(200, {"flavor": views.flavor_detail(ctx, _flavor_or_404(ctx))})


def flavor_extra_specs(ctx):
    return Response(200, {"extra_specs": dict(_flavor_or_404(ctx).get("extra_specs", {}))})


def flavor_extra_spec(ctx):
    specs = _flavor_or_404(ctx).get("extra_specs", {})
    key = ctx.params["key"]
    if key not in specs:
        raise fail(404, "Flavor %s has no extra specs with key %s." % (ctx.params["id"], key))
    return Response(200, {key: specs[key]})


# ----- servers: lookup and listing -----------------------------------------------------
def find_server(ctx, server_id):
    server = ctx.state.servers.get(server_id)
    if server is None or server["project_id"] != ctx.auth["project"]["id"]:
        raise fail(404, "Instance %s could not be found." % server_id)
    return server


def _match_filters(ctx, server):
    name = ctx.q("name")
    if name is not None:
        try:
            if not re.search(name, server["name"]):
                return False
        except re.error:
            return False
    status = ctx.q("status")
    if status is not None and server["status"] != status.upper():
        return False
    flavor, image = ctx.q("flavor"), ctx.q("image")
    if flavor is not None and server["flavor"]["id"] != flavor:
        return False
    return image is None or server["image_id"] == image


def _listed(ctx):
    """Servers of the project, newest first, filtered and paginated."""
    project_id = ctx.auth["project"]["id"]
    servers = [s for s in ctx.state.servers.values()
               if s["project_id"] == project_id and _match_filters(ctx, s)]
    servers.sort(key=lambda s: (s["created"], s["seq"]), reverse=True)
    marker = ctx.q("marker")
    if marker is not None:
        ids = [s["id"] for s in servers]
        if marker not in ids:
            raise fail(400, "marker [%s] not found" % marker)
        servers = servers[ids.index(marker) + 1:]
    limit = ctx.int_q("limit")
    more = False
    if limit is not None:
        more = len(servers) > limit
        servers = servers[:limit]
    return servers, more


def _list_response(ctx, servers, more, view, path):
    body = {"servers": [view(ctx, s) for s in servers]}
    if more and servers:
        body["servers_links"] = [{"rel": "next", "href": ctx.base(
            "/compute/v2.1/%s?limit=%s&marker=%s" % (path, ctx.q("limit"), servers[-1]["id"]))}]
    return Response(200, body)


def list_servers(ctx):
    servers, more = _listed(ctx)
    return _list_response(ctx, servers, more, views.server_brief, "servers")


def list_servers_detail(ctx):
    servers, more = _listed(ctx)
    return _list_response(ctx, servers, more, views.server_detail, "servers/detail")


def show_server(ctx):
    return Response(200, {"server": views.server_detail(ctx, find_server(ctx, ctx.params["id"]))})


def delete_server(ctx):
    """DELETE /servers/{id}: 204, task_state deleting, gone after delete_ms."""
    server = find_server(ctx, ctx.params["id"])
    os_lifecycle.start_delete(ctx.state, server, time.monotonic())
    return Response(204)


# ----- servers: create -----------------------------------------------------------------
def _server_body(ctx):
    body = ctx.json()
    server = body.get("server") if isinstance(body, dict) else None
    if not isinstance(server, dict):
        raise fail(400, "Invalid input for field/attribute server. Value: %s. "
                   "'server' is a required property" % body)
    name = server.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise fail(400, "Invalid input for field/attribute name. Value: %s." % name)
    for key in ("min_count", "max_count"):
        if str(server.get(key, 1)) != "1":
            raise fail(400, "The simulator supports only min_count = max_count = 1.")
    return server


def _image(ctx, server):
    ref = server.get("imageRef")
    if not ref:
        raise fail(400, "Missing imageRef attribute")
    image_id = str(ref).rstrip("/").rsplit("/", 1)[-1]
    image = find_by(ctx.state.config["images"], id=image_id)
    if image is None or image.get("status", "active") != "active":
        raise fail(400, "Image %s could not be found." % image_id)
    return image


def _flavor_for(ctx, server, image):
    flavor = find_flavor(ctx, server.get("flavorRef", ""))
    if flavor is None:
        raise fail(400, "Flavor %s could not be found." % server.get("flavorRef"))
    if flavor["disk"] and flavor["disk"] < image.get("min_disk", 0):
        raise fail(400, "Flavor's disk is smaller than the minimum size specified in image "
                   "metadata. Flavor disk is %d bytes, minimum size is %d bytes."
                   % (flavor["disk"] << 30, image["min_disk"] << 30))
    if flavor["ram"] < image.get("min_ram", 0):
        raise fail(400, "Flavor's memory is too small for requested image.")
    return flavor


def _user_data(server):
    data = server.get("user_data")
    if data is None:
        return None
    try:
        if not isinstance(data, str) or len(data) > 65535:
            raise ValueError
        base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error):
        raise fail(400, "User data needs to be valid base 64.")
    return data


def _metadata(server):
    meta = server.get("metadata", {})
    ok = isinstance(meta, dict) and all(
        isinstance(k, str) and isinstance(v, str) and 0 < len(k) <= 255 and len(v) <= 255
        for k, v in meta.items())
    if not ok:
        raise fail(400, "Invalid input for field/attribute metadata. Value: %s." % meta)
    return dict(meta)


def _key_name(ctx, server):
    key_name = server.get("key_name")
    if key_name is not None and (ctx.auth["user"]["id"], key_name) not in ctx.state.keypairs:
        raise fail(400, "Invalid key_name provided.")
    return key_name


def _requested_networks(ctx, server):
    """Networks to plug, per the "networks" rules of microversions < / >= 2.37."""
    state = ctx.state
    nets = server.get("networks")
    if views.at_least(ctx, 37) and nets is None:
        raise fail(400, "Invalid input for field/attribute server. 'networks' is a required "
                   "property")
    if nets == "none" and views.at_least(ctx, 37):
        return []
    if nets is None or (nets == "auto" and views.at_least(ctx, 37)):
        own = [n for n in os_netmodel.visible_networks(state, ctx.auth["project"]["id"])
               if not n["router:external"]]
        if len(own) > 1:
            raise fail(409, "Multiple possible networks found, use a Network ID to be more "
                       "specific.")
        return own
    if not isinstance(nets, list):
        raise fail(400, "Invalid input for field/attribute networks. Value: %s." % nets)
    return [_network_ref(ctx, item) for item in nets]


def _network_ref(ctx, item):
    if not isinstance(item, dict) or not (item.get("uuid") or item.get("port")):
        raise fail(400, "Invalid input for field/attribute networks. Value: %s." % item)
    if item.get("port"):
        raise fail(400, "Port %s could not be found." % item["port"])
    visible = os_netmodel.visible_networks(ctx.state, ctx.auth["project"]["id"])
    net = next((n for n in visible if n["id"] == item["uuid"]), None)
    if net is None:
        raise fail(400, "Network %s could not be found." % item["uuid"])
    if net["router:external"] and not ctx.auth["is_admin"]:
        raise fail(403, "Policy doesn't allow network:attach_external_network to be performed.")
    return net


def _security_groups(ctx, server):
    refs = server.get("security_groups") or [{"name": "default"}]
    project_id = ctx.auth["project"]["id"]
    os_netmodel.ensure_default_sg(ctx.state, project_id)
    groups = []
    for ref in refs:
        name = ref.get("name") if isinstance(ref, dict) else None
        if not name:
            raise fail(400, "Invalid input for field/attribute security_groups.")
        matches = [g for g in ctx.state.secgroups.values()
                   if g["project_id"] == project_id and name in (g["id"], g["name"])]
        if not matches:
            raise fail(400, "Security group %s not found." % name)
        if len(matches) > 1 and not any(g["id"] == name for g in matches):
            raise fail(409, "Multiple security groups found matching '%s'. Use an ID to be "
                       "more specific." % name)
        groups.append(next((g for g in matches if g["id"] == name), matches[0]))
    return list({g["id"]: g for g in groups}.values())


def _check_quota(ctx, flavor):
    usage = os_lifecycle.project_usage(ctx.state, ctx.auth["project"]["id"])
    for resource, requested in (("instances", 1), ("cores", flavor["vcpus"]),
                                ("ram", flavor["ram"])):
        allowed = ctx.state.quota(resource)
        if allowed >= 0 and usage[resource] + requested > allowed:
            raise fail(403, "Quota exceeded for %s: Requested %d, but already used %d of %d "
                       "%s" % (resource, requested, usage[resource], allowed, resource))


def create_server(ctx):
    """POST /servers ("Create Server"): 202 and the server in BUILD."""
    state = ctx.state
    req = _server_body(ctx)
    image = _image(ctx, req)
    flavor = _flavor_for(ctx, req, image)
    record = {
        "user_data": _user_data(req), "metadata": _metadata(req),
        "key_name": _key_name(ctx, req)}
    disk_config = req.get("OS-DCF:diskConfig", "MANUAL")
    if disk_config not in ("AUTO", "MANUAL"):
        raise fail(400, "Invalid input for field/attribute OS-DCF:diskConfig.")
    networks = _requested_networks(ctx, req)
    groups = _security_groups(ctx, req)
    _check_quota(ctx, flavor)
    server = _new_record(ctx, req, flavor, image, record, disk_config, groups)
    state.servers[server["id"]] = server
    _plug(state, server, networks, groups)
    os_lifecycle.admit(state, server, time.monotonic())
    self_link = views.links(ctx, "servers", server["id"])[0]["href"]
    return Response(202, {"server": views.server_created(ctx, server)}, {"Location": self_link})


def _new_record(ctx, req, flavor, image, record, disk_config, groups):
    state, now = ctx.state, time.time()
    state.server_seq = getattr(state, "server_seq", 0) + 1
    server_id = new_uuid()
    record.update({
        "id": server_id, "seq": state.server_seq, "name": req["name"],
        "project_id": ctx.auth["project"]["id"], "user_id": ctx.auth["user"]["id"],
        "flavor": dict(flavor), "image_id": image["id"], "disk_config": disk_config,
        "security_groups": [g["name"] for g in groups], "description": req.get("description"),
        "tags": list(req.get("tags", [])), "status": "BUILD", "vm_state": "building",
        "task_state": "spawning", "power_state": os_lifecycle.NOSTATE, "created": now,
        "updated": now, "host": None, "claim": None, "admin_pass": random_password(),
        "instance_name": "instance-%08x" % state.server_seq,
        "hostname": re.sub(r"[^a-z0-9-]+", "-", req["name"].lower()).strip("-")[:63],
        "reservation_id": "r-" + random_password(8).lower()})
    return record


def _plug(state, server, networks, groups):
    for net in networks:
        port = os_netmodel.create_port(state, net, server["project_id"], server["id"],
                                       [g["id"] for g in groups])
        if port is None:  # subnet exhausted: the build fails later, like Nova
            server["outcome_override"] = "Build of instance %s aborted: Failed to allocate " \
                                         "the network(s), not rescheduling." % server["id"]


# ----- actions -------------------------------------------------------------------------
def server_action(ctx):
    server = find_server(ctx, ctx.params["id"])
    body = ctx.json()
    if not isinstance(body, dict) or len(body) != 1:
        raise fail(400, "Malformed request body")
    action, args = next(iter(body.items()))
    if action == "os-getConsoleOutput":
        return console_output(ctx, server, args or {})
    raise fail(400, "There is no such action: %s" % action)


def console_output(ctx, server, args):
    """"Show Console Output (os-getConsoleOutput Action)"."""
    length = args.get("length") if isinstance(args, dict) else None
    try:
        length = None if length is None else int(length)
    except (TypeError, ValueError):
        raise fail(400, "Invalid input for field/attribute length. Value: %s." % length)
    if length is not None and length < -1:
        raise fail(400, "Invalid input for field/attribute length. Value: %s." % length)
    if server["status"] != "ACTIVE":
        raise fail(409, "Instance %s is not ready" % server["id"])
    tail = None if length in (None, -1) else length
    return Response(200, {"output": ctx.state.boot.console_tail(server["id"], tail)})


def show_limits(ctx):
    return Response(200, views.limits_view(ctx))


SERVICE = Nova()
