"""Keystone v3 front end of the OpenStack simulator (served under /identity):
version documents, token issue (password, application_credential, token),
validation, revocation, and the service catalog. Shapes follow
https://docs.openstack.org/api-ref/identity/v3/ (sections "Authentication and
token management" and "Application credentials")."""

import time

import os_config
from os_http import HttpError, Response, Route, Service, UNAUTHORIZED_MSG
from os_util import iso_micro, new_token_id, stable_hex_id

TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}

DEFAULT_MESSAGES = {
    500: "An unexpected error prevented the server from fulfilling your request.",
    503: "The service is temporarily unavailable.", 429: "Too many requests."}

# service type -> (name, path under the simulator URL)
CATALOG = [("compute", "nova", "/compute/v2.1"), ("network", "neutron", "/network"),
           ("image", "glance", "/image"), ("identity", "keystone", "/identity")]
INTERFACES = ("public", "internal", "admin")
MEDIA_TYPES = [{"base": "application/json",
                "type": "application/vnd.openstack.identity-v3+json"}]


class Keystone(Service):
    name = "identity"
    prefix = "/identity"

    def __init__(self):
        self.routes = [
            Route("GET", "/", versions, public=True),
            Route("GET", "/v3", version, public=True),
            Route("POST", "/v3/auth/tokens", issue_token, public=True),
            Route("GET", "/v3/auth/tokens", validate_token, public=True),
            Route("DELETE", "/v3/auth/tokens", revoke_token, public=True),
            Route("GET", "/v3/auth/catalog", get_catalog, public=True),
            Route("GET", "/v3/auth/projects", get_projects, public=True),
        ]

    def error(self, status, message, **kw):
        """Keystone error body: {"error": {"code", "title", "message"}}."""
        body = {"error": {"code": status, "title": TITLES.get(status, "Error"),
                          "message": message or DEFAULT_MESSAGES.get(status, "Error")}}
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Keystone uri="%s/identity"' % self.url
        return HttpError(Response(status, body, headers))



def fail(status, message=None):
    if status == 401 and message is None:
        message = UNAUTHORIZED_MSG
    return SERVICE.error(status, message)


# ----- version documents ("Versions" in the api-ref) -----------------------------------
def _version_doc(ctx):
    return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": ctx.base("/identity/v3/")}],
            "media-types": MEDIA_TYPES}


def versions(ctx):
    return Response(300, {"versions": {"values": [_version_doc(ctx)]}})


def version(ctx):
    return Response(200, {"version": _version_doc(ctx)})


# ----- identities ----------------------------------------------------------------------
def _require(obj, key, kind=dict):
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise fail(400, "Invalid input for field '%s': '%s' is a required property"
                   % (key, key))
    return value


def _domain_ref(cfg, ref):
    if not isinstance(ref, dict) or not (ref.get("id") or ref.get("name")):
        raise fail(400, "Invalid input for field 'domain'.")
    return os_config.find_domain(cfg, ref)


def _user_by_ref(cfg, ref):
    """A user from {"id"} or {"name", "domain": {"id"|"name"}}; None if unknown."""
    if ref.get("id"):
        return os_config.find_by(cfg["users"], id=ref["id"])
    if not ref.get("name"):
        raise fail(400, "Invalid input for field 'user'.")
    dom = _domain_ref(cfg, ref.get("domain"))
    user = os_config.find_by(cfg["users"], name=ref["name"])
    if user is None or dom is None or os_config.find_domain(cfg, user["domain"]) is not dom:
        return None
    return user


def password_identity(state, identity):
    ref = _require(_require(identity, "password"), "user")
    user = _user_by_ref(state.config, ref)
    if user is None or ref.get("password") != user.get("password"):
        raise fail(401)
    return user, None


def app_credential_identity(state, identity):
    ref = _require(identity, "application_credential")
    cfg = state.config
    if ref.get("id"):
        cred = os_config.find_by(cfg["app_credentials"], id=ref["id"])
    elif ref.get("name") and isinstance(ref.get("user"), dict):
        user = _user_by_ref(cfg, ref["user"])
        cred = user and next((c for c in cfg["app_credentials"] if c["name"] == ref["name"]
                              and c["user"] in (user["name"], user["id"])), None)
    else:
        raise fail(400, "Invalid input for field 'application_credential'.")
    if cred is None or ref.get("secret") != cred.get("secret"):
        raise fail(401)
    user = (os_config.find_by(cfg["users"], name=cred["user"])
            or os_config.find_by(cfg["users"], id=cred["user"]))
    project = (os_config.find_by(cfg["projects"], name=cred["project"])
               or os_config.find_by(cfg["projects"], id=cred["project"]))
    if user is None or project is None:
        raise fail(401)
    return user, (project, cred)


def token_identity(state, identity):
    ref = _require(identity, "token")
    token = state.tokens_valid(ref.get("id"))
    if token is None:
        raise fail(404, "Could not find token: %s." % ref.get("id"))
    user = os_config.find_by(state.config["users"], id=token["user"]["id"])
    if user is None:
        raise fail(401)
    return user, None


METHODS = {"password": password_identity,
           "application_credential": app_credential_identity,
           "token": token_identity}


# ----- scope ---------------------------------------------------------------------------
def resolve_scope(state, scope, user):
    """The project a token is scoped to (None for unscoped)."""
    cfg = state.config
    if scope is None or scope == "unscoped":
        return None
    project_ref = scope.get("project") if isinstance(scope, dict) else None
    if not isinstance(project_ref, dict):
        raise fail(401, "Only project scope is supported by the simulator.")
    if project_ref.get("id"):
        project = os_config.find_by(cfg["projects"], id=project_ref["id"])
    else:
        dom = _domain_ref(cfg, project_ref.get("domain"))
        project = os_config.find_by(cfg["projects"], name=project_ref.get("name"))
        if project is not None and os_config.find_domain(cfg, project["domain"]) is not dom:
            project = None
    if project is None:
        raise fail(401, "Could not find project: %s." % (project_ref.get("id")
                                                           or project_ref.get("name")))
    allowed = user.get("projects")
    if allowed is not None and project["name"] not in allowed and project["id"] not in allowed:
        raise fail(401, "User %s has no access to project %s" % (user["id"], project["id"]))
    return project


# ----- token records and views ---------------------------------------------------------
def _domain_view(cfg, ref):
    dom = os_config.find_domain(cfg, ref) or {"id": str(ref).lower(), "name": str(ref)}
    return {"id": dom["id"], "name": dom["name"]}


def make_token(state, methods, user, project, cred):
    cfg, now = state.config, time.time()
    roles = (cred or {}).get("roles") or user.get("roles", [])
    token = {
        "id": new_token_id(), "methods": methods, "issued": now,
        "expires": now + float(cfg.get("token_ttl_s", 3600)),
        "user": {"id": user["id"], "name": user["name"],
                 "domain": _domain_view(cfg, user["domain"]), "password_expires_at": None},
        "project": None, "roles": [], "audit_ids": [new_token_id()[6:28]],
        "app_cred": None, "is_admin": False}
    if cfg.get("revoke_tokens_after_s"):
        token["revoke_at"] = now + float(cfg["revoke_tokens_after_s"])
    if project is not None:
        token["project"] = {"id": project["id"], "name": project["name"],
                            "domain": _domain_view(cfg, project["domain"])}
        token["roles"] = [{"id": stable_hex_id("role", r), "name": r} for r in roles]
        token["is_admin"] = "admin" in roles
    if cred is not None:
        token["app_cred"] = {"id": cred["id"], "name": cred["name"], "restricted": True}
    return token


def catalog(state):
    omit = set(state.config.get("catalog_omit") or [])
    entries = []
    for stype, sname, path in CATALOG:
        if stype in omit or sname in omit:
            continue
        endpoints = [{"id": stable_hex_id("endpoint", stype + iface), "interface": iface,
                      "region": "RegionOne", "region_id": "RegionOne",
                      "url": state.url + path} for iface in INTERFACES]
        entries.append({"type": stype, "name": sname, "id": stable_hex_id("service", stype),
                        "endpoints": endpoints})
    return entries


def token_body(state, token, with_catalog):
    body = {"methods": token["methods"], "user": token["user"],
            "audit_ids": token["audit_ids"], "expires_at": iso_micro(token["expires"]),
            "issued_at": iso_micro(token["issued"]), "extras": {}}
    if token["project"] is not None:
        body.update({"project": token["project"], "roles": token["roles"],
                     "is_domain": False})
        if with_catalog:
            body["catalog"] = catalog(state)
    if token["app_cred"] is not None:
        body["application_credential"] = token["app_cred"]
        body["application_credential_restricted"] = True
    return {"token": body}


# ----- handlers ------------------------------------------------------------------------
def issue_token(ctx):
    """POST /v3/auth/tokens ("Password authentication with scoped authorization",
    "Authenticating with an Application Credential")."""
    state = ctx.state
    body = ctx.json()
    auth = _require(body if isinstance(body, dict) else {}, "auth")
    identity = _require(auth, "identity")
    methods = _require(identity, "methods", list)
    if not methods or any(m not in METHODS for m in methods):
        raise fail(401, "Unsupported authentication method(s): %s" % methods)
    user, extra = METHODS[methods[0]](state, identity)
    scope = auth.get("scope")
    if extra is not None:  # application credential: scope comes with it
        if scope is not None:
            raise fail(401, "Application credentials cannot request a scope.")
        project, cred = extra
    else:
        project, cred = resolve_scope(state, scope, user), None
    token = make_token(state, methods, user, project, cred)
    state.tokens[token["id"]] = token
    state.stats["tokens_issued"] += 1
    return Response(201, token_body(state, token, "nocatalog" not in ctx.query),
                    {"X-Subject-Token": token["id"]})


def _caller(ctx):
    token = ctx.state.tokens_valid(ctx.headers.get("X-Auth-Token"))
    if token is None:
        raise fail(401)
    return token


def _subject(ctx):
    subject_id = ctx.headers.get("X-Subject-Token") or ""
    token = ctx.state.tokens_valid(subject_id)
    if token is None:
        raise fail(404, "Could not find token: %s." % subject_id)
    return token


def validate_token(ctx):
    """GET/HEAD /v3/auth/tokens ("Validate and show information for token")."""
    _caller(ctx)
    token = _subject(ctx)
    return Response(200, token_body(ctx.state, token, "nocatalog" not in ctx.query),
                    {"X-Subject-Token": token["id"]})


def revoke_token(ctx):
    _caller(ctx)
    token = _subject(ctx)
    token["revoke_at"] = time.time()
    return Response(204)


def get_catalog(ctx):
    _caller(ctx)
    return Response(200, {"catalog": catalog(ctx.state),
                          "links": {"self": ctx.base("/identity/v3/auth/catalog"),
                                    "previous": None, "next": None}})


def get_projects(ctx):
    token = _caller(ctx)
    user = os_config.find_by(ctx.state.config["users"], id=token["user"]["id"]) or {}
    allowed = user.get("projects")
    projects = [{"id": p["id"], "name": p["name"], "enabled": True, "is_domain": False,
                 "domain_id": _domain_view(ctx.state.config, p["domain"])["id"],
                 "description": "", "parent_id": None, "tags": [], "options": {},
                 "links": {"self": ctx.base("/identity/v3/projects/" + p["id"])}}
                for p in ctx.state.config["projects"]
                if allowed is None or p["name"] in allowed or p["id"] in allowed]
    return Response(200, {"projects": projects,
                          "links": {"self": ctx.base("/identity/v3/auth/projects"),
                                    "previous": None, "next": None}})


SERVICE = Keystone()
