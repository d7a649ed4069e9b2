"""Unauthenticated /_sim endpoints of the OpenStack simulator: runtime config
(GET/PUT merge), inventory of live resources (to find leaks), request/fault
statistics and a full reset. Faults and latency never apply here."""

import json

import os_lifecycle
import os_netmodel
from os_http import Response

CIDR_KEYS = ("fixed_cidr", "floating_cidr")


def handle(state, method, path, body):
    route = ROUTES.get((method, path))
    if route is None:
        return Response(404, {"error": "no such simulator endpoint: %s %s" % (method, path)})
    return route(state, body)


def get_config(state, _body):
    return Response(200, state.config)


def put_config(state, body):
    try:
        patch = json.loads(body.decode() or "{}")
        if not isinstance(patch, dict):
            raise ValueError("config patch must be a JSON object")
        renumber = any(k in patch for k in CIDR_KEYS)
        if renumber and (state.ports or state.fips):
            return Response(409, {"error": "fixed_cidr/floating_cidr change needs no ports "
                                           "and no floating IPs (POST /_sim/reset first)"})
        state.set_config(patch)
    except ValueError as exc:
        return Response(400, {"error": "bad config: %s" % exc})
    if renumber:
        state.networks, state.subnets = {}, {}
        os_netmodel.create_default_networks(state)
    return Response(200, state.config)


def inventory(state, _body):
    return Response(200, {
        "servers": [{"id": s["id"], "name": s["name"], "status": s["status"],
                     "task_state": s["task_state"], "host": s["host"],
                     "project_id": s["project_id"], "metadata": s["metadata"]}
                    for s in sorted(state.servers.values(), key=lambda s: s["seq"])],
        "floating_ips": [{"id": f["id"], "address": f["floating_ip_address"],
                          "port_id": f["port_id"], "description": f["description"]}
                         for f in state.fips.values()],
        "security_groups": [{"id": g["id"], "name": g["name"]}
                            for g in state.secgroups.values() if not g.get("is_default")],
        "keypairs": sorted(kp["name"] for kp in state.keypairs.values()),
        "ports": [{"id": p["id"], "device_id": p["device_id"], "network_id": p["network_id"],
                   "fixed_ip": p["fixed_ips"][0]["ip_address"], "status": p["status"]}
                  for p in state.ports.values()],
        "processes": state.boot.live_count(),
        "hosts": [host_view(state, h) for h in state.config["hosts"]],
    })


def host_view(state, host):
    free = os_lifecycle.host_free(state, host)
    return {"name": host["name"], "vcpus_free": free["vcpus"], "ram_mb_free": free["ram"],
            "pci_free": free["pci"]}


def stats(state, _body):
    return Response(200, state.stats)


def reset(state, _body):
    state.reset()
    return Response(200, {"reset": True})


ROUTES = {("GET", "/_sim/config"): get_config, ("PUT", "/_sim/config"): put_config,
          ("GET", "/_sim/inventory"): inventory, ("GET", "/_sim/stats"): stats,
          ("POST", "/_sim/reset"): reset}
