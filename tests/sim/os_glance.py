"""Glance (image v2) front end of the OpenStack simulator, served under
/image: version documents, image list with filters/pagination and image
show. Shapes follow https://docs.openstack.org/api-ref/image/v2/ ("Images");
errors are webob-style like the real Glance (JSON when asked for JSON)."""

import hashlib
import urllib.parse

from os_http import HttpError, Response, Route, Service
from os_util import iso_seconds

REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}
IMAGE_KEYS = {"id", "name", "status", "visibility", "disk_format", "container_format",
              "min_disk", "min_ram", "size", "owner", "protected", "tags"}
CREATED = 1700000000  # fixed so image timestamps are stable


class Glance(Service):
    name = "image"
    prefix = "/image"

    def __init__(self):
        self.routes = [
            Route("GET", "/", versions_300, public=True),
            Route("GET", "/versions", versions, public=True),
            Route("GET", "/v2/images", list_images),
            Route("GET", "/v2/images/{id}", show_image),
        ]

    def error(self, status, message, **kw):
        """webob error page; JSON {"message", "code", "title"} when accepted."""
        reason = REASONS.get(status, "Error")
        message = message or ("The server has either erred or is incapable of performing "
                              "the requested operation.")
        accept = (kw.get("accept") or "").lower()
        if "application/json" in accept and "html" not in accept:
            body = {"message": message, "code": "%d %s" % (status, reason), "title": reason}
            return HttpError(Response(status, body))
        html = ("<html>\n <head>\n  <title>%d %s</title>\n </head>\n <body>\n  <h1>%d %s</h1>"
                "\n  %s<br /><br />\n\n\n\n </body>\n</html>" % (status, reason, status, reason,
                                                                message))
        return HttpError(Response(status, html, content_type="text/html; charset=UTF-8"))



def _versions_doc(ctx):
    return {"versions": [{"id": "v2.9", "status": "CURRENT", "links": [
        {"rel": "self", "href": ctx.base("/image/v2/")}]}]}


def versions_300(ctx):
    return Response(300, _versions_doc(ctx))


def versions(ctx):
    return Response(200, _versions_doc(ctx))


def image_view(ctx, image):
    """One entry of "List images" / "Show image"."""
    image_id = image["id"]
    digest = hashlib.sha512(image_id.encode()).hexdigest()
    view = {
        "id": image_id, "name": image["name"], "status": image.get("status", "active"),
        "visibility": image.get("visibility", "public"),
        "disk_format": image.get("disk_format", "qcow2"),
        "container_format": image.get("container_format", "bare"),
        "min_disk": image.get("min_disk", 0), "min_ram": image.get("min_ram", 0),
        "size": image.get("size", 0), "virtual_size": image.get("virtual_size"),
        "checksum": hashlib.md5(image_id.encode()).hexdigest(), "os_hash_algo": "sha512",
        "os_hash_value": digest, "owner": image.get("owner") or ctx.auth["project"]["id"],
        "protected": image.get("protected", False), "os_hidden": False,
        "tags": list(image.get("tags", [])), "created_at": iso_seconds(CREATED),
        "updated_at": iso_seconds(CREATED), "self": "/v2/images/" + image_id,
        "file": "/v2/images/%s/file" % image_id, "schema": "/v2/schemas/image"}
    for key, value in image.items():  # additional properties (os_distro, ...)
        if key not in IMAGE_KEYS and key not in view:
            view[key] = value
    return view


def _selected(ctx, views):
    for key in ("name", "status", "visibility", "owner", "disk_format", "container_format"):
        wanted = ctx.q(key)
        if wanted is not None:
            views = [v for v in views if str(v.get(key)) == wanted]
    tags = ctx.query.get("tag", [])
    return [v for v in views if all(t in v["tags"] for t in tags)]


def list_images(ctx):
    """GET /v2/images: {"images", "first", "schema"[, "next"]}."""
    views = _selected(ctx, [image_view(ctx, i) for i in ctx.state.config["images"]])
    views.sort(key=lambda v: (v["created_at"], v["id"]), reverse=True)
    marker, limit = ctx.q("marker"), ctx.int_q("limit")
    if marker is not None:
        ids = [v["id"] for v in views]
        if marker not in ids:
            raise _error(ctx, 400, "marker not found")
        views = views[ids.index(marker) + 1:]
    query = [(k, v) for k, vals in ctx.query.items() if k != "marker" for v in vals]
    body = {"first": "/v2/images" + ("?" + urllib.parse.urlencode(query) if query else ""),
            "schema": "/v2/schemas/images"}
    if limit is not None and len(views) > limit:
        views = views[:limit]
        body["next"] = "/v2/images?" + urllib.parse.urlencode(query + [("marker",
                                                                        views[-1]["id"])])
    body["images"] = views
    return Response(200, body)


def _error(ctx, status, message):
    return SERVICE.error(status, message, accept=ctx.headers.get("Accept"))


def show_image(ctx):
    for image in ctx.state.config["images"]:
        if image["id"] == ctx.params["id"]:
            return Response(200, image_view(ctx, image))
    raise _error(ctx, 404, "No image found with ID %s" % ctx.params["id"])


SERVICE = Glance()
