"""Network model of the OpenStack simulator, shared by the Nova and Neutron
front ends: default networks/subnets, ports with fixed IPs, security groups
and their rules, floating IPs and their association to ports. Records are
kept in (almost) the Neutron v2.0 API shape."""

import ipaddress
import random
import time

from os_util import iso_seconds, new_uuid

RESERVED_HOSTS = 2  # .1 gateway, .2 DHCP / router gateway port


def _stamp(record, revision=1):
    now = iso_seconds(time.time())
    record.update({"created_at": now, "updated_at": now, "revision_number": revision,
                   "tags": []})
    return record


def touch(record):
    record["updated_at"] = iso_seconds(time.time())
    record["revision_number"] = record.get("revision_number", 0) + 1


def _network(name, project_id, external, shared):
    return _stamp({
        "id": new_uuid(), "name": name, "status": "ACTIVE", "admin_state_up": True,
        "subnets": [], "shared": shared, "router:external": external,
        "project_id": project_id, "tenant_id": project_id, "mtu": 1450,
        "availability_zone_hints": [], "availability_zones": ["nova"],
        "ipv4_address_scope": None, "ipv6_address_scope": None, "description": "",
        "port_security_enabled": True, "is_default": external, "l2_adjacency": True})


def _subnet(network, name, cidr):
    net = ipaddress.ip_network(cidr, strict=False)
    hosts = list(net.hosts())
    return _stamp({
        "id": new_uuid(), "name": name, "network_id": network["id"], "ip_version": 4,
        "cidr": str(net), "gateway_ip": str(hosts[0]),
        "allocation_pools": [{"start": str(hosts[1]), "end": str(hosts[-1])}],
        "enable_dhcp": not network["router:external"], "dns_nameservers": [],
        "host_routes": [], "ipv6_ra_mode": None, "ipv6_address_mode": None,
        "subnetpool_id": None, "project_id": network["project_id"],
        "tenant_id": network["project_id"], "description": "", "service_types": []}, 0)


def create_default_networks(state):
    """A shared private network and an external "public" one, plus a router."""
    projects = state.config["projects"]
    owner = projects[0]["id"] if projects else ""
    admin = next((p["id"] for p in projects if p["name"] == "admin"), owner)
    for name, cidr, external in (("private", state.config["fixed_cidr"], False),
                                 ("public", state.config["floating_cidr"], True)):
        net = _network(name, admin if external else owner, external, not external)
        sub = _subnet(net, name + "-subnet", cidr)
        net["subnets"].append(sub["id"])
        state.networks[net["id"]] = net
        state.subnets[sub["id"]] = sub
    state.router_id = new_uuid()


def network_by_name(state, name):
    return next((n for n in state.networks.values() if n["name"] == name), None)


def external_network(state):
    return next((n for n in state.networks.values() if n["router:external"]), None)


def visible_networks(state, project_id):
    return [n for n in state.networks.values()
            if n["shared"] or n["router:external"] or n["project_id"] == project_id]


# ----- addresses ------------------------------------------------------------------------
def used_addresses(state, subnet_id):
    used = set()
    for port in state.ports.values():
        used.update(ip["ip_address"] for ip in port["fixed_ips"] if ip["subnet_id"] == subnet_id)
    for fip in state.fips.values():
        used.add(fip["floating_ip_address"])
    return used


def allocate_ip(state, subnet):
    used = used_addresses(state, subnet["id"])
    hosts = ipaddress.ip_network(subnet["cidr"]).hosts()
    for index, addr in enumerate(hosts):
        if index >= RESERVED_HOSTS and str(addr) not in used:
            return str(addr)
    return None


def new_mac():
    return "fa:16:3e:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))


# ----- ports ----------------------------------------------------------------------------
def create_port(state, network, project_id, device_id, sg_ids):
    """A compute port with one fixed IP; None when the subnet is full."""
    subnet = state.subnets[network["subnets"][0]]
    address = allocate_ip(state, subnet)
    if address is None:
        return None
    port = _stamp({
        "id": new_uuid(), "name": "", "network_id": network["id"], "mac_address": new_mac(),
        "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": address}],
        "device_id": device_id, "device_owner": "compute:nova", "status": "DOWN",
        "admin_state_up": True, "security_groups": list(sg_ids), "project_id": project_id,
        "tenant_id": project_id, "binding:vnic_type": "normal", "allowed_address_pairs": [],
        "extra_dhcp_opts": [], "description": "", "port_security_enabled": True,
        "dns_name": "", "dns_assignment": [], "qos_policy_id": None})
    state.ports[port["id"]] = port
    return port


def delete_port(state, port_id):
    """Remove a port; its floating IPs are disassociated, not deleted."""
    for fip in state.fips.values():
        if fip["port_id"] == port_id:
            disassociate(state, fip)
    state.ports.pop(port_id, None)


def server_ports(state, server_id):
    return [p for p in state.ports.values() if p["device_id"] == server_id]


# ----- floating IPs ---------------------------------------------------------------------
def port_fip(state, port_id):
    return next((f for f in state.fips.values() if f["port_id"] == port_id), None)


def associate(state, fip, port, fixed_ip=None):
    fip["port_id"] = port["id"]
    fip["fixed_ip_address"] = fixed_ip or port["fixed_ips"][0]["ip_address"]
    fip["router_id"] = state.router_id
    fip["status"] = "ACTIVE"
    touch(fip)
    _notify_server(state, port["device_id"], fip["floating_ip_address"])


def disassociate(state, fip):
    port = state.ports.get(fip["port_id"] or "")
    fip.update({"port_id": None, "fixed_ip_address": None, "router_id": None,
                "status": "DOWN"})
    touch(fip)
    if port is not None:
        _notify_server(state, port["device_id"], "")


def _notify_server(state, server_id, address):
    """Keep DIR/servers/<id>/floating_ip current for a booted server."""
    server = state.servers.get(server_id)
    if server is not None and server.get("booted"):
        state.boot.write_floating_ip(server_id, address)


def server_floating_ip(state, server_id):
    for port in server_ports(state, server_id):
        fip = port_fip(state, port["id"])
        if fip:
            return fip["floating_ip_address"]
    return ""


def port_details(state, fip):
    port = state.ports.get(fip["port_id"] or "")
    if port is None:
        return None
    keys = ("name", "network_id", "mac_address", "admin_state_up", "status",
            "device_id", "device_owner")
    return {k: port[k] for k in keys}


# ----- security groups ------------------------------------------------------------------
def create_sg(state, project_id, name, description=""):
    sg = _stamp({"id": new_uuid(), "name": name, "description": description,
                 "project_id": project_id, "tenant_id": project_id, "stateful": True,
                 "shared": False})
    state.secgroups[sg["id"]] = sg
    for ethertype in ("IPv4", "IPv6"):
        add_rule(state, sg, {"direction": "egress", "ethertype": ethertype})
    return sg


def ensure_default_sg(state, project_id):
    """Neutron creates a project's "default" group on first use."""
    for sg in state.secgroups.values():
        if sg["project_id"] == project_id and sg.get("is_default"):
            return sg
    sg = create_sg(state, project_id, "default", "Default security group")
    sg["is_default"] = True
    for ethertype in ("IPv4", "IPv6"):
        add_rule(state, sg, {"direction": "ingress", "ethertype": ethertype,
                             "remote_group_id": sg["id"]})
    return sg


def add_rule(state, sg, spec):
    rule = _stamp({
        "id": new_uuid(), "security_group_id": sg["id"], "direction": spec["direction"],
        "ethertype": spec.get("ethertype", "IPv4"), "protocol": spec.get("protocol"),
        "port_range_min": spec.get("port_range_min"),
        "port_range_max": spec.get("port_range_max"),
        "remote_ip_prefix": spec.get("remote_ip_prefix"),
        "remote_group_id": spec.get("remote_group_id"), "remote_address_group_id": None,
        "description": spec.get("description") or "", "project_id": sg["project_id"],
        "tenant_id": sg["project_id"]}, 0)
    state.sgrules[rule["id"]] = rule
    touch(sg)
    return rule


def sg_rules(state, sg_id):
    return [r for r in state.sgrules.values() if r["security_group_id"] == sg_id]


def sg_in_use(state, sg_id):
    return any(sg_id in p["security_groups"] for p in state.ports.values())


def find_sg(state, project_id, ref):
    """By id, else by name (first match), as Nova resolves server groups."""
    groups = [g for g in state.secgroups.values() if g["project_id"] == project_id]
    for sg in groups:
        if sg["id"] == ref:
            return sg
    return next((sg for sg in groups if sg["name"] == ref), None)
