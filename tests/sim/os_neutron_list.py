"""Neutron-style collection listing for the OpenStack simulator: equality
filters on any attribute (repeated = OR), tag filters, ?fields= projection
and limit/marker pagination, per "Filtering and Column Selection" and
"Pagination" of https://docs.openstack.org/api-ref/network/v2/."""

from os_http import Response

CONTROL = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse"}
TAG_FILTERS = {"tags", "tags-any", "not-tags", "not-tags-any"}


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _matches(record, key, wanted):
    value = record[key]
    if isinstance(value, list):
        return any(_item_matches(v, wanted) for v in value)
    return _text(value) in [w.lower() if isinstance(value, bool) else w for w in wanted]


def _item_matches(item, wanted):
    """List members; dicts (fixed_ips) match "subkey=value" filters."""
    if isinstance(item, dict):
        pairs = [w.split("=", 1) for w in wanted if "=" in w]
        return any(_text(item.get(k)) == v for k, v in pairs)
    return _text(item) in wanted


def _tags_ok(record, key, values):
    wanted = {t for v in values for t in v.split(",") if t}
    have = set(record.get("tags", []))
    return {"tags": wanted <= have, "tags-any": bool(wanted & have),
            "not-tags": not wanted <= have, "not-tags-any": not wanted & have}[key]


def filtered(ctx, records):
    from os_neutron import fail
    for key, values in ctx.query.items():
        if key in CONTROL:
            continue
        if key in TAG_FILTERS:
            records = [r for r in records if _tags_ok(r, key, values)]
        elif records and key not in records[0]:
            raise fail(400, "HTTPBadRequest", "[%s] is invalid attribute for filtering" % key)
        else:
            records = [r for r in records if _matches(r, key, values)]
    return records


def _project(record, fields):
    return {k: v for k, v in record.items() if k in fields} if fields else record


def listing(ctx, collection, records):
    """200 {"<collection>": [...]} with filters, fields and pagination."""
    records = sorted(filtered(ctx, list(records)),
                     key=lambda r: (r.get("created_at", ""), r["id"]))
    marker, limit = ctx.q("marker"), ctx.int_q("limit")
    if marker is not None:
        ids = [r["id"] for r in records]
        records = records[ids.index(marker) + 1:] if marker in ids else []
    body = {}
    if limit and len(records) > limit:
        records = records[:limit]
        body[collection + "_links"] = [{"rel": "next", "href": ctx.base(
            "/network%s?limit=%s&marker=%s" % (ctx.path, limit, records[-1]["id"]))}]
    fields = ctx.query.get("fields")
    body[collection] = [_project(r, fields) for r in records]
    return Response(200, body)
