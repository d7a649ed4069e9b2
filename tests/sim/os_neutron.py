"""Neutron (network v2.0) front end of the OpenStack simulator, served under
/network: networks, subnets, ports (read only), security groups and rules,
floating IPs. Paths, codes, filters and NeutronError bodies follow
https://docs.openstack.org/api-ref/network/v2/."""

import ipaddress

import os_neutron_fip
import os_netmodel as net
from os_http import HttpError, Response, Route, Service
from os_neutron_list import listing

TYPES = {400: "HTTPBadRequest", 401: "HTTPUnauthorized", 403: "HTTPForbidden",
         404: "HTTPNotFound", 405: "HTTPMethodNotAllowed", 409: "HTTPConflict",
         429: "HTTPTooManyRequests", 500: "HTTPInternalServerError",
         503: "HTTPServiceUnavailable"}
DEFAULT_MESSAGES = {
    500: "Request Failed: internal server error while processing your request.",
    503: "The server is currently unavailable. Please try again at a later time.",
    429: "Too many requests, please retry later."}
PROTOCOLS = {"ah", "dccp", "egp", "esp", "gre", "hopopt", "icmp", "igmp", "ipip", "ipv6-encap",
             "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
             "ospf", "pgm", "rsvp", "sctp", "tcp", "udp", "udplite", "vrrp", "any"}
PORT_PROTOCOLS = {"tcp", "udp", "sctp", "udplite", "dccp", "6", "17", "132", "136", "33"}


class Neutron(Service):
    name = "network"
    prefix = "/network"

    def __init__(self):
        v = "/v2.0"
        self.routes = [
            Route("GET", "/", versions, public=True),
            Route("GET", v, resources),
            Route("GET", v + "/networks", list_networks),
            Route("GET", v + "/networks/{id}", show_network),
            Route("GET", v + "/subnets", list_subnets),
            Route("GET", v + "/subnets/{id}", show_subnet),
            Route("GET", v + "/ports", list_ports),
            Route("GET", v + "/ports/{id}", show_port),
            Route("GET", v + "/security-groups", list_sgs),
            Route("POST", v + "/security-groups", create_sg),
            Route("GET", v + "/security-groups/{id}", show_sg),
            Route("PUT", v + "/security-groups/{id}", update_sg),
            Route("DELETE", v + "/security-groups/{id}", delete_sg),
            Route("GET", v + "/security-group-rules", list_rules),
            Route("POST", v + "/security-group-rules", create_rule),
            Route("GET", v + "/security-group-rules/{id}", show_rule),
            Route("DELETE", v + "/security-group-rules/{id}", delete_rule),
        ] + os_neutron_fip.routes(v)

    def find_route(self, method, path):
        if path.endswith(".json"):  # neutronclient's legacy suffix
            path = path[:-5]
        return super().find_route(method, path)

    def error(self, status, message, **kw):
        """{"NeutronError": {"type", "message", "detail"}}."""
        body = {"NeutronError": {"type": kw.get("type") or TYPES.get(status, "HTTPError"),
                                 "message": message or DEFAULT_MESSAGES.get(status, "Error"),
                                 "detail": ""}}
        return HttpError(Response(status, body))



def fail(status, type_, message):
    return SERVICE.error(status, message, type=type_)


def project_of(ctx):
    return ctx.auth["project"]["id"]


def body_of(ctx, key):
    body = ctx.json()
    item = body.get(key) if isinstance(body, dict) else None
    if not isinstance(item, dict):
        raise fail(400, "HTTPBadRequest", "Resource body required")
    return item


# ----- versions, networks, subnets, ports ----------------------------------------------
def versions(ctx):
    return Response(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
        {"href": ctx.base("/network/v2.0/"), "rel": "self"}]}]})


def resources(ctx):
    names = [("network", "networks"), ("subnet", "subnets"), ("port", "ports"),
             ("security_group", "security-groups"),
             ("security_group_rule", "security-group-rules"), ("floatingip", "floatingips")]
    return Response(200, {"resources": [
        {"name": single, "collection": coll,
         "links": [{"href": ctx.base("/network/v2.0/" + coll), "rel": "self"}]}
        for single, coll in names]})


def _visible_net(ctx, net_id):
    for item in net.visible_networks(ctx.state, project_of(ctx)):
        if item["id"] == net_id:
            return item
    raise fail(404, "NetworkNotFound", "Network %s could not be found." % net_id)


def list_networks(ctx):
    return listing(ctx, "networks", net.visible_networks(ctx.state, project_of(ctx)))


def show_network(ctx):
    return Response(200, {"network": _visible_net(ctx, ctx.params["id"])})


def _visible_subnets(ctx):
    ids = {n["id"] for n in net.visible_networks(ctx.state, project_of(ctx))}
    return [s for s in ctx.state.subnets.values() if s["network_id"] in ids]


def list_subnets(ctx):
    return listing(ctx, "subnets", _visible_subnets(ctx))


def show_subnet(ctx):
    for subnet in _visible_subnets(ctx):
        if subnet["id"] == ctx.params["id"]:
            return Response(200, {"subnet": subnet})
    raise fail(404, "SubnetNotFound", "Subnet %s could not be found." % ctx.params["id"])


def project_ports(ctx):
    return [p for p in ctx.state.ports.values() if p["project_id"] == project_of(ctx)]


def find_port(ctx, port_id):
    for port in project_ports(ctx):
        if port["id"] == port_id:
            return port
    raise fail(404, "PortNotFound", "Port %s could not be found." % port_id)


def list_ports(ctx):
    return listing(ctx, "ports", project_ports(ctx))


def show_port(ctx):
    return Response(200, {"port": find_port(ctx, ctx.params["id"])})


# ----- security groups -----------------------------------------------------------------
def sg_view(state, sg):
    view = {k: v for k, v in sg.items() if k != "is_default"}
    view["security_group_rules"] = net.sg_rules(state, sg["id"])
    return view


def project_sgs(ctx):
    net.ensure_default_sg(ctx.state, project_of(ctx))
    return [g for g in ctx.state.secgroups.values() if g["project_id"] == project_of(ctx)]


def find_sg(ctx, sg_id):
    for sg in project_sgs(ctx):
        if sg["id"] == sg_id:
            return sg
    raise fail(404, "SecurityGroupNotFound", "Security group %s does not exist" % sg_id)


def list_sgs(ctx):
    return listing(ctx, "security_groups", [sg_view(ctx.state, g) for g in project_sgs(ctx)])


def show_sg(ctx):
    return Response(200, {"security_group": sg_view(ctx.state, find_sg(ctx, ctx.params["id"]))})


def create_sg(ctx):
    """POST /security-groups: 201 with the two default egress rules."""
    req = body_of(ctx, "security_group")
    name, desc = req.get("name", ""), req.get("description", "")
    if not isinstance(name, str) or not isinstance(desc, str):
        raise fail(400, "HTTPBadRequest", "Invalid input for name or description.")
    if name == "default":
        raise fail(409, "SecurityGroupDefaultAlreadyExists",
                   "Default security group already exists.")
    quota = ctx.state.quota("security_groups")
    if 0 <= quota <= len(project_sgs(ctx)):
        raise over_quota("security_group")
    sg = net.create_sg(ctx.state, project_of(ctx), name, desc)
    return Response(201, {"security_group": sg_view(ctx.state, sg)})


def update_sg(ctx):
    sg = find_sg(ctx, ctx.params["id"])
    req = body_of(ctx, "security_group")
    for key in ("name", "description"):
        if isinstance(req.get(key), str):
            sg[key] = req[key]
    net.touch(sg)
    return Response(200, {"security_group": sg_view(ctx.state, sg)})


def delete_sg(ctx):
    """DELETE /security-groups/{id}: 204; 409 while a port still uses it."""
    sg = find_sg(ctx, ctx.params["id"])
    if sg.get("is_default"):
        raise fail(409, "SecurityGroupCannotRemoveDefault",
                   "Insufficient rights for removing default security group.")
    if net.sg_in_use(ctx.state, sg["id"]):
        raise fail(409, "SecurityGroupInUse", "Security Group %s in use." % sg["id"])
    for rule in list(ctx.state.sgrules.values()):
        if sg["id"] in (rule["security_group_id"], rule["remote_group_id"]):
            del ctx.state.sgrules[rule["id"]]
    del ctx.state.secgroups[sg["id"]]
    return Response(204)


def over_quota(resource):
    return fail(409, "OverQuota", "Quota exceeded for resources: ['%s']." % resource)


# ----- security group rules ------------------------------------------------------------
def project_rules(ctx):
    project_sgs(ctx)
    return [r for r in ctx.state.sgrules.values() if r["project_id"] == project_of(ctx)]


def find_rule(ctx, rule_id):
    for rule in project_rules(ctx):
        if rule["id"] == rule_id:
            return rule
    raise fail(404, "SecurityGroupRuleNotFound", "Security group rule %s does not exist"
               % rule_id)


def list_rules(ctx):
    return listing(ctx, "security_group_rules", project_rules(ctx))


def show_rule(ctx):
    return Response(200, {"security_group_rule": find_rule(ctx, ctx.params["id"])})


def delete_rule(ctx):
    rule = find_rule(ctx, ctx.params["id"])
    del ctx.state.sgrules[rule["id"]]
    return Response(204)


def _invalid(field, value, reason):
    return fail(400, "HTTPBadRequest", "Invalid input for %s. Reason: %s." % (field, reason)
                if reason else "Invalid input for %s: %s." % (field, value))


def _rule_spec(ctx, req):
    spec = {k: req.get(k) for k in ("direction", "ethertype", "protocol", "port_range_min",
                                    "port_range_max", "remote_ip_prefix", "remote_group_id",
                                    "description")}
    if spec["direction"] not in ("ingress", "egress"):
        raise _invalid("direction", spec["direction"], "'%s' is not in ['ingress', 'egress']"
                       % spec["direction"])
    spec["ethertype"] = spec["ethertype"] or "IPv4"
    if spec["ethertype"] not in ("IPv4", "IPv6"):
        raise _invalid("ethertype", spec["ethertype"], "'%s' is not in ['IPv4', 'IPv6']"
                       % spec["ethertype"])
    _check_protocol(spec)
    _check_ports(spec)
    _check_remote(ctx, spec)
    return spec


def _check_protocol(spec):
    proto = spec["protocol"]
    if proto is None:
        return
    proto = str(proto).lower()
    if proto not in PROTOCOLS and not (proto.isdigit() and 0 <= int(proto) <= 255):
        raise fail(400, "SecurityGroupRuleInvalidProtocol",
                   "Security group rule protocol %s not supported. Only protocol values %s "
                   "and integer representations [0 to 255] are supported."
                   % (proto, sorted(PROTOCOLS)))
    spec["protocol"] = proto


def _check_ports(spec):
    low, high = spec["port_range_min"], spec["port_range_max"]
    if low is None and high is None:
        return
    if spec["protocol"] is None:
        raise fail(400, "SecurityGroupProtocolRequiredWithPorts",
                   "Must also specify protocol if port range is given.")
    try:
        low = None if low is None else int(low)
        high = None if high is None else int(high)
    except (TypeError, ValueError):
        raise _invalid("port_range_min", low, "")
    spec["port_range_min"], spec["port_range_max"] = low, high
    if spec["protocol"] in PORT_PROTOCOLS:
        if low is None or high is None or not 0 < low <= high <= 65535:
            raise fail(400, "SecurityGroupInvalidPortRange",
                       "For TCP/UDP protocols, port_range_min must be <= port_range_max")


def _check_remote(ctx, spec):
    prefix = spec["remote_ip_prefix"]
    if prefix is not None and spec["remote_group_id"] is not None:
        raise fail(400, "SecurityGroupRemoteGroupAndRemoteIpPrefix",
                   "Only remote_ip_prefix or remote_group_id may be provided.")
    if spec["remote_group_id"] is not None:
        find_sg(ctx, spec["remote_group_id"])
    if prefix is None:
        return
    try:
        cidr = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        raise _invalid("remote_ip_prefix", prefix, "'%s' is not a valid IP subnet" % prefix)
    if ("IPv%d" % cidr.version) != spec["ethertype"]:
        raise fail(400, "SecurityGroupRuleParameterConflict",
                   "Conflicting value ethertype %s for CIDR %s" % (spec["ethertype"], prefix))
    spec["remote_ip_prefix"] = str(cidr)


DUP_KEYS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
            "remote_ip_prefix", "remote_group_id")


def create_rule(ctx):
    """POST /security-group-rules: 201; 409 SecurityGroupRuleExists on duplicates."""
    req = body_of(ctx, "security_group_rule")
    sg = find_sg(ctx, req.get("security_group_id"))
    spec = _rule_spec(ctx, req)
    for rule in net.sg_rules(ctx.state, sg["id"]):
        if all(rule[k] == spec[k] for k in DUP_KEYS):
            raise fail(409, "SecurityGroupRuleExists",
                       "Security group rule already exists. Rule id is %s." % rule["id"])
    quota = ctx.state.quota("security_group_rules")
    if 0 <= quota <= len(project_rules(ctx)):
        raise over_quota("security_group_rule")
    rule = net.add_rule(ctx.state, sg, spec)
    return Response(201, {"security_group_rule": rule})


SERVICE = Neutron()
