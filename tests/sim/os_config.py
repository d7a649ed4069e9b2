"""Default configuration of the OpenStack simulator and its normalisation
(ids filled in, users/projects/app credentials resolved). The config is a
plain JSON-able dict; --config FILE and PUT /_sim/config merge into it."""

import copy
import ipaddress

from os_util import deep_merge, stable_hex_id

DEFAULT_ERROR_FAULT = (
    "Exceeded maximum number of retries. Exhausted all hosts available for "
    "retrying build failures for instance {id}.")

# Fixed image ids so that fixtures and humans can recognise them.
UBUNTU_ID = "6c4f1a6e-2f0b-4d7e-9d43-0c6b1b9a1c01"
UBUNTU_CUDA_ID = "6c4f1a6e-2f0b-4d7e-9d43-0c6b1b9a1c02"


def _flavor(name, vcpus, ram, disk, extra_specs=None):
    return {"id": name, "name": name, "vcpus": vcpus, "ram": ram,
            "disk": disk, "ephemeral": 0, "swap": 0,
            "extra_specs": extra_specs or {}}


DEFAULTS = {
    "domains": [{"id": "default", "name": "Default"}],
    "users": [
        {"name": "demo", "password": "secret", "domain": "Default",
         "roles": ["member", "reader"]},
        {"name": "admin", "password": "secret", "domain": "Default",
         "roles": ["admin", "member", "reader"]},
    ],
    "projects": [
        {"name": "demo", "domain": "Default"},
        {"name": "admin", "domain": "Default"},
    ],
    "app_credentials": [
        {"id": "3b1d2f0e9c8a4b7d8e6f5a4b3c2d1e0f", "name": "demo-appcred",
         "secret": "appsecret", "user": "demo", "project": "demo"},
    ],
    "token_ttl_s": 3600,
    "revoke_tokens_after_s": None,
    "catalog_omit": [],
    "flavors": [
        _flavor("m1.small", 2, 4096, 20),
        _flavor("m1.large", 8, 16384, 80),
        _flavor("g1.a100x1", 8, 65536, 100, {"pci_passthrough:alias": "a100:1"}),
        _flavor("g1.a100x2", 16, 131072, 100, {"pci_passthrough:alias": "a100:2"}),
        _flavor("g1.t4x1", 4, 16384, 50, {"pci_passthrough:alias": "t4:1"}),
    ],
    "images": [
        {"id": UBUNTU_ID, "name": "ubuntu-22.04", "size": 2361393152,
         "min_disk": 0, "min_ram": 0},
        {"id": UBUNTU_CUDA_ID, "name": "ubuntu-22.04-cuda", "size": 9663676416,
         "min_disk": 20, "min_ram": 0},
    ],
    "hosts": [
        {"name": "cmp1", "vcpus": 64, "ram_mb": 524288, "pci": {"a100": 4, "t4": 0}},
        {"name": "cmp2", "vcpus": 32, "ram_mb": 262144, "pci": {"t4": 2}},
    ],
    "quotas": {"instances": 10, "cores": 64, "ram": 524288, "key_pairs": 100,
               "floating_ips": 10, "security_groups": 10,
               "security_group_rules": 100},
    "build_ms": 300,
    "delete_ms": 100,
    "boot": "none",
    "fixed_cidr": "10.0.0.0/24",
    "floating_cidr": "172.24.4.0/24",
    "latency_ms": [0, 0],
    "stuck_build_rate": 0.0,
    "error_rate": 0.0,
    "error_fault": DEFAULT_ERROR_FAULT,
    "faults": {"rate": 0.0, "kinds": ["500", "503", "429", "reset", "timeout"],
               "methods": [], "services": ["identity", "compute", "network", "image"],
               "when": "before", "hang_ms": 40000, "retry_after_s": 1,
               "seed": None},
}


def merged(base, patch):
    """Merge a user patch into a config and re-normalise it."""
    return normalise(deep_merge(base, patch or {}))


def default_config():
    return normalise(copy.deepcopy(DEFAULTS))


FAULT_KINDS = {"500", "503", "429", "reset", "timeout"}
SERVICES = {"identity", "compute", "network", "image"}


def normalise(cfg):
    """Fill ids and defaults inside the list entries, then validate."""
    cfg = copy.deepcopy(cfg)
    try:
        _fill(cfg)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError("malformed config entry: %r" % (exc,))
    validate(cfg)
    return cfg


def _fill(cfg):
    for dom in cfg["domains"]:
        dom.setdefault("id", dom["name"].lower())
    for user in cfg["users"]:
        user.setdefault("id", stable_hex_id("user", user["name"]))
        user.setdefault("domain", "Default")
        user.setdefault("roles", ["member", "reader"])
    for proj in cfg["projects"]:
        proj.setdefault("id", stable_hex_id("project", proj["name"]))
        proj.setdefault("domain", "Default")
    for cred in cfg["app_credentials"]:
        cred.setdefault("id", stable_hex_id("appcred", cred["name"]))
    for flv in cfg["flavors"]:
        flv.setdefault("id", flv["name"])
        for key, val in (("disk", 0), ("ephemeral", 0), ("swap", 0), ("extra_specs", {})):
            flv.setdefault(key, val)
    for img in cfg["images"]:
        img.setdefault("id", stable_hex_id("image", img["name"]))
    for host in cfg["hosts"]:
        host.setdefault("pci", {})


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(ok, message):
    if not ok:
        raise ValueError(message)


def validate(cfg):
    """Reject unknown keys, wrong types and impossible values (ValueError)."""
    for key in cfg:
        _check(key in DEFAULTS, "unknown config key %r" % key)
    for key, default in DEFAULTS.items():
        value = cfg[key]
        if default is None:
            _check(value is None or _is_number(value), "%s must be a number or null" % key)
        elif _is_number(default):
            _check(_is_number(value) and value >= 0, "%s must be a number >= 0" % key)
        else:
            _check(isinstance(value, type(default)), "%s must be a %s" % (key, type(default).__name__))
    _check(cfg["boot"] in ("none", "exec"), "boot must be 'none' or 'exec'")
    _check(len(cfg["latency_ms"]) == 2 and all(_is_number(v) for v in cfg["latency_ms"]),
           "latency_ms must be [min, max]")
    for key in ("fixed_cidr", "floating_cidr"):
        try:
            _check(ipaddress.ip_network(cfg[key], strict=False).version == 4, key + " must be IPv4")
        except ValueError as exc:
            raise ValueError("%s: %s" % (key, exc))
    _validate_faults(cfg["faults"])
    _validate_entries(cfg)


def _validate_faults(faults):
    for key in faults:
        _check(key in DEFAULTS["faults"], "unknown faults key %r" % key)
    _check(_is_number(faults.get("rate", 0)) and 0 <= faults.get("rate", 0) <= 1,
           "faults.rate must be within [0, 1]")
    _check(set(faults.get("kinds", [])) <= FAULT_KINDS, "faults.kinds: one of %s" % sorted(FAULT_KINDS))
    _check(set(faults.get("services", [])) <= SERVICES, "faults.services: one of %s" % sorted(SERVICES))
    _check(faults.get("when", "before") in ("before", "after", "mixed"),
           "faults.when must be before, after or mixed")
    _check(faults.get("seed") is None or isinstance(faults["seed"], int), "faults.seed: int or null")


def _validate_entries(cfg):
    for flv in cfg["flavors"]:
        _check(all(isinstance(flv.get(k), int) for k in ("vcpus", "ram", "disk")),
               "flavor %s needs integer vcpus, ram, disk" % flv.get("name"))
        _check(isinstance(flv["extra_specs"], dict), "flavor extra_specs must be an object")
    for host in cfg["hosts"]:
        _check(isinstance(host.get("vcpus"), int) and isinstance(host.get("ram_mb"), int),
               "host %s needs integer vcpus and ram_mb" % host.get("name"))
        _check(all(isinstance(n, int) for n in host["pci"].values()), "host pci counts: integers")
    for entry in cfg["users"] + cfg["projects"]:
        _check(find_domain(cfg, entry["domain"]) is not None,
               "unknown domain %r of %s" % (entry["domain"], entry["name"]))


def find_domain(cfg, ref):
    """ref is a domain name or id (or a {"name"|"id"} dict)."""
    if isinstance(ref, dict):
        ref = ref.get("id") or ref.get("name")
    for dom in cfg["domains"]:
        if ref in (dom["id"], dom["name"]):
            return dom
    return None


def find_by(entries, **match):
    for entry in entries:
        if all(entry.get(k) == v for k, v in match.items()):
            return entry
    return None
