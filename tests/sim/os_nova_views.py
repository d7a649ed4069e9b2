"""JSON views of the Nova (compute v2.1) front end: servers, flavors, key
pairs and limits, shaped per microversion like the examples of
https://docs.openstack.org/api-ref/compute/ ("Servers", "Flavors",
"Keypairs", "Limits")."""

import hashlib

import os_lifecycle
import os_netmodel
from os_util import iso_seconds


def at_least(ctx, minor):
    return ctx.microversion >= (2, minor)


def links(ctx, collection, item_id):
    return [{"href": ctx.base("/compute/v2.1/%s/%s" % (collection, item_id)), "rel": "self"},
            {"href": ctx.base("/compute/%s/%s" % (collection, item_id)), "rel": "bookmark"}]


# ----- flavors ---------------------------------------------------------------------------
def flavor_brief(ctx, flavor):
    view = {"id": flavor["id"], "name": flavor["name"], "links": links(ctx, "flavors", flavor["id"])}
    if at_least(ctx, 55):
        view["description"] = flavor.get("description")
    return view


def flavor_detail(ctx, flavor):
    """"List Flavors With Details" / "Show Flavor Details"."""
    view = flavor_brief(ctx, flavor)
    swap = flavor.get("swap", 0)
    view.update({
        "vcpus": flavor["vcpus"], "ram": flavor["ram"], "disk": flavor["disk"],
        "OS-FLV-EXT-DATA:ephemeral": flavor.get("ephemeral", 0),
        "OS-FLV-DISABLED:disabled": False, "os-flavor-access:is_public": True,
        "rxtx_factor": 1.0, "swap": swap if (swap or at_least(ctx, 75)) else ""})
    if at_least(ctx, 61):
        view["extra_specs"] = dict(flavor.get("extra_specs", {}))
    return view


def server_flavor(ctx, flavor):
    if at_least(ctx, 47):
        return {"original_name": flavor["name"], "vcpus": flavor["vcpus"], "ram": flavor["ram"],
                "disk": flavor["disk"], "ephemeral": flavor.get("ephemeral", 0),
                "swap": flavor.get("swap", 0),
                "extra_specs": dict(flavor.get("extra_specs", {}))}
    return {"id": flavor["id"], "links": [{"href": ctx.base("/compute/flavors/" + flavor["id"]),
                                            "rel": "bookmark"}]}


# ----- servers ---------------------------------------------------------------------------
def server_brief(ctx, server):
    return {"id": server["id"], "name": server["name"], "links": links(ctx, "servers", server["id"])}


def addresses(state, server):
    """{"<net name>": [fixed..., floating...]} from the server's ports."""
    out = {}
    for port in os_netmodel.server_ports(state, server["id"]):
        net = state.networks.get(port["network_id"])
        entries = out.setdefault(net["name"] if net else port["network_id"], [])
        mac = port["mac_address"]
        for ip in port["fixed_ips"]:
            entries.append({"addr": ip["ip_address"], "version": 4,
                            "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac})
        fip = os_netmodel.port_fip(state, port["id"])
        if fip:
            entries.append({"addr": fip["floating_ip_address"], "version": 4,
                            "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac})
    return out


def host_id(server):
    if not server.get("host"):
        return ""
    return hashlib.sha224((server["project_id"] + server["host"]).encode()).hexdigest()


def fault_view(ctx, fault):
    """Nova hides "details" of 500 faults from non-admin users."""
    view = {k: fault[k] for k in ("code", "created", "message")}
    if ctx.auth["is_admin"] or fault["code"] != 500:
        view["details"] = fault["details"]
    return view


def server_detail(ctx, server):
    """"Show Server Details" (GET /servers/{id}) and "List Servers Detailed"."""
    state = ctx.state
    view = server_brief(ctx, server)
    view.update({
        "status": server["status"], "tenant_id": server["project_id"],
        "user_id": server["user_id"], "metadata": dict(server["metadata"]),
        "hostId": host_id(server), "created": iso_seconds(server["created"]),
        "updated": iso_seconds(server["updated"]), "addresses": addresses(state, server),
        "accessIPv4": "", "accessIPv6": "", "OS-DCF:diskConfig": server["disk_config"],
        "progress": 0, "OS-EXT-AZ:availability_zone": "nova" if server.get("host") else "",
        "config_drive": "", "key_name": server["key_name"],
        "image": {"id": server["image_id"],
                  "links": [{"href": ctx.base("/compute/images/" + server["image_id"]),
                             "rel": "bookmark"}]},
        "flavor": server_flavor(ctx, server["flavor"]),
        "OS-EXT-STS:vm_state": server["vm_state"], "OS-EXT-STS:task_state": server["task_state"],
        "OS-EXT-STS:power_state": server["power_state"],
        "OS-SRV-USG:launched_at": server.get("launched_at"), "OS-SRV-USG:terminated_at": None,
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": n} for n in server["security_groups"]]})
    if server.get("fault"):
        view["fault"] = fault_view(ctx, server["fault"])
    add_versioned(ctx, server, view)
    return view


def add_versioned(ctx, server, view):
    if ctx.auth["is_admin"]:
        view.update({"OS-EXT-SRV-ATTR:host": server.get("host"),
                     "OS-EXT-SRV-ATTR:hypervisor_hostname": server.get("host"),
                     "OS-EXT-SRV-ATTR:instance_name": server["instance_name"]})
        if at_least(ctx, 3):
            view.update({"OS-EXT-SRV-ATTR:hostname": server["hostname"],
                         "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
                         "OS-EXT-SRV-ATTR:launch_index": 0,
                         "OS-EXT-SRV-ATTR:reservation_id": server["reservation_id"],
                         "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                         "OS-EXT-SRV-ATTR:user_data": server.get("user_data")})
        if at_least(ctx, 16):
            view["host_status"] = "UP" if server.get("host") else ""
    if at_least(ctx, 9):
        view["locked"] = False
    if at_least(ctx, 19):
        view["description"] = server.get("description")
    if at_least(ctx, 26):
        view["tags"] = list(server.get("tags", []))
    if at_least(ctx, 63):
        view["trusted_image_certificates"] = None
    if at_least(ctx, 71):
        view["server_groups"] = []
    if at_least(ctx, 73):
        view["locked_reason"] = None


def server_created(ctx, server):
    """"Create Server" response (202)."""
    view = {"id": server["id"], "links": links(ctx, "servers", server["id"]),
            "OS-DCF:diskConfig": server["disk_config"],
            "security_groups": [{"name": n} for n in server["security_groups"]]}
    if server.get("admin_pass"):
        view["adminPass"] = server["admin_pass"]
    return view


# ----- key pairs -------------------------------------------------------------------------
def keypair_view(ctx, kp, full=False):
    view = {"name": kp["name"], "public_key": kp["public_key"], "fingerprint": kp["fingerprint"]}
    if at_least(ctx, 2):
        view["type"] = kp["type"]
    if full:
        view.update({"user_id": kp["user_id"], "id": kp["seq"], "created_at": kp["created_at"],
                     "deleted": False, "deleted_at": None, "updated_at": None})
    return view


# ----- limits ----------------------------------------------------------------------------
def limits_view(ctx):
    """"Show Rate And Absolute Limits" (GET /limits)."""
    state, project_id = ctx.state, ctx.auth["project"]["id"]
    usage = os_lifecycle.project_usage(state, project_id)
    q = state.quota
    absolute = {
        "maxServerMeta": 128, "maxImageMeta": 128, "maxTotalCores": q("cores"),
        "maxTotalInstances": q("instances"), "maxTotalRAMSize": q("ram"),
        "maxTotalKeypairs": q("key_pairs"), "maxServerGroups": 10,
        "maxServerGroupMembers": 10, "totalCoresUsed": usage["cores"],
        "totalInstancesUsed": usage["instances"], "totalRAMUsed": usage["ram"],
        "totalServerGroupsUsed": 0}
    if not at_least(ctx, 36):
        absolute.update({
            "maxSecurityGroups": q("security_groups"),
            "maxSecurityGroupRules": q("security_group_rules"),
            "maxTotalFloatingIps": q("floating_ips"),
            "totalSecurityGroupsUsed": sum(1 for g in state.secgroups.values()
                                           if g["project_id"] == project_id),
            "totalFloatingIpsUsed": sum(1 for f in state.fips.values()
                                        if f["project_id"] == project_id)})
    if not at_least(ctx, 57):
        absolute.update({"maxPersonality": 5, "maxPersonalitySize": 10240})
    return {"limits": {"rate": [], "absolute": absolute}}
