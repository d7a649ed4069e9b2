"""Compute lifecycle of the OpenStack simulator: flavor resource demand
(vCPU, RAM, PCI/GPU devices), first-fit scheduling over the configured hosts,
and the timed BUILD -> ACTIVE/ERROR and delete transitions run by the ticker.

GPU mapping (documented for the driver):
  pci_passthrough:alias "a100:2[,t4:1]"  -> 2 devices of host pci["a100"] ...
  resources:CUSTOM_GPU_<X> "N"           -> N devices of host pci["<x>"] (lower case)
  resources:VGPU "N"                     -> N devices of host pci["<x>"] when the flavor
                                            also has trait:CUSTOM_GPU_<X>=required,
                                            otherwise of host pci["vgpu"]
"""

import base64
import time

import os_netmodel
from os_util import iso_micro_naive, iso_seconds

NO_VALID_HOST = "No valid host was found. There are not enough hosts available."
NOSTATE, RUNNING = 0, 1


def pci_demand(extra_specs):
    demand = {}

    def add(model, count):
        demand[model] = demand.get(model, 0) + count

    for item in filter(None, extra_specs.get("pci_passthrough:alias", "").split(",")):
        model, _, count = item.strip().partition(":")
        add(model.strip().lower(), int(count or 1))
    vgpu_model = "vgpu"
    for key, value in extra_specs.items():
        if key.startswith("trait:CUSTOM_GPU_") and value == "required":
            vgpu_model = key[len("trait:CUSTOM_GPU_"):].lower()
    for key, value in extra_specs.items():
        if key.startswith("resources:CUSTOM_GPU_"):
            add(key[len("resources:CUSTOM_GPU_"):].lower(), int(value))
        elif key == "resources:VGPU":
            add(vgpu_model, int(value))
    return demand


def flavor_demand(flavor):
    return {"vcpus": flavor["vcpus"], "ram": flavor["ram"],
            "pci": pci_demand(flavor.get("extra_specs", {}))}


def host_free(state, host):
    """Free capacity of one configured host after the live claims."""
    free = {"vcpus": host["vcpus"], "ram": host["ram_mb"], "pci": dict(host["pci"])}
    for server in state.servers.values():
        claim = server.get("claim")
        if claim and server["host"] == host["name"]:
            free["vcpus"] -= claim["vcpus"]
            free["ram"] -= claim["ram"]
            for model, count in claim["pci"].items():
                free["pci"][model] = free["pci"].get(model, 0) - count
    return free


def fits(free, demand):
    if free["vcpus"] < demand["vcpus"] or free["ram"] < demand["ram"]:
        return False
    return all(free["pci"].get(m, 0) >= n for m, n in demand["pci"].items())


def pick_host(state, demand):
    for host in state.config["hosts"]:
        if fits(host_free(state, host), demand):
            return host["name"]
    return None


def admit(state, server, now):
    """Schedule a new server and decide how its build ends."""
    demand = flavor_demand(server["flavor"])
    host = pick_host(state, demand)
    server["ready_at"] = now + state.config["build_ms"] / 1000.0
    if server.get("outcome_override"):
        server["outcome"] = "error"
        return
    if host is None:
        server["outcome"] = "novalidhost"
        return
    server["host"], server["claim"] = host, demand
    roll = state.rng.random()
    stuck = state.config.get("stuck_build_rate", 0.0)
    if roll < stuck:
        server["outcome"] = "stuck"
        server["ready_at"] = float("inf")
    elif roll < stuck + state.config.get("error_rate", 0.0):
        server["outcome"] = "error"
    else:
        server["outcome"] = "active"


def tick(state, now):
    for server in list(state.servers.values()):
        if server.get("delete_at") is not None:
            if now >= server["delete_at"]:
                finish_delete(state, server)
        elif server["status"] == "BUILD" and now >= server["ready_at"]:
            finish_build(state, server)


def _set_status(server, status, vm_state, task_state, power_state):
    server.update({"status": status, "vm_state": vm_state, "task_state": task_state,
                   "power_state": power_state, "updated": time.time()})


def finish_build(state, server):
    if server["outcome"] == "active":
        return go_active(state, server)
    if server["outcome"] == "novalidhost":
        message, details = NO_VALID_HOST, "NoValidHost: " + NO_VALID_HOST
    elif server.get("outcome_override"):
        message = server["outcome_override"]
        details = "BuildAbortException: " + message
    else:
        message = state.config.get("error_fault", "").replace("{id}", server["id"])
        message = message.replace(" X.", " %s." % server["id"])
        details = "RescheduledException: " + message
    server["fault"] = {"code": 500, "created": iso_seconds(time.time()),
                       "message": message, "details": details}
    server["host"], server["claim"] = None, None
    _set_status(server, "ERROR", "error", None, NOSTATE)


def go_active(state, server):
    _set_status(server, "ACTIVE", "active", None, RUNNING)
    server["launched_at"] = iso_micro_naive(time.time())
    ports = os_netmodel.server_ports(state, server["id"])
    for port in ports:
        port["status"] = "ACTIVE"
    fixed = ports[0]["fixed_ips"][0]["ip_address"] if ports else ""
    floating = os_netmodel.server_floating_ip(state, server["id"])
    user_data = base64.b64decode(server["user_data"]) if server.get("user_data") else b""
    server["booted"] = True
    state.boot.boot(server, fixed, floating, user_data, state.config.get("boot", "none"))


def start_delete(state, server, now):
    if server.get("delete_at") is None:
        server["delete_at"] = now + state.config["delete_ms"] / 1000.0
        server["task_state"] = "deleting"
        server["updated"] = time.time()


def finish_delete(state, server):
    state.boot.kill(server["id"])
    for port in os_netmodel.server_ports(state, server["id"]):
        os_netmodel.delete_port(state, port["id"])
    del state.servers[server["id"]]


def project_usage(state, project_id):
    """Nova quota usage: every server not yet gone counts, ERROR included."""
    servers = [s for s in state.servers.values() if s["project_id"] == project_id]
    return {"instances": len(servers),
            "cores": sum(s["flavor"]["vcpus"] for s in servers),
            "ram": sum(s["flavor"]["ram"] for s in servers)}
