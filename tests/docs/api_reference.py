#!/usr/bin/env python3
"""Writes docs/api-reference.md from the daemon's /openapi.json (read on stdin): every
route by tag, with who may call it, its query parameters, its body and its answers. The
docs check (tests/docs/check_docs.sh) builds it again from a running daemon and fails
when the committed file differs, so the reference is always the server's own."""
import json
import sys

METHODS = ["get", "post", "put", "patch", "delete", "options", "head"]


def schema_text(s):
    if not s:
        return ""
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[-1]
        return f"[`{name}`](#{name.lower()})"
    t = s.get("type", "")
    if t == "array" and "items" in s:
        return "array of " + schema_text(s["items"])
    if "enum" in s:
        return t + " (" + ", ".join(f"`{v}`" for v in s["enum"]) + ")"
    return t or "object"


def cell(text):
    return " ".join(str(text or "").split()).replace("|", "\\|")


def access(op):
    return {"anyone": "anyone, no token", "user": "a user (bearer token)",
            "operator": "an operator (or admin)", "admin": "an admin"}.get(
                op.get("x-access"), "a user (bearer token)")


def route(out, path, method, op):
    out.append(f"### {method.upper()} `{path}`\n")
    out.append(cell(op.get("summary")) + ".\n")
    if op.get("description"):
        out.append(cell(op["description"]) + "\n")
    out.append(f"Who: {access(op)}.\n")
    params = [p for p in op.get("parameters", []) if p.get("in") == "query"]
    if params:
        out.append("| query | type | meaning |\n|---|---|---|")
        for p in params:
            out.append(f"| `{p['name']}` | {cell(schema_text(p.get('schema')))} | "
                       f"{cell(p.get('description'))} |")
        out.append("")
    body = op.get("requestBody", {}).get("content", {})
    for ctype, media in body.items():
        out.append(f"Body: `{ctype}`, {schema_text(media.get('schema'))}.\n")
    rows = []
    for status, r in sorted(op.get("responses", {}).items()):
        if status == "default":
            continue
        content = r.get("content", {})
        kinds = ", ".join(f"`{c}` {schema_text(m.get('schema'))}".strip()
                          for c, m in content.items())
        rows.append(f"| {status} | {cell(r.get('description'))} | {cell(kinds)} |")
    if rows:
        out.append("| status | answer | body |\n|---|---|---|")
        out.extend(rows)
        out.append("")


def main():
    doc = json.load(sys.stdin)
    out = ["# API reference", "",
           "Generated from the daemon's `/openapi.json` by tests/docs/api_reference.py (the docs",
           "check keeps it current); docs/api.md explains the behaviour. Every error is the",
           "error JSON `{code, title, message}` (401 and 403 from authentication:",
           "`{error, error_description}`).", ""]
    by_tag = {}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["Other"])[0]
                by_tag.setdefault(tag, []).append((path, method, item[method]))
    for tag in [t["name"] for t in doc.get("tags", [])] + sorted(by_tag):
        if tag not in by_tag:
            continue
        out.append(f"## {tag}\n")
        for path, method, op in by_tag.pop(tag):
            route(out, path, method, op)
    out.append("## Schemas\n")
    for name, s in sorted(doc.get("components", {}).get("schemas", {}).items()):
        out.append(f"### {name}\n")
        if s.get("description"):
            out.append(cell(s["description"]) + "\n")
        props = s.get("properties")
        if props:
            req = set(s.get("required", []))
            out.append("| field | type | |\n|---|---|---|")
            for k, v in props.items():
                note = "required" if k in req else ""
                if v.get("description"):
                    note = (note + "; " if note else "") + v["description"]
                out.append(f"| `{k}` | {cell(schema_text(v))} | {cell(note)} |")
            out.append("")
        else:
            out.append(cell(schema_text(s)) + "\n")
    sys.stdout.write("\n".join(out).rstrip() + "\n")


main()
