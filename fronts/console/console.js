// The maas console. Signs in with an API key (kept in this tab's session
// storage), reads the management API with it, and draws every live number
// and chart from one stream (/v1/console/stream, a tick a second). The API
// decides what a key may see and do; this page only leaves out actions the
// key's role would be refused.
"use strict";

const HISTORY_SECONDS = 300;
const REFRESH_MS = 5000;
const page = { key: null, who: null, tick: null, history: new Map(), stream: null, refresh: null, retry: null, view: null, closeConfirm: null };

const $ = (id) => document.getElementById(id);

function element(name, attributes = {}, ...children) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// --- the API -------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(method, path, body) {
  const options = { method, headers: { Authorization: `Bearer ${page.key}` } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
  if (!response.ok) throw new ApiError(response.status, (json && json.error) || `${response.status} ${response.statusText}`);
  return json;
}

function say(message, kind = "ok") {
  const outcome = $("outcome");
  outcome.textContent = message;
  outcome.className = kind;
}

// --- signing in ----------------------------------------------------------

async function signIn(key) {
  page.key = key;
  try {
    page.who = await api("GET", "/v1/whoami");
  } catch (error) {
    page.key = null;
    if (error.status === 401 || error.status === 403) sessionStorage.removeItem("maas-key");
    $("sign-in-error").textContent = `Sign-in failed: ${error.message}`;
    showSignIn();
    return;
  }
  sessionStorage.setItem("maas-key", key);
  $("sign-in-error").textContent = "";
  $("sign-in").hidden = true;
  $("nav").hidden = false;
  $("sign-out").hidden = false;
  $("view").hidden = false;
  const who = page.who;
  $("who").textContent = `${who.tenant} · ${who.role}` + (who.scope.includes("*") ? "" : ` · ${who.scope.join(", ")}`);
  document.querySelector('nav a[data-view="cluster"]').hidden = !who.may_administer;
  startStream();
  route();
}

function signOut(message = "") {
  sessionStorage.removeItem("maas-key");
  if (page.stream) page.stream.abort();
  clearInterval(page.refresh);
  clearTimeout(page.retry);
  if (page.closeConfirm) page.closeConfirm();
  Object.assign(page, { key: null, who: null, tick: null, stream: null, view: null });
  page.history.clear();
  $("view").replaceChildren();
  $("outcome").textContent = "";
  $("stream-state").textContent = "not connected";
  $("tick-at").textContent = "";
  $("sign-in-error").textContent = message;
  showSignIn();
}

function showSignIn() {
  $("sign-in").hidden = false;
  $("nav").hidden = true;
  $("sign-out").hidden = true;
  $("view").hidden = true;
  $("who").textContent = "";
  $("key").focus();
}

// --- the live stream -----------------------------------------------------

async function startStream(attempt = 0) {
  if (page.stream) page.stream.abort();
  const controller = new AbortController();
  page.stream = controller;
  const state = $("stream-state");
  let reason = "the stream ended";
  try {
    const response = await fetch("/v1/console/stream", {
      headers: { Authorization: `Bearer ${page.key}` }, signal: controller.signal,
    });
    if (response.status === 401) return signOut("The key is no longer accepted: sign in again.");
    if (response.status === 403) {
      state.textContent = "no live data: this key may not watch the cluster (it takes a viewer, deployer or admin key)";
      return;
    }
    if (!response.ok) throw new Error(`the stream was refused (${response.status})`);
    state.textContent = "live";
    attempt = 0;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (!data) continue;
        try {
          onTick(JSON.parse(data));
        } catch (error) {
          say(`Could not show the latest data: ${error.message}`, "error");
        }
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
    reason = error.message;
  }
  if (page.stream !== controller || controller.signal.aborted) return;
  // Back off, with jitter, up to half a minute between tries.
  const delay = Math.min(30000, 1000 * 2 ** attempt) * (0.5 + Math.random() / 2);
  state.textContent = `reconnecting in ${Math.round(delay / 1000)} s (${reason})`;
  page.retry = setTimeout(() => { if (page.key && page.stream === controller) startStream(attempt + 1); }, delay);
}

function onTick(tick) {
  const previous = page.tick;
  page.tick = tick;
  const present = new Set(tick.versions.map((v) => `${v.live.model}/${v.live.version}`));
  for (const key of [...page.history.keys()]) if (!present.has(key)) page.history.delete(key);
  for (const v of tick.versions) {
    const key = `${v.live.model}/${v.live.version}`;
    let points = page.history.get(key) || [];
    let before = points.length > 0 ? points[points.length - 1].totals : null;
    // Counters that went down come from another coordinator or a reload.
    if (before && v.success + v.fail < before.success + before.fail) {
      points = [];
      before = null;
    }
    const requests = before ? (v.success + v.fail) - (before.success + before.fail) : 0;
    const perRequest = (now, then) => (requests > 0 ? (now - then) / requests / 1e6 : NaN);
    points.push({
      at: tick.at,
      rps: v.live.requests_per_second,
      p50: v.live.p50_seconds == null ? NaN : v.live.p50_seconds * 1000,
      p99: v.live.p99_seconds == null ? NaN : v.live.p99_seconds * 1000,
      errors: v.live.error_rate * 100,
      batch: v.live.mean_batch_rows == null ? NaN : v.live.mean_batch_rows,
      queue: before ? perRequest(v.queue_ns, before.queue_ns) : NaN,
      compute: before ? perRequest(v.compute_ns, before.compute_ns) : NaN,
      totals: { success: v.success, fail: v.fail, queue_ns: v.queue_ns, compute_ns: v.compute_ns },
    });
    while (points.length > 0 && points[0].at < tick.at - HISTORY_SECONDS) points.shift();
    page.history.set(key, points);
  }
  $("tick-at").textContent = `· updated ${new Date(tick.at * 1000).toLocaleTimeString()}`;
  $("tick-at").dataset.at = String(tick.at);
  if (page.view && page.view.live) page.view.live(tick, previous);
}

// --- routing -------------------------------------------------------------

function route() {
  if (!page.key) return;
  let hash;
  try {
    hash = decodeURIComponent(location.hash.slice(1)) || "models";
  } catch (_) {
    hash = "models";
  }
  const [name, ...rest] = hash.split("/");
  const view = $("view");
  view.replaceChildren();
  clearInterval(page.refresh);
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === name || (name === "model" && link.dataset.view === "models")) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const views = { cluster: clusterView, models: modelsView, model: modelView, alerts: alertsView };
  page.view = (views[name] || modelsView)(view, rest.join("/"));
  if (page.view.refresh) {
    page.view.refresh();
    page.refresh = setInterval(page.view.refresh, REFRESH_MS);
  }
  if (page.tick && page.view.live) page.view.live(page.tick, null);
}

// --- shared pieces -------------------------------------------------------

function table(columns) {
  const head = element("tr", {}, ...columns.map(([label, numeric]) => element("th", { scope: "col", class: numeric ? "num" : "", text: label })));
  const body = element("tbody");
  const node = element("div", { class: "table-wrap" }, element("table", {}, element("thead", {}, head), body));
  return { node, body };
}

// Keeps one row (or list item) per item in `body`, keyed by `keyOf`: rows are made once
// (so buttons in them keep focus) and their cells rewritten each time.
function syncRows(body, items, keyOf, makeRow, fillRow) {
  const seen = new Set();
  const rows = new Map([...body.children].map((r) => [r.dataset.key, r]));
  for (const item of items) {
    const key = keyOf(item);
    seen.add(key);
    let row = rows.get(key);
    if (!row) {
      row = makeRow(item);
      row.dataset.key = key;
      body.append(row);
    }
    fillRow(row, item);
  }
  for (const row of [...body.children]) if (!seen.has(row.dataset.key)) row.remove();
}

function cells(row, values) {
  values.forEach((value, index) => {
    const text = value == null ? "–" : String(value);
    if (row.cells[index].textContent !== text) row.cells[index].textContent = text;
  });
}

function ms(seconds) {
  return seconds == null ? null : `${(seconds * 1000).toFixed(1)} ms`;
}

function bytes(count) {
  if (count >= 1 << 30) return `${(count / (1 << 30)).toFixed(1)} GiB`;
  if (count >= 1 << 20) return `${(count / (1 << 20)).toFixed(1)} MiB`;
  return `${(count / 1024).toFixed(0)} KiB`;
}

// Asks "Confirm" with `text` naming what will change; runs `action` on yes
// and shows its outcome. Focus starts on Cancel for what cannot be undone
// (`risky`), stays inside the dialog, and held keys do not repeat into it.
function confirmThen(text, action, risky = false) {
  if (page.closeConfirm) page.closeConfirm();
  const dialog = $("confirm");
  const buttons = [$("confirm-cancel"), $("confirm-ok")];
  const opener = document.activeElement;
  $("confirm-text").textContent = text;
  dialog.hidden = false;
  (risky ? buttons[0] : buttons[1]).focus();
  const onKey = (event) => {
    if (event.repeat) {
      event.preventDefault();
    } else if (event.key === "Escape") {
      close();
      say("Cancelled: nothing changed.", "muted");
    } else if (event.key === "Tab") {
      event.preventDefault();
      const next = buttons[(buttons.indexOf(document.activeElement) + 1) % buttons.length];
      next.focus();
    }
  };
  const close = () => {
    dialog.hidden = true;
    buttons.forEach((b) => { b.onclick = null; });
    document.removeEventListener("keydown", onKey, true);
    page.closeConfirm = null;
    if (opener && document.contains(opener)) opener.focus();
  };
  page.closeConfirm = close;
  document.addEventListener("keydown", onKey, true);
  buttons[0].onclick = () => { close(); say("Cancelled: nothing changed.", "muted"); };
  buttons[1].onclick = async () => {
    close();
    try {
      say(await action());
      if (page.view && page.view.refresh) page.view.refresh();
    } catch (error) {
      say(`Refused: ${error.message}`, "error");
    }
  };
}

// --- views ---------------------------------------------------------------

function clusterView(root) {
  root.append(element("h2", { text: "Cluster" }));
  if (!page.who.may_administer) {
    root.append(element("p", { class: "muted", text: "This key cannot see the cluster: that takes an admin key." }));
    return {};
  }
  const summary = element("p", { id: "cluster-summary" });
  const nodes = table([["Node"], ["Address"], ["State"], ["In flight", true], ["Outstanding", true], ["Memory"], ["Models loaded"], ["Action"]]);
  nodes.body.id = "nodes";
  const placement = table([["Model / version"], ["Placed on"]]);
  placement.body.id = "placement";
  root.append(summary, element("h3", { text: "Nodes" }), nodes.node, element("h3", { text: "Placement" }), placement.node);
  return {
    live(tick) {
      const cluster = tick.cluster;
      if (!cluster) return;
      const leader = cluster.placement ? cluster.placement.leader : null;
      summary.textContent = `Mode: ${cluster.mode}. This coordinator ${cluster.leader ? "leads" : "follows"}` +
        (leader ? `; the placement was written by ${leader}` : "") +
        (cluster.coordinators ? `. Coordinators: ${cluster.coordinators.join(", ") || "none registered"}` : "") +
        (cluster.members ? `. ${cluster.members.length} nodes registered in etcd` : "") +
        (cluster.etcd ? `. etcd: ${cluster.etcd.healthy ? "healthy" : "NOT ANSWERING"} (${cluster.etcd.detail}).` : ".");
      syncRows(nodes.body, cluster.links, (l) => l.name, (link) => {
        const row = element("tr", {}, ...Array.from({ length: 7 }, () => element("td")), element("td"));
        row.cells[3].className = row.cells[4].className = "num";
        const drain = element("button", { type: "button", class: "danger", "data-action": "drain", text: "Drain" });
        drain.setAttribute("aria-label", `Drain node ${link.name}`);
        drain.addEventListener("click", () => confirmThen(
          `Drain node '${link.name}' (${link.addr})? It leaves the cluster: its replicas are placed on other nodes, ` +
          `it finishes what it has in flight and exits.`,
          async () => { await api("POST", `/v1/cluster/nodes/${encodeURIComponent(link.name)}/drain`); return `Node '${link.name}' is draining.`; },
          true));
        row.cells[7].append(drain);
        return row;
      }, (row, link) => {
        const status = link.status;
        const state = !link.up ? "down" : status && status.draining ? "draining" : link.status_error ? `no status: ${link.status_error}` : "up";
        const memory = status ? `${bytes(status.memory_used_bytes)} of ${bytes(status.memory_bytes)}` : null;
        const models = status ? status.models.map((m) => `${m.name} v${m.version} (${m.queued} queued)`).join(", ") || "none" : null;
        cells(row, [link.name, link.addr, state, status ? status.in_flight : null, link.outstanding, memory, models]);
      });
      const assignments = cluster.placement ? Object.entries(cluster.placement.assignments || {}) : [];
      syncRows(placement.body, assignments, ([key]) => key, () => element("tr", {}, element("td"), element("td")),
        (row, [key, assignment]) => cells(row, [key, (assignment.nodes || []).join(", ") || "nowhere"]));
    },
  };
}

function versionTotals(tick, model) {
  return tick ? tick.versions.filter((v) => v.live.model === model) : [];
}

function modelsView(root) {
  root.append(element("h2", { text: "Models" }));
  const models = table([["Model"], ["Versions"], ["State"], ["Replicas ready/wanted"], ["Aliases"], ["Split"], ["Requests/s", true], ["p99", true], ["Errors", true]]);
  models.body.id = "models";
  const empty = element("p", { class: "muted", text: "Loading…" });
  root.append(empty, models.node);
  let listed = [];
  const draw = () => {
    syncRows(models.body, listed, (m) => m.name, (m) => {
      const row = element("tr", {}, ...Array.from({ length: 9 }, () => element("td")));
      [6, 7, 8].forEach((i) => { row.cells[i].className = "num"; });
      row.cells[0].append(element("a", { href: `#model/${encodeURIComponent(m.name)}`, text: m.name }));
      return row;
    }, (row, m) => {
      const live = versionTotals(page.tick, m.name);
      const rps = live.reduce((sum, v) => sum + v.live.requests_per_second, 0);
      const p99 = Math.max(...live.map((v) => v.live.p99_seconds || 0), 0);
      const errors = live.reduce((sum, v) => sum + v.live.error_rate * v.live.requests_per_second, 0);
      const states = m.states || [];
      const values = [m.versions.join(", "),
        states.map((st) => `v${st.version} ${st.state}${st.rollout ? " (rollout waiting)" : ""}`).join(", ") || "none served",
        states.map((st) => `v${st.version}: ${st.ready_replicas}/${st.wanted_replicas}`).join(", ") || "–",
        Object.entries(m.aliases).map(([a, v]) => `${a} → ${v}`).join(", ") || "–",
        m.split.map((s) => `v${s.version}: ${s.weight}`).join(", ") || "–",
        rps.toFixed(1), p99 > 0 ? ms(p99) : "–", rps > 0 ? `${((errors / rps) * 100).toFixed(1)} %` : "–"];
      values.forEach((value, index) => { if (row.cells[index + 1].textContent !== value) row.cells[index + 1].textContent = value; });
      const reasons = states.map((st) => `version ${st.version}: ${st.reason}`).join("\n");
      if (row.cells[2].title !== reasons) row.cells[2].title = reasons;
    });
  };
  return {
    async refresh() {
      try {
        const answer = await api("GET", "/v1/models");
        listed = answer.models.length > 0 || answer.data.length === 0
          ? answer.models
          : answer.data.map((m) => ({ name: m.id, versions: [], ready_versions: [], aliases: {}, split: [], states: [] }));
        empty.textContent = listed.length === 0 ? "No models this key can see." : "";
        draw();
      } catch (error) {
        empty.textContent = `Could not list models: ${error.message}`;
      }
    },
    live: draw,
  };
}

function modelView(root, model) {
  root.append(element("p", {}, element("a", { href: "#models", text: "← All models" })), element("h2", { text: `Model ${model}` }));
  const versions = table([["Version"], ["Platform"], ["State"], ["Replicas ready/wanted", true], ["Answered", true], ["Failed", true], ["Requests/s", true], ["p50", true], ["p99", true], ["In flight", true], ["Queued", true], ["Published"]]);
  versions.body.id = "versions";
  const states = element("ul", { id: "version-states" });
  const routing = element("p", { id: "routing" });
  const actions = element("div", { id: "actions" });
  const charts = element("div", { class: "cards", id: "charts" });
  const chartSpecs = [
    ["chart-rps", "Requests per second", "req/s", (p) => p.rps],
    ["chart-latency", "Latency p50 and p99", "ms", null],
    ["chart-errors", "Errors", "%", (p) => p.errors],
    ["chart-batch", "Mean batch size", "rows", (p) => p.batch],
    ["chart-time", "Queue and compute time per request", "ms", null],
  ];
  const figures = chartSpecs.map(([id, title, unit]) => makeChart(charts, id, title, unit));
  const alerts = element("ul", { id: "model-alerts" });
  const drift = table([["Version"], ["Input"], ["Drift (PSI)", true]]);
  drift.body.id = "drift";
  const evaluation = element("div", { id: "evaluation" });
  root.append(versions.node, states, routing, actions, element("h3", { text: "Live, up to the last 5 minutes" }), charts,
    element("h3", { text: "Alerts" }), alerts, element("h3", { text: "Input drift" }), drift.node,
    element("h3", { text: "Evaluation from feedback" }), evaluation);
  let detail = null;
  let drawnRouting = null;

  const drawActions = () => {
    actions.replaceChildren();
    if (!detail || !page.who.may_deploy) return;
    const versionOptions = () => detail.versions.map((v) => element("option", { value: v.version, text: `version ${v.version}` }));
    // Move an alias.
    const aliasNames = Object.keys(detail.aliases);
    const aliasInput = element("input", { id: "alias-name", list: "alias-list", value: aliasNames[0] || "stable", size: 10 });
    const list = element("datalist", { id: "alias-list" }, ...aliasNames.map((a) => element("option", { value: a })));
    const target = element("select", { id: "alias-version" }, ...versionOptions());
    const move = element("button", { type: "button", class: "primary", id: "move-alias", text: "Move alias" });
    move.addEventListener("click", () => {
      const alias = aliasInput.value.trim();
      if (!alias) {
        say("Name the alias to move.", "error");
        aliasInput.focus();
        return;
      }
      const version = Number(target.value);
      const current = Object.hasOwn(detail.aliases, alias) ? detail.aliases[alias] : null;
      const change = current ? `from version ${current.version} to version ${version}` : `(new) to version ${version}`;
      confirmThen(`Move alias '${alias}' of model '${model}' ${change}? Requests for '${model}:${alias}' will be answered by version ${version}.`,
        async () => { await api("PUT", `/v1/models/${encodeURIComponent(model)}/aliases/${encodeURIComponent(alias)}`, { version });
          return `Alias '${alias}' of '${model}' now points to version ${version}.`; });
    });
    actions.append(element("h3", { text: "Actions" }),
      element("div", { class: "form-row" }, element("label", { for: "alias-name", text: "Alias" }), aliasInput, list,
        element("label", { for: "alias-version", text: "to" }), target, move));
    // Roll an alias back.
    for (const [alias, state] of Object.entries(detail.aliases)) {
      if (state.history.length === 0) continue;
      const back = state.history[state.history.length - 1];
      const button = element("button", { type: "button", "data-action": "rollback", text: `Roll back '${alias}' to version ${back}` });
      button.addEventListener("click", () => confirmThen(
        `Roll back alias '${alias}' of model '${model}' from version ${state.version} to version ${back}?`,
        async () => { const done = await api("POST", `/v1/models/${encodeURIComponent(model)}/aliases/${encodeURIComponent(alias)}/rollback`);
          return `Alias '${alias}' of '${model}' rolled back from version ${done.from} to version ${done.version}.`; }));
      actions.append(element("div", { class: "form-row" }, button));
    }
    // Change the split.
    const weights = detail.versions.map((v) => {
      const current = detail.split.find((s) => s.version === v.version);
      return element("input", { type: "number", min: 0, max: 1000000, value: current ? current.weight : 0, size: 5,
        id: `split-${v.version}`, "data-version": v.version, "aria-label": `Weight of version ${v.version}` });
    });
    const setSplit = element("button", { type: "button", id: "set-split", text: "Set split" });
    setSplit.addEventListener("click", () => {
      const split = weights.map((w) => ({ version: Number(w.dataset.version), weight: Number(w.value) })).filter((s) => s.weight > 0);
      const was = detail.split.map((s) => `v${s.version}: ${s.weight}`).join(", ") || "none (the latest version answers)";
      const now = split.map((s) => `v${s.version}: ${s.weight}`).join(", ") || "none";
      confirmThen(`Set the traffic split of model '${model}' to ${now}? It is now ${was}.`,
        async () => { await api("PUT", `/v1/models/${encodeURIComponent(model)}/split`, { split });
          return `Split of '${model}' set to ${now}.`; });
    });
    const row = element("div", { class: "form-row" }, element("span", { class: "muted", text: "Split weights:" }));
    weights.forEach((w) => row.append(element("label", { for: w.id, text: `v${w.dataset.version}` }), w));
    row.append(setSplit);
    actions.append(row);
  };

  const drawVersions = (tick) => {
    if (!detail) return;
    const live = versionTotals(tick, model);
    syncRows(versions.body, detail.versions, (v) => String(v.version), () => {
      const row = element("tr", {}, ...Array.from({ length: 12 }, () => element("td")));
      for (let i = 3; i <= 10; i++) row.cells[i].className = "num";
      return row;
    }, (row, v) => {
      const now = live.find((l) => l.live.version === v.version);
      row.dataset.version = String(v.version);
      row.cells[2].dataset.stat = "state";
      row.cells[4].dataset.stat = "success";
      cells(row, [v.version, v.config.platform || "pytorch_libtorch", v.state.state, `${v.state.ready_replicas}/${v.state.wanted_replicas}`,
        now ? now.success : 0, now ? now.fail : 0, now ? now.live.requests_per_second.toFixed(1) : "0.0",
        now ? ms(now.live.p50_seconds) : null, now ? ms(now.live.p99_seconds) : null,
        now ? now.live.in_flight : 0, now ? now.live.queued : 0,
        new Date(v.lineage.uploaded_at * 1000).toLocaleString()]);
    });
    const aliases = Object.entries(detail.aliases).map(([a, s]) => `${a} → ${s.version}`).join(", ") || "none";
    const split = detail.split.map((s) => `v${s.version}: ${s.weight}`).join(", ") || "none (the latest ready version answers)";
    routing.textContent = `Aliases: ${aliases}. Split: ${split}. Ready versions: ${detail.ready_versions.join(", ") || "none"}.`;
    // Each version's state with its reason, its last scaling decision and
    // the rollout waiting for it.
    syncRows(states, detail.versions, (v) => String(v.version), () => element("li"), (item, v) => {
      const st = v.state;
      const parts = [`Version ${v.version}: ${st.state}: ${st.reason}.`];
      if (st.placed_on.length > 0) parts.push(`Placed on ${st.placed_on.join(", ")}.`);
      if (st.scaling) parts.push(`Last scaling: ${st.scaling}.`);
      if (st.rollout) parts.push(`Rollout: ${st.rollout}.`);
      const text = parts.join(" ");
      item.dataset.version = String(v.version);
      item.dataset.state = st.state;
      if (item.textContent !== text) item.textContent = text;
    });
  };

  return {
    async refresh() {
      try {
        const fresh = await api("GET", `/v1/models/${encodeURIComponent(model)}`);
        const routingOf = (d) => d && JSON.stringify([d.revision, d.aliases, d.split, d.versions.map((v) => v.version)]);
        detail = fresh;
        // Redrawn when the routing changed, but not under a user's typing;
        // a focused button keeps the focus (its id is stable).
        const focused = actions.contains(document.activeElement) ? document.activeElement : null;
        const typing = focused && (focused.tagName === "INPUT" || focused.tagName === "SELECT");
        if (routingOf(fresh) !== drawnRouting && !typing) {
          drawActions();
          drawnRouting = routingOf(fresh);
          if (focused && focused.id && $(focused.id)) $(focused.id).focus();
        }
        drawVersions(page.tick);
      } catch (error) {
        routing.textContent = `Could not read model '${model}': ${error.message}`;
      }
      if (!versionTotals(page.tick, model).some((v) => v.evaluated)) {
        evaluation.replaceChildren(element("p", { class: "muted", text: "No feedback yet: send requests with an id, then their labels." }));
        return;
      }
      try {
        const scores = await api("GET", `/v1/models/${encodeURIComponent(model)}/evaluation`);
        const metrics = ["accuracy", "precision", "recall", "f1", "mae", "rmse", "mean_rating"].filter((m) => scores.versions.some((v) => v[m] != null));
        const scored = table([["Version"], ["Samples", true], ...metrics.map((m) => [m, true])]);
        for (const v of scores.versions) {
          scored.body.append(element("tr", {}, element("td", { text: v.version }), element("td", { class: "num", text: v.samples }),
            ...metrics.map((m) => element("td", { class: "num", text: v[m] == null ? "–" : v[m].toFixed(3) }))));
        }
        evaluation.replaceChildren(element("p", { text: `Task: ${scores.task}; ${scores.feedback.joined} labels joined.` }), scored.node);
      } catch (error) {
        evaluation.replaceChildren(element("p", { class: "muted", text: error.status === 404 ? "No feedback yet." : `Unavailable: ${error.message}` }));
      }
    },
    live(tick) {
      drawVersions(tick);
      const mine = versionTotals(tick, model);
      const series = (pick, suffix = "") => mine.map((v) => ({
        label: `v${v.live.version}${suffix}`,
        points: (page.history.get(`${model}/${v.live.version}`) || []).map((p) => [p.at, pick(p)]),
      }));
      // The last minute at first, growing to five as history builds up.
      const earliest = Math.min(...mine.map((v) => ((page.history.get(`${model}/${v.live.version}`) || [])[0] || { at: tick.at }).at));
      const span = Math.min(HISTORY_SECONDS, Math.max(60, Math.ceil((tick.at - earliest) / 60) * 60));
      chartSpecs.forEach(([id, , , pick], index) => {
        let lines;
        if (id === "chart-latency") lines = [...series((p) => p.p50, " p50"), ...series((p) => p.p99, " p99")];
        else if (id === "chart-time") lines = [...series((p) => p.queue, " queue"), ...series((p) => p.compute, " compute")];
        else lines = series(pick);
        drawChart(figures[index], lines, tick.at, span);
      });
      const standing = tick.alerts.filter((a) => a.model === model);
      alerts.replaceChildren(...(standing.length === 0 ? [element("li", { class: "muted", text: "None standing." })]
        : standing.map((a) => element("li", { class: "warn", text: describeAlert(a) }))));
      const rows = mine.flatMap((v) => v.drift.map((d) => ({ version: v.live.version, ...d })));
      syncRows(drift.body, rows, (d) => `${d.version}/${d.input}`, () => element("tr", {}, element("td"), element("td"), element("td", { class: "num" })),
        (row, d) => cells(row, [d.version, d.input, d.score == null ? "building reference" : d.score.toFixed(3)]));
    },
  };
}

function describeAlert(alert) {
  const input = alert.input ? ` input '${alert.input}'` : "";
  const since = new Date(alert.since * 1000).toLocaleTimeString();
  const cleared = alert.cleared ? `, cleared ${new Date(alert.cleared * 1000).toLocaleTimeString()}` : "";
  const number = (x) => (typeof x === "number" ? x.toPrecision(3) : "–");
  return `${alert.kind} on ${alert.model} v${alert.version}${input}: ${number(alert.observed)} against ${number(alert.baseline)}, since ${since}${cleared}`;
}

function alertsView(root) {
  root.append(element("h2", { text: "Alerts" }), element("h3", { text: "Standing" }));
  const active = element("ul", { id: "active-alerts" });
  const recent = element("ul", { id: "recent-alerts" });
  root.append(active, element("h3", { text: "Recently cleared" }), recent);
  const list = (node, alerts) => node.replaceChildren(...(alerts.length === 0
    ? [element("li", { class: "muted", text: "None." })]
    : alerts.map((a) => element("li", {}, element("a", { href: `#model/${encodeURIComponent(a.model)}`, text: a.model }), ` — ${describeAlert(a)}`))));
  return {
    async refresh() {
      try { list(recent, (await api("GET", "/v1/alerts")).recent); } catch (error) { recent.textContent = error.message; }
    },
    live(tick) { list(active, tick.alerts); },
  };
}

// --- start ---------------------------------------------------------------

window.addEventListener("hashchange", route);
$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("key").value.trim());
  $("key").value = "";
});
$("sign-out").addEventListener("click", () => signOut());
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  $("main").focus();
});
const saved = sessionStorage.getItem("maas-key");
if (saved) signIn(saved);
else showSignIn();
