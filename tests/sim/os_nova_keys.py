"""Nova key pairs (os-keypairs) of the OpenStack simulator: import, generate,
list, show, delete, per user, with the per-microversion status codes of
https://docs.openstack.org/api-ref/compute/#keypairs-keypairs."""

import base64
import binascii
import hashlib
import os
import re
import subprocess
import tempfile
import time

import os_nova_views as views
from os_http import Response
from os_util import iso_micro_naive

NAME_RE = re.compile(r"^[a-zA-Z0-9 _.@-]{1,255}$")


def _fail(status, message):
    import os_nova
    return os_nova.fail(status, message)


def fingerprint(public_key):
    """MD5 colon-hex of the key blob, as Nova computes for ssh keys."""
    parts = public_key.strip().split()
    try:
        if len(parts) < 2 or not parts[0].startswith(("ssh-", "ecdsa-")):
            raise ValueError
        blob = base64.b64decode(parts[1], validate=True)
    except (ValueError, binascii.Error):
        raise _fail(400, "Keypair data is invalid: failed to generate fingerprint")
    digest = hashlib.md5(blob).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def generate_keypair():
    """A real ed25519 key via ssh-keygen when present, else a labelled fake."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "key")
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                            "Generated-by-Nova", "-f", path], check=True, timeout=10,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(path) as priv, open(path + ".pub") as pub:
                return priv.read(), pub.read()
    except (OSError, subprocess.SubprocessError):
        blob = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + os.urandom(36)).decode()
        return ("-----BEGIN OPENSSH PRIVATE KEY-----\n(simulated)\n"
                "-----END OPENSSH PRIVATE KEY-----\n",
                "ssh-ed25519 %s Generated-by-Nova\n" % blob)


def _user_keys(ctx):
    uid = ctx.auth["user"]["id"]
    return sorted((kp for (owner, _), kp in ctx.state.keypairs.items() if owner == uid),
                  key=lambda kp: kp["name"])


def list_keypairs(ctx):
    return Response(200, {"keypairs": [{"keypair": views.keypair_view(ctx, kp)}
                                       for kp in _user_keys(ctx)]})


def _find(ctx):
    key = (ctx.auth["user"]["id"], ctx.params["name"])
    kp = ctx.state.keypairs.get(key)
    if kp is None:
        raise _fail(404, "Keypair %s not found for user %s" % (ctx.params["name"], key[0]))
    return key, kp


def show_keypair(ctx):
    _, kp = _find(ctx)
    return Response(200, {"keypair": views.keypair_view(ctx, kp, full=True)})


def delete_keypair(ctx):
    key, _ = _find(ctx)
    del ctx.state.keypairs[key]
    return Response(204 if views.at_least(ctx, 2) else 202)


def create_keypair(ctx):
    """POST /os-keypairs: 200 at 2.1, 201 from 2.2; 409 on a duplicate name."""
    body = ctx.json()
    req = body.get("keypair") if isinstance(body, dict) else None
    if not isinstance(req, dict) or not isinstance(req.get("name"), str):
        raise _fail(400, "Invalid input for field/attribute keypair.")
    name = req["name"]
    if not NAME_RE.match(name):
        raise _fail(400, "Invalid input for field/attribute name. Value: %s." % name)
    uid = ctx.auth["user"]["id"]
    if (uid, name) in ctx.state.keypairs:
        raise _fail(409, "Key pair '%s' already exists." % name)
    quota = ctx.state.quota("key_pairs")
    if 0 <= quota <= len(_user_keys(ctx)):
        raise _fail(403, "Quota exceeded, too many key pairs.")
    private = None
    if "public_key" in req:
        public = req["public_key"]
        if not isinstance(public, str):
            raise _fail(400, "Invalid input for field/attribute public_key.")
    else:
        private, public = generate_keypair()
    kp = _store(ctx, uid, name, public, req.get("type", "ssh"))
    view = views.keypair_view(ctx, kp)
    view["user_id"] = uid
    if private is not None:
        view["private_key"] = private
    return Response(201 if views.at_least(ctx, 2) else 200, {"keypair": view})


def _store(ctx, uid, name, public, key_type):
    state = ctx.state
    state.keypair_seq = getattr(state, "keypair_seq", 0) + 1
    kp = {"name": name, "public_key": public, "fingerprint": fingerprint(public),
          "type": key_type, "user_id": uid, "seq": state.keypair_seq,
          "created_at": iso_micro_naive(time.time())}
    state.keypairs[(uid, name)] = kp
    return kp
