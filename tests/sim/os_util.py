"""Small helpers shared by the OpenStack simulator modules: ids, timestamps,
atomic file writes and JSON encoding."""

import json
import os
import secrets
import string
import tempfile
import time
import uuid


def new_uuid():
    """Dashed UUID, as Nova, Neutron and Glance use for resource ids."""
    return str(uuid.uuid4())


def new_hex_id():
    """32 hex digits, as Keystone uses for user/project/credential ids."""
    return uuid.uuid4().hex


def stable_hex_id(kind, name):
    """Deterministic Keystone-style id for config entries that give none."""
    return uuid.uuid5(uuid.NAMESPACE_URL, "openstack-sim/%s/%s" % (kind, name)).hex


def new_token_id():
    """Opaque token id shaped like a Fernet token (urlsafe, ~180 chars)."""
    return "gAAAAA" + secrets.token_urlsafe(132)


def random_password(length=12):
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def iso_seconds(ts):
    """Nova/Neutron/Glance timestamp: 2017-02-14T19:23:58Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def iso_micro(ts):
    """Keystone timestamp with microseconds: 2015-11-07T02:58:43.578887Z."""
    micro = int(round((ts - int(ts)) * 1e6)) % 1000000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(ts))) + ".%06dZ" % micro


def iso_micro_naive(ts):
    """Nova OS-SRV-USG:launched_at format: 2017-02-14T19:23:59.895661 (no Z)."""
    return iso_micro(ts)[:-1]


def atomic_write(path, data):
    """Write bytes or text to path via a temp file in the same dir + rename."""
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def dumps(obj):
    return json.dumps(obj, indent=None, separators=(", ", ": ")).encode()


def deep_merge(base, patch):
    """Recursive dict merge; lists and scalars in patch replace base values."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
