"""Neutron floating IPs of the OpenStack simulator: allocate (optionally
associated), associate/disassociate via PUT, list with filters, show,
delete; quota 409 OverQuota. Follows "Floating IPs (floatingips)" of
https://docs.openstack.org/api-ref/network/v2/."""

import ipaddress

import os_netmodel as net
from os_http import Response, Route
from os_neutron_list import listing
from os_util import new_uuid


def routes(v):
    return [Route("GET", v + "/floatingips", list_fips),
            Route("POST", v + "/floatingips", create_fip),
            Route("GET", v + "/floatingips/{id}", show_fip),
            Route("PUT", v + "/floatingips/{id}", update_fip),
            Route("DELETE", v + "/floatingips/{id}", delete_fip)]


def _n():
    import os_neutron
    return os_neutron


def fip_view(state, fip):
    view = dict(fip)
    view["port_details"] = net.port_details(state, fip)
    return view


def project_fips(ctx):
    pid = _n().project_of(ctx)
    return [f for f in ctx.state.fips.values() if f["project_id"] == pid]


def find_fip(ctx, fip_id):
    for fip in project_fips(ctx):
        if fip["id"] == fip_id:
            return fip
    raise _n().fail(404, "FloatingIPNotFound", "Floating IP %s could not be found" % fip_id)


def list_fips(ctx):
    return listing(ctx, "floatingips", [fip_view(ctx.state, f) for f in project_fips(ctx)])


def show_fip(ctx):
    return Response(200, {"floatingip": fip_view(ctx.state, find_fip(ctx, ctx.params["id"]))})


def _external(ctx, net_id):
    n = _n()
    network = ctx.state.networks.get(net_id or "")
    if network is None:
        raise n.fail(404, "NetworkNotFound", "Network %s could not be found." % net_id)
    if not network["router:external"]:
        raise n.fail(400, "BadRequest", "Bad floatingip request: Network %s is not a valid "
                     "external network." % net_id)
    return network


def _address(ctx, network, wanted):
    n = _n()
    subnet = ctx.state.subnets[network["subnets"][0]]
    if wanted is None:
        address = net.allocate_ip(ctx.state, subnet)
        if address is None:
            raise n.fail(400, "ExternalIpAddressExhausted", "Unable to find any IP address "
                         "on external network %s." % network["id"])
        return address
    try:
        inside = ipaddress.ip_address(wanted) in ipaddress.ip_network(subnet["cidr"])
    except ValueError:
        inside = False
    if not inside:
        raise n.fail(400, "InvalidIpForNetwork", "IP address %s is not a valid IP for any of "
                     "the subnets on the specified network." % wanted)
    if wanted in net.used_addresses(ctx.state, subnet["id"]):
        raise n.fail(409, "IpAddressAlreadyAllocated", "IP address %s already allocated in "
                     "subnet %s" % (wanted, subnet["id"]))
    return wanted


def _associate(ctx, fip, port_id, fixed_ip):
    n = _n()
    port = n.find_port(ctx, port_id)
    other = net.port_fip(ctx.state, port["id"])
    if other is not None and other["id"] != fip["id"]:
        raise n.fail(409, "FloatingIPPortAlreadyAssociated",
                     "Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as "
                     "that fixed IP already has a floating IP on external network %s."
                     % (fip["floating_ip_address"], fip["id"], port["id"],
                        port["fixed_ips"][0]["ip_address"], fip["floating_network_id"]))
    net.associate(ctx.state, fip, port, fixed_ip)


def create_fip(ctx):
    """POST /floatingips: 201; 409 OverQuota past quotas.floating_ips."""
    n = _n()
    req = n.body_of(ctx, "floatingip")
    network = _external(ctx, req.get("floating_network_id"))
    quota = ctx.state.quota("floating_ips")
    if 0 <= quota <= len(project_fips(ctx)):
        raise n.over_quota("floatingip")
    if req.get("port_id"):
        n.find_port(ctx, req["port_id"])
    pid = n.project_of(ctx)
    fip = net._stamp({
        "id": new_uuid(), "floating_ip_address": _address(ctx, network,
                                                          req.get("floating_ip_address")),
        "floating_network_id": network["id"], "router_id": None, "port_id": None,
        "fixed_ip_address": None, "status": "DOWN", "project_id": pid, "tenant_id": pid,
        "description": req.get("description") or "", "dns_domain": req.get("dns_domain", ""),
        "dns_name": req.get("dns_name", ""), "port_forwardings": [], "qos_policy_id": None})
    ctx.state.fips[fip["id"]] = fip
    if req.get("port_id"):
        try:
            _associate(ctx, fip, req["port_id"], req.get("fixed_ip_address"))
        except Exception:
            del ctx.state.fips[fip["id"]]
            raise
    return Response(201, {"floatingip": fip_view(ctx.state, fip)})


def update_fip(ctx):
    """PUT /floatingips/{id}: {"port_id": X} associates, null disassociates."""
    fip = find_fip(ctx, ctx.params["id"])
    req = _n().body_of(ctx, "floatingip")
    if "description" in req:
        fip["description"] = req["description"] or ""
        net.touch(fip)
    if "port_id" in req:
        if req["port_id"] is None:
            if fip["port_id"]:
                net.disassociate(ctx.state, fip)
        else:
            _associate(ctx, fip, req["port_id"], req.get("fixed_ip_address"))
    return Response(200, {"floatingip": fip_view(ctx.state, fip)})


def delete_fip(ctx):
    fip = find_fip(ctx, ctx.params["id"])
    if fip["port_id"]:
        net.disassociate(ctx.state, fip)
    del ctx.state.fips[fip["id"]]
    return Response(204)
