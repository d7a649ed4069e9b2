/*
 * The web dashboard (docs/ui.md): a single page over the daemon's REST API. Views, by the
 * URL's hash: #/catalog (browse and search the template catalog), #/catalog/NAME (a deploy
 * form generated from the template's inputs, checked before it is sent), #/deployments
 * (the caller's deployments, filtered and paged, live from /deployments/changes),
 * #/deployments/ID (status history and log live from the event stream, outputs, resources, usage,
 * update, delete), #/sites (capacity by GPU model) and #/signin (an OIDC bearer token,
 * kept for the browser session). Everything the API sends is put in the page as text,
 * never as HTML.
 */
"use strict";

const TOKEN_KEY = "orc.token";
const view = document.getElementById("view");
const notice = document.getElementById("notice");
let leaving = []; /* what the current view stops when another one is drawn */

/* ---- small helpers ---- */

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...nodes) {
  view.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
  view.focus();
}

function say(message, isError) {
  notice.textContent = message;
  notice.className = isError ? "error" : "";
  notice.hidden = !message;
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function headers(extra) {
  const hd = Object.assign({ Accept: "application/json" }, extra || {});
  if (token()) hd.Authorization = "Bearer " + token();
  return hd;
}

/* A request to the API: the parsed JSON (or text), or an Error with the server's message. */
async function api(method, path, body) {
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const type = res.headers.get("Content-Type") || "";
  const data = type.startsWith("application/json") ? await res.json() : await res.text();
  if (!res.ok) {
    const why = (data && (data.message || data.error_description)) || res.statusText;
    const err = new Error(res.status === 401 ? "Sign in first: " + why : why);
    err.status = res.status;
    throw err;
  }
  return data;
}

function statusClass(s) {
  if (/COMPLETE$/.test(s || "")) return "status ok";
  if (/FAILED$/.test(s || "")) return "status bad";
  return "status busy";
}

function statusBadge(s) {
  return h("span", { class: statusClass(s), "data-status": s }, s || "?");
}

function fail(err) {
  say(err.message || String(err), true);
}

/* ---- sign in ---- */

function signinView() {
  const area = h("textarea", { id: "token", rows: 6, "aria-describedby": "token-hint",
    placeholder: "eyJhbGciOi..." }, token());
  const result = h("p", { id: "signin-result", role: "status" });
  async function check() {
    try {
      await api("GET", "/deployments?size=1&createdBy=me");
      result.textContent = token() ? "Signed in." : "This server needs no token.";
    } catch (e) {
      result.textContent = e.message;
    }
  }
  show(h("h1", {}, "Sign in"),
    h("label", { for: "token" }, "Bearer token ",
      h("span", { class: "hint", id: "token-hint" },
        "(an access token of your OIDC provider; kept in this browser tab only)")),
    area,
    h("p", {},
      h("button", { id: "signin-save", onclick: () => {
        sessionStorage.setItem(TOKEN_KEY, area.value.trim());
        updateSigninLink();
        check();
      } }, "Sign in"), " ",
      h("button", { class: "secondary", onclick: () => {
        sessionStorage.removeItem(TOKEN_KEY);
        area.value = "";
        updateSigninLink();
        check();
      } }, "Sign out")),
    result);
}

function updateSigninLink() {
  document.getElementById("signin-link").textContent = token() ? "Signed in" : "Sign in";
}

/* ---- the catalog ---- */

async function catalogView(params) {
  const q = params.get("q") || "", tag = params.get("tag") || "";
  const search = h("input", { id: "catalog-q", type: "search", value: q,
    "aria-label": "Search templates" });
  const go = () => {
    const p = new URLSearchParams();
    if (search.value) p.set("q", search.value);
    location.hash = "#/catalog" + (p.toString() ? "?" + p : "");
  };
  search.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  show(h("h1", {}, "Template catalog"),
    h("div", { class: "toolbar", role: "search" },
      h("label", { for: "catalog-q" }, "Search"), search,
      h("button", { onclick: go }, "Search"),
      tag ? h("a", { href: "#/catalog" }, "All tags") : null),
    h("p", {}, "Loading…"));
  const p = new URLSearchParams({ size: "500" });
  if (q) p.set("q", q);
  if (tag) p.set("tag", tag);
  const page = await api("GET", "/templates?" + p);
  const cards = page.content.map((t) => h("article", { class: "card", "data-template": t.name },
    h("h2", {}, t.display_name),
    h("p", {}, t.description || ""),
    h("p", {}, t.tags.map((g) => h("a", { class: "tag", href: "#/catalog?tag=" +
      encodeURIComponent(g) }, g))),
    h("a", { class: "button", href: "#/catalog/" + encodeURIComponent(t.name),
      "aria-label": "Deploy " + t.display_name }, "Deploy")));
  view.lastChild.replaceWith(cards.length ? h("div", { class: "cards" }, cards)
    : h("p", {}, "No template matches."));
}

/* ---- the deploy form ---- */

function inputFor(name, s) {
  const id = "in-" + name;
  if (s.enum) {
    return h("select", { id, name },
      s.enum.map((v) => h("option", { value: JSON.stringify(v), selected: v === s.default }, String(v))));
  }
  if (s.type === "boolean") return h("input", { id, name, type: "checkbox", checked: s.default === true });
  if (s.type === "integer" || s.type === "number") {
    return h("input", { id, name, type: "number", step: s.type === "integer" ? "1" : "any",
      min: s.minimum, max: s.maximum, value: s.default });
  }
  if (s.type === "array" || s.type === "object") {
    return h("textarea", { id, name, rows: 3 }, s.default !== undefined ? JSON.stringify(s.default) : "");
  }
  return h("input", { id, name, type: s.writeOnly ? "password" : "text", pattern: s.pattern,
    value: s.default, autocomplete: s.writeOnly ? "new-password" : "off" });
}

/* The value of one input, or an Error saying what is wrong with it. */
function valueOf(el, s, required) {
  if (s.enum) return JSON.parse(el.value);
  if (s.type === "boolean") return el.checked;
  const text = el.value.trim();
  if (text === "") return required ? new Error("is required") : undefined;
  if (s.type === "integer" || s.type === "number") {
    const n = Number(text);
    if (!Number.isFinite(n) || (s.type === "integer" && !Number.isInteger(n))) {
      return new Error("must be " + (s.type === "integer" ? "a whole number" : "a number"));
    }
    if (s.minimum !== undefined && n < s.minimum) return new Error("must be at least " + s.minimum);
    if (s.maximum !== undefined && n > s.maximum) return new Error("must be at most " + s.maximum);
    if (s.exclusiveMinimum !== undefined && n <= s.exclusiveMinimum) {
      return new Error("must be more than " + s.exclusiveMinimum);
    }
    if (s.exclusiveMaximum !== undefined && n >= s.exclusiveMaximum) {
      return new Error("must be less than " + s.exclusiveMaximum);
    }
    return n;
  }
  if (s.type === "array" || s.type === "object") {
    try { return JSON.parse(text); } catch (e) { return new Error("must be JSON (" + e.message + ")"); }
  }
  if (s.pattern && !new RegExp("^(?:" + s.pattern + ")$").test(text)) {
    return new Error("must match " + s.pattern);
  }
  if (s.minLength !== undefined && text.length < s.minLength) {
    return new Error("must be at least " + s.minLength + " characters");
  }
  if (s.maxLength !== undefined && text.length > s.maxLength) {
    return new Error("must be at most " + s.maxLength + " characters");
  }
  return text;
}

async function deployView(name) {
  const t = await api("GET", "/templates/" + encodeURIComponent(name));
  const props = t.schema.properties || {}, required = new Set(t.schema.required || []);
  const rows = Object.entries(props).map(([key, s]) => {
    const err = h("div", { class: "field-error", id: "err-" + key, "aria-live": "polite" });
    const el = inputFor(key, s);
    el.setAttribute("aria-describedby", "err-" + key);
    if (required.has(key)) el.setAttribute("aria-required", "true");
    return { key, s, el, err,
      node: h("div", { class: "field" },
        h("label", { for: el.id }, key + (required.has(key) ? " *" : ""), " ",
          h("span", { class: "hint" }, [s.description, s["x-tosca-type"]].filter(Boolean).join(" — "))),
        el, err) };
  });
  const submit = h("button", { id: "deploy-submit", type: "submit" }, "Deploy");
  const form = h("form", { id: "deploy-form", novalidate: true }, rows.map((r) => r.node),
    h("p", {}, submit));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const parameters = {};
    let ok = true;
    for (const r of rows) {
      const v = valueOf(r.el, r.s, required.has(r.key));
      r.err.textContent = v instanceof Error ? r.key + " " + v.message : "";
      if (v instanceof Error) ok = false;
      else if (v !== undefined) parameters[r.key] = v;
    }
    if (!ok) { say("Some inputs need a change.", true); return; }
    submit.disabled = true;
    try {
      const d = await api("POST", "/deployments", { templateName: name, parameters });
      say("Deployment " + d.uuid + " created.");
      keepNotice = true;
      location.hash = "#/deployments/" + d.uuid;
    } catch (err) {
      fail(err);
      submit.disabled = false;
    }
  });
  show(h("h1", {}, "Deploy: " + t.display_name),
    h("p", {}, t.description || ""),
    t.retired ? h("p", { class: "field-error" }, "This template is retired.") : null,
    form,
    h("p", {}, h("a", { href: "/templates/" + encodeURIComponent(name) + "/template" },
      "The template (YAML)")));
}

/* ---- deployments ---- */

const FINAL = /(COMPLETE|FAILED)$/;
const STATUSES = ["CREATE_IN_PROGRESS", "CREATE_COMPLETE", "CREATE_FAILED", "UPDATE_IN_PROGRESS",
  "UPDATE_COMPLETE", "UPDATE_FAILED", "DELETE_IN_PROGRESS", "DELETE_COMPLETE", "DELETE_FAILED"];

async function deploymentsView(params) {
  const page = Number(params.get("page") || 0), status = params.get("status") || "";
  /* deleted deployments are gone: not a status to pick */
  const select = h("select", { id: "filter-status", "aria-label": "Status" },
    ["", ...STATUSES.filter((s) => s !== "DELETE_COMPLETE")]
      .map((s) => h("option", { value: s, selected: s === status }, s || "any status")));
  const apply = () => {
    const p = new URLSearchParams();
    if (select.value) p.set("status", select.value);
    location.hash = "#/deployments" + (p.toString() ? "?" + p : "");
  };
  select.addEventListener("change", apply);
  const table = h("table", { id: "deployments" },
    h("thead", {}, h("tr", {}, ["Deployment", "Status", "Site", "Created", "Updated"].map((c) =>
      h("th", { scope: "col" }, c)))), h("tbody", {}));
  const pager = h("div", { class: "pager" });
  show(h("h1", {}, "Deployments"),
    h("div", { class: "toolbar" }, h("label", { for: "filter-status" }, "Status"), select),
    table, pager);
  async function refresh() {
    const p = new URLSearchParams({ createdBy: "me", page: String(page), size: "20" });
    /* one status: the others are excluded (the API filters by exclusion) */
    const excluded = status ? STATUSES.filter((s) => s !== status) : ["DELETE_COMPLETE"];
    if (excluded.length) p.set("excludedStatus", excluded.join(","));
    const list = await api("GET", "/deployments?" + p);
    table.tBodies[0].replaceChildren(...list.content.map((d) => h("tr", { "data-uuid": d.uuid },
      h("td", {}, h("a", { href: "#/deployments/" + d.uuid }, d.uuid)),
      h("td", {}, statusBadge(d.status)),
      h("td", {}, d.cloudProviderName || ""),
      h("td", {}, d.creationTime), h("td", {}, d.updateTime))));
    if (!list.content.length) {
      table.tBodies[0].append(h("tr", {}, h("td", { colspan: 5 }, "No deployments.")));
    }
    const pages = list.page.totalPages || 1;
    const link = (n, label) => h("a", { href: "#/deployments?" + new URLSearchParams(
      Object.assign(status ? { status } : {}, { page: String(n) })) }, label);
    pager.replaceChildren(page > 0 ? link(page - 1, "Previous") : "",
      h("span", {}, "page " + (page + 1) + " of " + pages + " (" + list.page.totalElements + ")"),
      page + 1 < pages ? link(page + 1, "Next") : "");
  }
  await refresh();
  /* live: each change of a deployment comes on /deployments/changes; a row on the page is
   * updated in place, anything else (a new one, a deletion, a resync) lists the page again */
  const stop = new AbortController();
  let pending = null;
  const later = () => { clearTimeout(pending); pending = setTimeout(() => refresh().catch(fail), 200); };
  leaving.push(() => { stop.abort(); clearTimeout(pending); });
  followEvents("/deployments/changes", (d) => {
    const row = d.uuid && table.querySelector(`tr[data-uuid="${d.uuid}"]`);
    if (!row || !d.status || (status && d.status !== status)) { later(); return; }
    row.cells[1].replaceChildren(statusBadge(d.status));
    row.cells[2].textContent = d.cloudProviderName || "";
    row.cells[4].textContent = d.updateTime;
  }, stop.signal, later);
}

/* Reads a server-sent event stream with the bearer token (EventSource sends no headers);
 * onOpen (optional) runs each time it (re)connects. */
async function followEvents(path, onEvent, signal, onOpen) {
  let last = 0;
  while (!signal.aborted) {
    try {
      const res = await fetch(path, { headers: Object.assign(headers({ Accept: "text/event-stream" }),
        last ? { "Last-Event-ID": String(last) } : {}), signal });
      if (!res.ok) throw new Error((await res.text()) || res.statusText);
      if (onOpen) onOpen();
      const reader = res.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let at;
        while ((at = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, at);
          buf = buf.slice(at + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trim()).join("\n");
          if (!data) continue;
          const ev = JSON.parse(data);
          if (ev.id) last = ev.id;
          onEvent(ev);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function outputsList(outputs) {
  const entries = Object.entries(outputs || {});
  if (!entries.length) return h("p", { id: "outputs" }, "None yet.");
  return h("dl", { id: "outputs" }, entries.map(([k, v]) => [h("dt", {}, k),
    h("dd", {}, typeof v === "string" && /^https?:\/\//.test(v)
      ? h("a", { href: v, rel: "noopener", target: "_blank" }, v)
      : typeof v === "string" ? v : JSON.stringify(v))]));
}

function hours(x) {
  if (x === 0) return "0";
  return x < 0.01 ? (x * 3600).toFixed(0) + " s" : x.toFixed(2) + " h";
}

/* GET .../usage: node-hours and GPU-hours per site, then each interval. */
function usageTable(u) {
  if (!u.intervals.length) return h("p", {}, "Nothing held yet.");
  const head = (cols) => h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c))));
  return [
    h("p", {}, "In all: ", h("strong", { id: "usage-node-hours" }, hours(u.nodeHours)),
      " of nodes, ", h("strong", { id: "usage-gpu-hours" }, hours(u.gpuHours)), " of GPUs."),
    h("table", { id: "usage-sites" }, head(["Site", "Node time", "GPU time", "By model"]),
      h("tbody", {}, u.sites.map((s) => h("tr", {}, h("td", {}, s.site), h("td", {}, hours(s.nodeHours)),
        h("td", {}, hours(s.gpuHours)),
        h("td", {}, Object.entries(s.gpuHoursByModel).map(([m, x]) => m + " " + hours(x)).join(", ")))))),
    h("table", { id: "usage-intervals" }, head(["Node", "Site", "GPUs", "From", "To", "Time"]),
      h("tbody", {}, u.intervals.map((i) => h("tr", {}, h("td", {}, i.node + "[" + i.index + "]"),
        h("td", {}, i.site), h("td", {}, i.gpus ? i.gpus + " " + (i.gpuModel || "") : "0"),
        h("td", {}, i.start), h("td", {}, i.held ? "held now" : i.end), h("td", {}, hours(i.hours)))))),
  ];
}

async function deploymentView(uuid) {
  const base = "/deployments/" + encodeURIComponent(uuid);
  const details = h("dl", { id: "details" });
  const outputs = h("div", {});
  const history = h("table", { id: "history" },
    h("thead", {}, h("tr", {}, ["Time", "Event", "Message"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}));
  const log = h("pre", { id: "log", "aria-live": "off" });
  const resources = h("table", { id: "resources" });
  const usage = h("div", { id: "usage" });
  const params = h("textarea", { id: "update-params", rows: 4, "aria-label": "Parameters (JSON)" }, "{}");
  const updateBtn = h("button", { id: "update-submit", onclick: async () => {
    let p;
    try { p = JSON.parse(params.value || "{}"); } catch (e) { fail(new Error("Parameters: " + e.message)); return; }
    try { await api("PUT", base, { parameters: p }); say("Update started."); settled = false; await load(); } catch (e) { fail(e); }
  } }, "Update");
  const deleteBtn = h("button", { id: "delete", class: "danger", onclick: async () => {
    if (!confirm("Delete deployment " + uuid + "?")) return;
    try { await api("DELETE", base); say("Deletion started."); settled = false; await load(); } catch (e) { fail(e); }
  } }, "Delete");
  show(h("h1", {}, "Deployment ", h("code", {}, uuid)), details,
    h("h2", {}, "Outputs"), outputs,
    h("h2", {}, "Status history"), history,
    h("h2", {}, "Log"), log,
    h("h2", {}, "Resources"), resources,
    h("h2", {}, "Usage"), usage,
    h("h2", {}, "Update"), h("label", { for: "update-params" }, "Parameters to change ",
      h("span", { class: "hint" }, "(JSON; merged into the current ones)")), params,
    h("p", {}, updateBtn, " ", deleteBtn));
  let settled = false; /* the last status read was a final one */
  async function load() {
    let d;
    try {
      d = await api("GET", base);
      settled = FINAL.test(d.status);
    } catch (e) {
      if (e.status === 404) {
        settled = true;
        details.replaceChildren(h("dt", {}, "Status"), h("dd", {}, statusBadge("DELETE_COMPLETE"), " (gone)"));
        updateBtn.disabled = deleteBtn.disabled = true;
        return;
      }
      throw e;
    }
    details.replaceChildren(...[
      h("dt", {}, "Status"), h("dd", {}, statusBadge(d.status)),
      d.statusReason ? [h("dt", {}, "Reason"), h("dd", { id: "reason" }, d.statusReason)] : [],
      h("dt", {}, "Site"), h("dd", {}, d.cloudProviderName || "—"),
      h("dt", {}, "Created"), h("dd", {}, d.creationTime),
      h("dt", {}, "Updated"), h("dd", {}, d.updateTime)].flat());
    outputs.replaceChildren(outputsList(d.outputs));
    const res = await api("GET", base + "/resources?size=100");
    resources.replaceChildren(h("thead", {}, h("tr", {}, ["Node", "Type", "State", "Id"].map((c) =>
      h("th", { scope: "col" }, c)))), h("tbody", {}, res.content.map((r) => h("tr", {},
      h("td", {}, r.toscaNodeName), h("td", {}, r.toscaNodeType), h("td", {}, r.state),
      h("td", {}, r.physicalId || "")))));
    log.textContent = await api("GET", base + "/log");
    usage.replaceChildren(...[].concat(usageTable(await api("GET", base + "/usage"))));
  }
  await load();
  const stop = new AbortController();
  leaving.push(() => stop.abort());
  let pending = null;
  followEvents(base + "/events", (ev) => {
    history.tBodies[0].append(h("tr", { "data-type": ev.type }, h("td", {}, ev.time),
      h("td", {}, ev.type), h("td", {}, ev.message)));
    clearTimeout(pending); /* a burst of events: one reload */
    pending = setTimeout(() => load().catch(fail), 150);
  }, stop.signal);
  leaving.push(() => clearTimeout(pending));
  /* the stream ends with the deployment (a deletion's last events may not come): while
   * it is in progress, read it again every few seconds too */
  const poll = setInterval(() => { if (!settled) load().catch(fail); }, 3000);
  leaving.push(() => clearInterval(poll));
}

/* ---- sites ---- */

function meter(free, total) {
  const used = total ? Math.round(100 * (total - free) / total) : 0;
  const bar = h("span", {});
  bar.style.width = used + "%"; /* through the CSSOM: the page's CSP allows no style attribute */
  return h("span", { class: "meter", role: "img", "aria-label": used + "% in use" }, bar);
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

async function sitesView() {
  show(h("h1", {}, "Sites"), h("p", {}, "Loading…"));
  const sites = (await api("GET", "/sites")).content;
  const rows = sites.map((s) => h("tr", { "data-site": s.name },
    h("th", { scope: "row" }, s.name, h("div", { class: "hint" }, s.description || "")),
    h("td", {}, s.driver),
    h("td", {}, h("span", { class: s.state === "active" ? "status ok" : "status bad" }, s.state),
      s.inventory && s.inventory !== "ok" ? h("div", { class: "hint" }, s.inventory) : null),
    h("td", {}, (s.gpus || []).length ? (s.gpus || []).map((g) => h("div", { "data-gpu": g.model },
      g.model + ": " + g.free + " free of " + g.total + " ", meter(g.free, g.total))) : "—"),
    h("td", {}, s.cpus ? s.cpus.free + " / " + s.cpus.total : "—"),
    h("td", {}, s.memory ? bytes(s.memory.free) + " / " + bytes(s.memory.total) : "—")));
  view.lastChild.replaceWith(h("table", { id: "sites" },
    h("thead", {}, h("tr", {}, ["Site", "Driver", "State", "GPUs by model", "CPUs free", "Memory free"]
      .map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, rows)));
}

/* ---- routing ---- */

async function route() {
  leaving.forEach((f) => f());
  leaving = [];
  const [path, query] = (location.hash.replace(/^#/, "") || "/catalog").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  document.querySelectorAll("nav a").forEach((a) => {
    if (a.dataset.nav === parts[0]) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  });
  try {
    if (parts[0] === "catalog" && parts[1]) await deployView(parts[1]);
    else if (parts[0] === "deployments" && parts[1]) await deploymentView(parts[1]);
    else if (parts[0] === "deployments") await deploymentsView(params);
    else if (parts[0] === "sites") await sitesView();
    else if (parts[0] === "signin") signinView();
    else await catalogView(params);
  } catch (e) {
    fail(e);
  }
}

let keepNotice = false; /* a message for the next view ("Deployment ... created.") */

window.addEventListener("hashchange", () => {
  if (!keepNotice) say("");
  keepNotice = false;
  route();
});
updateSigninLink();
route();
