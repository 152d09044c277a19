// certplane status page. It renders the /status document embedded in the
// page at once (so the first paint has data), then fetches /status every
// REFRESH_MS and renders again. Every value goes through textContent, never
// innerHTML: file names and certificate subjects are operator input.
"use strict";

const REFRESH_MS = 5000;
const DAY = 86400e3;
const AMBER_DAYS = 30;
const RED_DAYS = 7;
const REASON_COLORS = ["#2f9e44", "#e03131", "#f08c00", "#7048e8", "#1c7ed6", "#c2255c", "#0c8599", "#5c940d", "#868e96"];

// h builds an element: h("td", {class: "x"}, "text", child...).
function h(tag, attrs, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "style") Object.assign(el.style, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function fill(id, ...children) {
  const el = document.getElementById(id);
  el.replaceChildren(...children.flat(Infinity).filter((c) => c));
}

function section(title, subtitle, ...body) {
  return [h("h2", {}, title, subtitle ? h("span", { class: "sub" }, subtitle) : null), h("div", { class: "panel" }, ...body)];
}

function badge(text, kind) {
  return h("span", { class: "badge " + (kind || "") }, text);
}

function fmtTime(s) {
  if (!s) return "—";
  const d = new Date(s);
  if (isNaN(d) || d.getUTCFullYear() < 1971) return "—";
  return d.toISOString().replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC");
}

function fmtLeft(ms) {
  const a = Math.abs(ms);
  let t;
  if (a >= 2 * DAY) t = Math.floor(a / DAY) + " days";
  else if (a >= 3600e3) t = Math.floor(a / 3600e3) + " h";
  else t = Math.max(1, Math.floor(a / 60e3)) + " min";
  return ms < 0 ? "expired " + t + " ago" : t + " left";
}

function level(msLeft) {
  if (msLeft <= 0) return "expired";
  if (msLeft < RED_DAYS * DAY) return "red";
  if (msLeft < AMBER_DAYS * DAY) return "amber";
  return "ok";
}

// expiryBar shows the time left as a share of the validity period, green,
// amber under 30 days, red under 7 days, and a label with the date.
function expiryBar(notBefore, notAfter, now) {
  const end = new Date(notAfter).getTime();
  const start = notBefore ? new Date(notBefore).getTime() : end - 365 * DAY;
  const left = end - now;
  const frac = Math.min(1, Math.max(0, left / Math.max(1, end - start)));
  const lv = level(left);
  return h("div", { class: "expiry " + lv, title: "not after " + fmtTime(notAfter) },
    h("div", { class: "bar" }, h("div", { class: "fill", style: { width: (lv === "expired" ? 100 : Math.max(2, frac * 100)).toFixed(1) + "%" } })),
    h("div", { class: "label" }, h("strong", {}, fmtLeft(left)), " · ", fmtTime(notAfter)));
}

function sans(c) {
  const out = [];
  for (const d of c.dns_names || []) out.push(h("span", { class: "chip" }, d));
  for (const d of c.ips || []) out.push(h("span", { class: "chip ip" }, d));
  for (const d of c.uris || []) out.push(h("span", { class: "chip uri" }, d));
  for (const d of c.emails || []) out.push(h("span", { class: "chip" }, d));
  return out.length ? out : h("span", { class: "muted" }, "none");
}

function certRow(c, now, extra) {
  return h("tr", { class: "cert-row", "data-subject": c.subject },
    h("td", {}, h("div", { class: "subject" }, c.subject), h("div", { class: "small muted" }, (c.name ? c.name + " · " : "") + "serial " + c.serial + (c.file ? " · " + c.file : ""))),
    extra === undefined ? h("td", {}, sans(c)) : null,
    h("td", { class: "expcell" }, expiryBar(c.not_before, c.not_after, now)));
}

const modeKinds = { verify: "good", required: "good", optional: "info", passthrough: "warn", off: "muted", not_requested: "muted" };

// view merges the control plane's and the proxy's sections into one shape.
function view(doc) {
  const cp = doc.control_plane || null;
  const px = doc.proxy || null;
  const v = { cp, px, listeners: [], trust: [], errors: [], expiring: [], threshold: 0 };
  const live = {};
  for (const l of (px && px.listeners) || []) live[l.name] = l;
  if (cp) {
    for (const l of cp.listeners || []) {
      const p = live[l.name];
      // In the proxy's process, a listener the control plane serves may
      // still fail to bind or wait for resources: say so.
      const state = p && !p.serving && l.state === "serving" ? (p.warming ? "warming" : "not serving") : l.state;
      v.listeners.push({
        name: l.name, address: p && p.address ? p.address : l.address, state, mode: l.client_auth,
        trust: l.trust_store, backends: l.backends || [], certs: l.certificates || [], source: l.source_file,
        conns: p ? p.connections : null, serving: p ? p.serving : null,
      });
    }
    v.trust = cp.trust_stores || [];
    v.fetch = cp.crl_fetch || [];
    for (const e of cp.errors || []) v.errors.push(e);
    v.expiring = cp.expiring || [];
    v.threshold = cp.expiry_warning_seconds || 0;
  } else if (px) {
    for (const l of px.listeners || []) {
      v.listeners.push({
        name: l.name, address: l.address, state: l.serving ? "serving" : (l.warming ? "warming" : "not serving"),
        mode: l.client_certificate, backends: [], certs: l.certificates || [], conns: l.connections, serving: l.serving,
      });
    }
    v.trust = px.trust_stores || [];
    v.expiring = px.expiring || [];
    v.threshold = px.expiry_warning_seconds || 0;
  }
  if (px) {
    for (const [res, err] of Object.entries(px.problems || {})) {
      v.errors.push({ file: "xDS " + res, reason: err, last_good_served: true, proxy: true });
    }
    for (const l of px.listeners || []) {
      if (l.error) v.errors.push({ file: "listener " + l.name, listener: l.name, reason: l.error, last_good_served: false, proxy: true });
    }
  }
  return v;
}

function render(doc, fetchedAt) {
  const now = Date.now();
  const v = view(doc);
  const { cp, px } = v;
  document.getElementById("role").textContent = cp && px ? "proxy · standalone" : px ? "proxy · remote xDS" : "control plane";
  const ready = (cp ? cp.ready : true) && (px ? px.ready : true);
  const meta = [badge(ready ? "ready" : "not ready", ready ? "good" : "bad")];
  if (px) meta.push(badge(px.xds_connected ? "xDS connected" : "xDS disconnected", px.xds_connected ? "good" : "bad"));
  if (cp && cp.last_push) meta.push(h("span", {}, "pushed " + fmtTime(cp.last_push)));
  const versions = (cp && cp.versions) || (px && px.versions) || {};
  const vs = Object.entries(versions).sort();
  if (vs.length) meta.push(h("span", { class: "versions", title: vs.map(([k, x]) => k + " " + x).join("\n") }, "versions " + vs.map(([k, x]) => k[0] + ":" + String(x).slice(0, 6)).join(" ")));
  meta.push(h("span", { class: "muted", id: "updated" }, "updated " + new Date(fetchedAt).toLocaleTimeString()));
  fill("meta", meta);

  renderCards(v, now);
  renderProblems(v, now);
  renderListeners(v, now);
  renderHandshakes(v);
  renderBackends(v);
  renderTrust(v, now);
  renderNodes(v);
}

function renderCards(v, now) {
  const { cp, px } = v;
  const certs = v.listeners.flatMap((l) => l.certs);
  const soonest = certs.map((c) => new Date(c.not_after).getTime() - now).sort((a, b) => a - b)[0];
  const cards = [
    card("Listeners", v.listeners.length, v.listeners.filter((l) => l.state === "last_good").length ? "some on last good version" : "all current", v.listeners.some((l) => l.state === "last_good") ? "warn" : ""),
    card("Errors", v.errors.length, v.errors.length ? "see below" : "none", v.errors.length ? "bad" : "good"),
    card("Expiring", v.expiring.length, v.threshold ? "within " + Math.round(v.threshold / 86400) + " days" : "", v.expiring.some((e) => e.state === "expired") ? "bad" : v.expiring.length ? "warn" : "good"),
    card("Next certificate expiry", soonest === undefined ? "—" : fmtLeft(soonest).replace(" left", ""), soonest === undefined ? "" : "server certificates", soonest === undefined ? "" : { expired: "bad", red: "bad", amber: "warn", ok: "good" }[level(soonest)]),
  ];
  if (px && px.handshakes) {
    const t = px.handshakes.totals || {};
    const ok = t.ok || 0;
    const failed = Object.entries(t).filter(([k]) => k !== "ok").reduce((a, [, n]) => a + n, 0);
    cards.push(card("Handshakes, last hour", ok + failed, failed + " refused", failed ? "warn" : "good"));
  } else if (cp) {
    cards.push(card("xDS nodes", (cp.nodes || []).length, "connected", (cp.nodes || []).length ? "good" : "warn"));
  }
  fill("cards", cards);
}

function card(title, value, note, kind) {
  return h("div", { class: "card " + (kind || "") }, h("div", { class: "ctitle" }, title), h("div", { class: "cvalue" }, String(value)), h("div", { class: "cnote" }, note));
}

function renderProblems(v, now) {
  if (!v.errors.length && !v.expiring.length) {
    fill("problems", section("Errors", "current problems, per file", h("p", { class: "empty good" }, "No errors: every file is served as it is on disk.")));
    return;
  }
  const rows = v.errors.map((e) => h("tr", { class: "error-row" },
    h("td", {}, h("div", { class: "file" }, e.file || "(snapshot)"), e.line ? h("div", { class: "small muted" }, "line " + e.line) : null),
    h("td", {}, e.listener || h("span", { class: "muted" }, "—")),
    h("td", { class: "reason" }, e.reason),
    h("td", {}, e.last_good_served ? badge("last good version served", "warn") : badge("not served", "bad"))));
  const parts = [];
  if (rows.length) {
    parts.push(h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Listener"), h("th", {}, "Error"), h("th", {}, "Serving"))), h("tbody", {}, rows)));
  } else {
    parts.push(h("p", { class: "empty good" }, "No errors."));
  }
  if (v.expiring.length) {
    parts.push(h("h3", {}, "Expiring within the warning threshold"));
    parts.push(h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Kind"), h("th", {}, "Secret"), h("th", {}, "Subject / issuer"), h("th", {}, "Expires"))),
      h("tbody", {}, v.expiring.map((e) => h("tr", { class: "expiring-row " + e.state },
        h("td", {}, badge(e.kind === "crl" ? "CRL nextUpdate" : e.kind, e.state === "expired" ? "bad" : "warn")),
        h("td", {}, e.name), h("td", {}, e.subject, e.file ? h("div", { class: "small muted" }, e.file) : null),
        h("td", { class: "expcell" }, e.kind === "crl" ? crlLeft(e.expires, now) : expiryBar(null, e.expires, now)))))));
  }
  fill("problems", section("Errors and expiry", "current problems, per file", parts));
}

function crlLeft(next, now) {
  const left = new Date(next).getTime() - now;
  const lv = left <= 0 ? "expired" : left < DAY ? "red" : left < 3 * DAY ? "amber" : "ok";
  return h("div", { class: "expiry " + lv }, h("div", { class: "label" }, h("strong", {}, left <= 0 ? "stale: fails closed" : fmtLeft(left)), " · ", fmtTime(next)));
}

function renderListeners(v, now) {
  if (!v.listeners.length) {
    fill("listeners", section("Listeners", "", h("p", { class: "empty" }, "No listener is served yet.")));
    return;
  }
  const blocks = v.listeners.map((l) => {
    const state = l.state === "last_good" ? badge("last good version", "warn") : l.state === "serving" ? badge("serving", "good") : badge(l.state, "bad");
    return h("div", { class: "listener" },
      h("table", { class: "kv" }, h("tbody", {}, h("tr", { class: "listener-row", "data-listener": l.name },
        h("td", { class: "lname" }, l.name),
        h("td", {}, h("span", { class: "mono" }, l.address)),
        h("td", {}, "client certificates ", badge(l.mode || "—", modeKinds[l.mode] || "")),
        h("td", {}, l.trust ? ["trust ", h("span", { class: "mono" }, l.trust)] : null),
        h("td", {}, l.backends.length ? ["→ ", l.backends.join(", ")] : null),
        h("td", {}, l.conns !== null && l.conns !== undefined ? l.conns + " open connections" : null),
        h("td", { class: "right" }, state)))),
      l.certs.length
        ? h("table", { class: "certs" }, h("thead", {}, h("tr", {}, h("th", {}, "Certificate"), h("th", {}, "Subject alternative names"), h("th", {}, "Time left"))), h("tbody", {}, l.certs.map((c) => certRow(c, now))))
        : h("p", { class: "empty" }, "No certificate."));
  });
  fill("listeners", section("Listeners", "mode, address and the certificates presented", blocks));
}

function renderTrust(v, now) {
  if (!v.trust.length) {
    fill("trust", section("Trust stores", "", h("p", { class: "empty" }, "No trust store is referenced.")));
    return;
  }
  const blocks = v.trust.map((ts) => h("div", { class: "store" },
    h("div", { class: "storehead" }, h("strong", {}, ts.name), " ", ts.state === "last_good" ? badge("last good version", "warn") : badge("serving", "good"),
      h("span", { class: "muted small" }, " " + (ts.ca_count || 0) + " CA" + (ts.ca_count === 1 ? "" : "s") + ", " + (ts.crls || []).length + " CRL" + ((ts.crls || []).length === 1 ? "" : "s") + ((ts.files || []).length ? " · " + ts.files.join(", ") : ""))),
    h("table", { class: "certs" }, h("thead", {}, h("tr", {}, h("th", {}, "CA"), h("th", {}, "Time left"))), h("tbody", {}, (ts.cas || []).map((c) => certRow(c, now, false)))),
    (ts.crls || []).length
      ? h("table", { class: "certs" }, h("thead", {}, h("tr", {}, h("th", {}, "CRL issuer"), h("th", {}, "Number"), h("th", {}, "Revoked"), h("th", {}, "This update"), h("th", {}, "Next update"))),
        h("tbody", {}, ts.crls.map((c) => h("tr", { class: "crl-row" }, h("td", {}, c.issuer), h("td", { class: "mono" }, c.number || "—"), h("td", {}, String(c.revoked)), h("td", {}, fmtTime(c.this_update)), h("td", { class: "expcell" }, crlLeft(c.next_update, now))))))
      : h("p", { class: "small muted" }, "No CRL: revocation is not checked for this store."),
    fetchTable((v.fetch || []).filter((f) => f.store === ts.name), now)));
  fill("trust", section("Trust stores", "CAs and each CRL's nextUpdate", blocks));
}

// fetchTable lists the CRL distribution points of one store (crl_fetch).
function fetchTable(rows, now) {
  if (!rows.length) return null;
  const kinds = { ok: "good", pending: "", failing: "warn", stale: "bad" };
  return h("table", { class: "certs" }, h("thead", {}, h("tr", {}, h("th", {}, "CRL fetched from"), h("th", {}, "State"), h("th", {}, "Last success"), h("th", {}, "Last error"), h("th", {}, "Next update"))),
    h("tbody", {}, rows.map((f) => h("tr", { class: "crlfetch-row", "data-state": f.state },
      h("td", { class: "mono" }, f.url),
      h("td", {}, badge(f.state === "stale" ? "stale: fails closed" : f.state, kinds[f.state] || "")),
      h("td", {}, f.last_success ? fmtTime(f.last_success) : "—"),
      h("td", { class: "reason" }, f.last_error ? (f.last_reason + ": " + f.last_error) : "—"),
      h("td", { class: "expcell" }, f.next_update ? crlLeft(f.next_update, now) : "—")))));
}

function renderHandshakes(v) {
  const px = v.px;
  if (!px || !px.handshakes) {
    fill("handshakes", section("Handshakes", "last hour", h("p", { class: "empty" }, "No data plane in this process: Envoy counts handshakes in its listener statistics (ssl.connection_error, ssl.fail_verify_*), certplane proxy on its own page.")));
    return;
  }
  const hs = px.handshakes;
  const reasons = hs.reasons || [];
  const color = {};
  let ci = 1;
  for (const r of reasons) color[r] = r === "ok" ? REASON_COLORS[0] : REASON_COLORS[Math.min(ci++, REASON_COLORS.length - 1)];
  const W = 600, H = 140, pad = 24;
  const mins = hs.minutes || [];
  const totals = mins.map((m) => Object.values(m.counts || {}).reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const bw = (W - pad) / Math.max(1, mins.length);
  const svg = h("svg:svg", { viewBox: `0 0 ${W} ${H + 18}`, class: "chart", role: "img", "aria-label": "handshakes per minute over the last hour, by result" });
  const ticks = max >= 4 ? [0, Math.round(max / 2), max] : [0, max];
  for (const t of ticks) {
    const y = H - (t / max) * (H - 10);
    svg.append(h("svg:line", { x1: pad, x2: W, y1: y, y2: y, class: "grid" }));
    svg.append(h("svg:text", { x: pad - 4, y: y + 3, class: "axis", "text-anchor": "end" }, String(t)));
  }
  mins.forEach((m, i) => {
    let y = H;
    for (const r of reasons) {
      const n = (m.counts || {})[r] || 0;
      if (!n) continue;
      const hgt = (n / max) * (H - 10);
      y -= hgt;
      svg.append(h("svg:rect", { x: pad + i * bw + 1, y, width: Math.max(1, bw - 2), height: hgt, fill: color[r] }, h("svg:title", {}, `${new Date(m.start).toLocaleTimeString()} ${r}: ${n}`)));
    }
  });
  svg.append(h("svg:text", { x: pad, y: H + 14, class: "axis" }, "−60 min"));
  svg.append(h("svg:text", { x: W, y: H + 14, class: "axis", "text-anchor": "end" }, "now"));
  const legend = reasons.length
    ? h("ul", { class: "legend" }, reasons.map((r) => h("li", { class: "reason-row" }, h("span", { class: "swatch", style: { background: color[r] } }), r === "ok" ? "ok" : r, h("span", { class: "count" }, String(hs.totals[r])))))
    : h("p", { class: "small muted" }, "No handshake in the last hour.");
  fill("handshakes", section("Handshakes", "per minute, by result, last hour", svg, legend));
}

function renderBackends(v) {
  const px = v.px;
  if (px && (px.clusters || []).length) {
    const rows = [];
    for (const c of px.clusters) {
      const hosts = c.hosts || [];
      const up = hosts.filter((x) => x.healthy && !x.ejected).length;
      rows.push(h("tr", { class: "backend-row" }, h("td", {}, h("strong", {}, c.name)), h("td", {}, badge(up + "/" + hosts.length + " healthy", up === hosts.length && up ? "good" : up ? "warn" : "bad")),
        h("td", {}, hosts.map((x) => h("span", { class: "host " + (x.ejected ? "ejected" : x.healthy ? "up" : "down"), title: x.ejected ? "ejected by outlier detection" : x.healthy ? "healthy" : "failing health checks" }, h("span", { class: "dot" }), x.address)))));
    }
    fill("backends", section("Backends", "endpoint health, as the proxy sees it", h("table", {}, h("tbody", {}, rows))));
    return;
  }
  const names = [...new Set(v.listeners.flatMap((l) => l.backends))].sort();
  fill("backends", section("Backends", "", names.length
    ? [h("table", {}, h("tbody", {}, names.map((n) => h("tr", { class: "backend-row" }, h("td", {}, h("strong", {}, n)), h("td", { class: "muted" }, "health is checked by the data plane"))))),
      h("p", { class: "small muted" }, "No data plane in this process: see Envoy's /clusters, or certplane proxy's page.")]
    : h("p", { class: "empty" }, "No backend is referenced.")));
}

function renderNodes(v) {
  const cp = v.cp;
  if (!cp) {
    fill("nodes");
    return;
  }
  const nodes = cp.nodes || [];
  if (!nodes.length) {
    fill("nodes", section("xDS nodes", "connected data planes", h("p", { class: "empty" }, "No node is connected.")));
    return;
  }
  const rows = [];
  for (const n of nodes) {
    const types = Object.entries(n.types || {}).sort();
    types.forEach(([t, s], i) => {
      const acked = s.last_acked && s.last_acked === (cp.versions || {})[t];
      rows.push(h("tr", { class: "node-row" },
        i === 0 ? h("td", { rowspan: types.length }, h("strong", {}, n.id), h("div", { class: "small muted" }, [n.cluster, n.peer === "@" ? "unix socket" : n.peer].filter(Boolean).join(" · ")), h("div", { class: "small muted" }, "since " + fmtTime(n.connected))) : null,
        h("td", {}, t),
        h("td", { class: "mono" }, s.last_acked || "—", s.last_acked ? " " : null, s.last_acked ? badge(acked ? "current" : "behind", acked ? "good" : "warn") : null),
        h("td", { class: "mono" }, s.last_nacked ? [badge("NACK", "bad"), " " + s.last_nacked] : "—", s.nack_detail ? h("div", { class: "small reason" }, s.nack_detail) : null)));
    });
    if (!types.length) rows.push(h("tr", { class: "node-row" }, h("td", {}, h("strong", {}, n.id)), h("td", { colspan: 3, class: "muted" }, "no request yet")));
  }
  fill("nodes", section("xDS nodes", "versions each node ACKed and NACKed", h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Node"), h("th", {}, "Type"), h("th", {}, "ACKed"), h("th", {}, "NACKed"))), h("tbody", {}, rows))));
}

async function refresh() {
  try {
    const resp = await fetch("/status", { cache: "no-store", headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error("HTTP " + resp.status);
    render(await resp.json(), Date.now());
    fill("banner");
  } catch (e) {
    fill("banner", h("p", { class: "banner bad" }, "Cannot refresh (" + e.message + "): the data below may be stale."));
  }
}

function start() {
  const el = document.getElementById("initial-status");
  try {
    render(JSON.parse(el.textContent), Date.now());
  } catch (e) {
    fill("banner", h("p", { class: "banner bad" }, "Cannot render the status: " + e.message));
  }
  document.getElementById("refresh").textContent = "refreshes every " + REFRESH_MS / 1000 + " s";
  setInterval(refresh, REFRESH_MS);
}

start();
