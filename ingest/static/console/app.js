// The inferhook console: a plain ES module, no framework, no build step.
//
// Every piece of data shown comes from this server's /v1 API, called with the API key the user
// pasted (kept in sessionStorage). API data reaches the DOM only as text nodes and
// textContent, never as HTML. Pages are hash routes: #/predictions, #/predictions/{id}, #/models,
// #/endpoints and #/endpoints/{id} (endpoints.js).

import { endpointPage, endpointsPage } from "./endpoints.js";

const KEY_STORAGE = "inferhook.apiKey";
export const POLL_MS = 2000;
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const STATUSES = new Set(["pending", "started", "succeeded", "failed", "canceled"]);
const DELIVERY_STATES = new Set(["pending", "delivered", "failed", "superseded", "skipped"]);

// ---------------------------------------------------------------------------------- DOM

/** An element with attributes, `on…` listeners and children (strings become text nodes). */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...nodes(children));
  return node;
}

/** Children as `append` takes them: nested lists flattened, null/undefined/false left out. */
function nodes(children) {
  return children.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false);
}

const byId = (id) => document.getElementById(id);

function badge(status) {
  const known = STATUSES.has(status) ? status : "unknown";
  return el("span", { class: `badge status-${known}`, "data-status": known }, status);
}

function seconds(value) {
  if (typeof value !== "number") return "–";
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "–";
}

/** JSON for people: long strings (data URIs) shortened so a page stays readable. */
function preview(value, limit = 2000) {
  const text = JSON.stringify(value, (_key, v) =>
    typeof v === "string" && v.length > 120 ? `${v.slice(0, 60)}… (${v.length} characters)` : v, 2);
  if (text === undefined) return "–";
  return text.length > limit ? `${text.slice(0, limit)}…` : text;
}

// ---------------------------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, problem) {
    const items = (problem?.errors ?? []).map((e) => `${(e.loc ?? []).join(".")}: ${e.msg}`);
    super([`${status} ${problem?.title ?? "error"}: ${problem?.detail ?? ""}`, ...items].join("\n"));
    this.status = status;
  }
}

const apiKey = () => sessionStorage.getItem(KEY_STORAGE);

async function send(path, { method = "GET", body, signal, accept = "application/json" } = {}) {
  const headers = { Authorization: `Bearer ${apiKey()}`, Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.ok) return response;
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    // not problem+json (a proxy's page, say): the status says enough
  }
  if (response.status === 401) signOut("The server did not accept that API key.");
  throw new ApiError(response.status, problem);
}

export async function api(path, options) {
  return (await send(path, options)).json();
}

/** Follow a prediction's server-sent events (fetch, since EventSource cannot send a key). */
async function follow(id, after, signal, onEvent) {
  const response = await send(`/v1/predictions/${encodeURIComponent(id)}/stream?after=${after}&queue=true`,
    { signal, accept: "text/event-stream" });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const data = buffer.slice(0, end).split("\n")
        .filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trimStart()).join("\n");
      buffer = buffer.slice(end + 2);
      if (data) onEvent(JSON.parse(data));
    }
  }
}

// ------------------------------------------------------------------------------- Scope

/** What one page started (timers, requests, streams); `close()` stops all of it. */
class Scope {
  constructor() {
    this.controller = new AbortController();
    this.timers = new Set();
  }

  get signal() { return this.controller.signal; }

  get closed() { return this.signal.aborted; }

  close() {
    this.controller.abort();
    for (const timer of this.timers) clearTimeout(timer);
  }

  /** Run `task` now and again `ms` after each run ends, until the scope closes. */
  every(ms, task, notice) {
    const tick = async () => {
      this.timers.delete(timer);
      await this.attempt(task, notice);
      if (!this.closed) this.timers.add(timer = setTimeout(tick, ms));
    };
    let timer = null;
    tick();
  }

  /** Run `task`; show a failure in `notice` unless the page was left meanwhile. */
  async attempt(task, notice) {
    try {
      await task();
      if (notice) notice.textContent = "";
    } catch (error) {
      if (!this.closed && notice) notice.textContent = String(error.message ?? error);
    }
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.timers.delete(timer); resolve(); }, ms);
      this.timers.add(timer);
    });
  }
}

// --------------------------------------------------------------------- predictions list

function predictionsPage(view, scope) {
  const rows = el("tbody");
  const queues = el("ul", { class: "queues", id: "queues" });
  const summary = el("p", { class: "muted" }, "Loading…");
  const notice = el("p", { class: "error", role: "alert" });
  view.append(
    el("h1", {}, "Predictions"),
    el("p", { class: "muted" }, "Newest first, refreshed every 2 seconds."),
    el("h2", {}, "Queues"), queues, notice,
    el("table", { id: "predictions" },
      el("thead", {}, el("tr", {}, ["ID", "Model", "Status", "Created", "Queued", "Run", "Total"]
        .map((name) => el("th", {}, name)))),
      rows),
    summary);
  scope.every(POLL_MS, async () => {
    const [page, depths] = await Promise.all([
      api("/v1/predictions?limit=50", { signal: scope.signal }),
      api("/v1/queues", { signal: scope.signal }),
    ]);
    rows.replaceChildren(...page.results.map(predictionRow));
    queues.replaceChildren(...depths.results.map(queueItem));
    summary.textContent = page.results.length === 0
      ? "No predictions yet: try a model on the Models page."
      : `${page.results.length} shown${page.next ? " (older ones are not)" : ""}; ` +
        `updated ${new Date().toLocaleTimeString()}.`;
  }, notice);
}

function predictionRow(p) {
  const m = p.metrics ?? {};
  return el("tr", { "data-id": p.id },
    el("td", {}, el("a", { href: `#/predictions/${encodeURIComponent(p.id)}` }, el("code", {}, p.id))),
    el("td", {}, p.model),
    el("td", {}, badge(p.status), p.phase ? ` ${p.phase}` : ""),
    el("td", {}, when(p.created_at)),
    el("td", { class: "num" }, seconds(m.queue_time)),
    el("td", { class: "num" }, seconds(m.predict_time)),
    el("td", { class: "num" }, seconds(m.total_time)));
}

function queueItem(q) {
  return el("li", { "data-model": q.model },
    el("strong", {}, q.model), ` ${q.pending} pending · ${q.started} running`,
    byPriority(q.priorities ?? []));
}

function byPriority(priorities) {  // only when more than the default priority is in use
  const busy = priorities.filter((d) => d.pending + d.started > 0);
  if (busy.every((d) => d.priority === "default")) return null;
  return el("span", { class: "muted" },
    ` (${busy.map((d) => `${d.priority} ${d.pending}/${d.started}`).join(" · ")})`);
}

// ------------------------------------------------------------------------ one prediction

async function predictionPage(view, scope, id) {
  const path = `/v1/predictions/${encodeURIComponent(id)}`;
  const summary = el("div", { id: "summary" });
  const timeline = el("ol", { class: "timeline", id: "timeline" });
  const hooks = el("div", { id: "webhooks" });
  const notice = el("p", { class: "error", role: "alert" });
  const live = el("p", { class: "muted", id: "live", role: "status" });
  view.append(
    el("p", {}, el("a", { href: "#/predictions" }, "← All predictions")),
    el("h1", {}, "Prediction ", el("code", {}, id)),
    notice, summary, el("h2", {}, "Timeline"), timeline, live, el("h2", {}, "Webhooks"), hooks);

  let prediction = null;
  let last = -1;
  let ended = false;  // the timeline holds the terminal event
  const record = (events, source) => {
    for (const event of events) {
      if (event.sequence <= last) continue;
      timeline.append(eventItem(event, source));
      last = event.sequence;
      ended ||= TERMINAL.has(event.type.split(".").pop());
    }
  };
  let asked = 0;
  const refresh = async () => {  // answers may overtake each other: only the newest is shown
    const mine = ++asked;
    const fresh = await api(path, { signal: scope.signal });
    if (mine !== asked) return;
    prediction = fresh;
    renderSummary(summary, prediction);
  };

  await scope.attempt(async () => {  // events first: the prediction read after them is no older
    const history = await api(`${path}/events`, { signal: scope.signal });
    await refresh();
    record(history.results, "history");
  }, notice);
  if (prediction === null) return;
  scope.every(POLL_MS, webhooksPanel(hooks, scope, path, prediction), notice);

  // Live: the stream sends what came after `last` and closes after the terminal event. It is
  // followed until the timeline ends, whatever the status said: the two reads above may straddle
  // a change. A terminal prediction whose stream brings nothing new has no terminal event left
  // (its history expired), so that ends it too.
  while (!scope.closed && !ended) {
    live.textContent = "Following the event stream…";
    const before = last;
    await scope.attempt(async () => {
      await follow(id, last, scope.signal, (event) => {
        // a `queue` message (where a pending prediction stands) has no sequence: not history
        if (event.sequence !== undefined) record([event], "stream");
        scope.attempt(refresh, notice);
      });
      await refresh();
    }, notice);
    if (ended || (TERMINAL.has(prediction.status) && last === before)) break;
    await scope.sleep(1000);
  }
  live.textContent = "";
}

function renderSummary(box, p) {
  const m = p.metrics ?? {};
  const facts = [
    ["Model", p.model], ["Status", badge(p.status)], ["Phase", p.phase],
    ["Priority", p.priority !== "default" && p.priority],
    ["Queue position", p.queue_position && String(p.queue_position)],
    ["Expected start", p.estimated_start_at && when(p.estimated_start_at)],
    ["Created", when(p.created_at)], ["Started", p.started_at && when(p.started_at)],
    ["Completed", p.completed_at && when(p.completed_at)],
    ["Queued", seconds(m.queue_time)], ["Cold start", m.load_time !== undefined && seconds(m.load_time)],
    ["Run", seconds(m.predict_time)], ["Total", seconds(m.total_time)],
    ["Data removed at", p.expires_at && when(p.expires_at)],
  ].filter(([, value]) => value);
  box.replaceChildren(...nodes([
    el("dl", { class: "facts" }, facts.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value)])),
    p.error ? el("p", { class: "error" }, `${p.error.reason}: ${p.error.message}`) : null,
    p.data_removed ? el("p", { class: "muted" }, "Input, output and logs have been removed (result TTL).") : null,
    el("h2", {}, "Input"), el("pre", { id: "input" }, preview(p.input)),
    el("h2", {}, "Output"), el("pre", { id: "output" }, preview(p.output)),
    p.logs ? [el("h2", {}, "Logs"), el("pre", {}, p.logs)] : null]));
}

function eventItem(event, source) {
  const kind = event.type.split(".").pop();
  const d = event.data ?? {};
  const detail = {
    created: () => `model ${d.model}`,
    started: () => `${d.phase ?? "running"}${typeof d.load_time === "number" ? `, loaded in ${seconds(d.load_time)}` : ""}`,
    logs: () => d.logs,
    output: () => preview(d.output, 300),
    succeeded: () => `output ${preview(d.output, 300)}`,
    failed: () => d.error ? `${d.error.reason}: ${d.error.message}` : "",
    canceled: () => d.error ? `${d.error.reason}: ${d.error.message}` : "",
  }[kind];
  return el("li", { "data-sequence": event.sequence, "data-source": source },
    el("span", { class: "seq" }, `#${event.sequence}`), " ",
    STATUSES.has(kind) ? badge(kind) : el("span", { class: "badge" }, kind), " ",
    el("time", { datetime: event.time }, new Date(event.time).toLocaleTimeString()),
    detail ? el("span", { class: "detail" }, ` ${detail() ?? ""}`) : null);
}

/** The webhook part of a prediction's page: where it goes, a redeliver button, and a table of
 * deliveries with their attempts that `refresh()` (called every POLL_MS) brings up to date. */
function webhooksPanel(box, scope, path, prediction) {
  if (!prediction.webhook) {
    box.replaceChildren(el("p", { class: "muted" }, "This prediction has no webhook."));
    return async () => {};
  }
  const table = el("div");
  const status = el("span", { class: "muted", id: "redeliver-status", role: "status" });
  const refresh = async () => {
    const list = await api(`${path}/webhooks`, { signal: scope.signal });
    table.replaceChildren(list.results.length === 0
      ? el("p", { class: "muted" }, "No deliveries yet.")
      : el("table", { id: "deliveries" },
        el("thead", {}, el("tr", {}, ["Event", "State", "Attempts", "Last answer", "Log"]
          .map((name) => el("th", {}, name)))),
        el("tbody", {}, list.results.map(deliveryRow))));
  };
  const redeliver = async () => {
    button.disabled = true;
    status.textContent = "Queuing…";
    try {
      await api(`${path}/webhooks/redeliver`, { method: "POST", signal: scope.signal });
      status.textContent = "Redelivery queued.";
      await refresh();
    } catch (error) {
      status.textContent = String(error.message ?? error);
    } finally {
      button.disabled = false;
    }
  };
  const button = el("button", { type: "button", id: "redeliver", onclick: redeliver }, "Redeliver latest");
  box.replaceChildren(el("p", {}, "Sent to ", el("code", {}, prediction.webhook), " ", button, " ", status), table);
  return refresh;
}

export function deliveryRow(d) {
  return el("tr", { "data-webhook-id": d.webhook_id },
    el("td", {}, `#${d.sequence} ${d.event_type.split(".").pop()}`),
    el("td", {}, el("span", { class: `badge delivery-${DELIVERY_STATES.has(d.state) ? d.state : "unknown"}` }, d.state)),
    el("td", { class: "num attempts" }, String(d.attempts)),
    el("td", {}, d.last_status !== null ? `HTTP ${d.last_status}` : (d.last_error ?? "–")),
    el("td", {}, el("ol", { class: "attempts-log" }, d.attempt_log.map((a) => el("li", {},
      `${new Date(a.time).toLocaleTimeString()} → `,
      a.status_code !== null ? `HTTP ${a.status_code}` : `no answer (${a.error ?? "error"})`,
      ` in ${Math.round(a.latency_ms)} ms`)))));
}

// ------------------------------------------------------------------------------- models

function modelsPage(view, scope) {
  const list = el("div", { id: "models" });
  const notice = el("p", { class: "error", role: "alert" });
  const depth = new Map();  // model name → its queue text node, updated in place
  view.append(el("h1", {}, "Models"), notice, list);
  scope.attempt(async () => {
    const models = await api("/v1/models", { signal: scope.signal });
    list.replaceChildren(...models.results.map((model) => modelCard(model, scope, depth)));
    scope.every(POLL_MS, async () => {
      const queues = await api("/v1/queues", { signal: scope.signal });
      for (const q of queues.results) {
        const node = depth.get(q.model);
        if (node) node.textContent = `${q.pending} pending · ${q.started} running`;
      }
    }, notice);
  }, notice);
}

function modelCard(model, scope, depth) {
  const queue = el("span", { class: "queue" }, "…");
  depth.set(model.name, queue);
  return el("article", { class: "model", "data-model": model.name },
    el("h2", {}, model.name, " ", el("span", { class: "muted" }, `v${model.version}`)),
    el("p", {}, model.description),
    el("p", { class: "muted" }, "Queue: ", queue),
    tryForm(model, scope));
}

const isDataUri = (schema, example) =>
  schema.type === "string" &&
  ((schema.pattern ?? "").startsWith("^data:") || (typeof example === "string" && example.startsWith("data:")));

/** The try-it form: one field per input property, filled with the example input. */
function tryForm(model, scope) {
  const properties = model.input_schema.properties ?? {};
  const required = new Set(model.input_schema.required ?? []);
  const example = model.example_input ?? {};
  const fields = Object.entries(properties).map(([name, schema]) =>
    inputField(model.name, name, schema, example[name], required.has(name)));
  const notice = el("pre", { class: "error", role: "alert" });
  const submit = el("button", { type: "submit" }, "Run");
  const form = el("form", {
    class: "try", "data-model": model.name,
    onsubmit: async (event) => {
      event.preventDefault();
      submit.disabled = true;
      await scope.attempt(async () => {
        const input = {};
        for (const field of fields) {
          const value = field.read();
          if (value !== undefined) input[field.name] = value;
        }
        const created = await api("/v1/predictions", {
          method: "POST", body: { model: model.name, input }, signal: scope.signal,
        });
        location.hash = `#/predictions/${encodeURIComponent(created.id)}`;
      }, notice);
      submit.disabled = false;
    },
  }, el("h3", {}, "Try it"), fields.map((f) => f.node), submit, notice);
  return form;
}

/** A labelled control for one property and `read()`, which gives its value (undefined: leave out). */
function inputField(model, name, schema, example, isRequired) {
  const id = `in-${model.replace(/[^A-Za-z0-9]/g, "-")}-${name.replace(/[^A-Za-z0-9_-]/g, "-")}`;
  const initial = example !== undefined ? example : schema.default;
  const label = el("label", { for: id }, name, isRequired ? " *" : "");
  const help = schema.description ? el("small", { class: "muted" }, schema.description) : null;
  let control;
  let read;
  if (isDataUri(schema, initial)) return dataUriField(id, name, initial, label, help);
  if (Array.isArray(schema.enum)) {
    control = el("select", { id, name }, schema.enum.map((v) => el("option", { value: JSON.stringify(v) }, String(v))));
    if (initial !== undefined) control.value = JSON.stringify(initial);
    read = () => JSON.parse(control.value);
  } else if (schema.type === "boolean") {
    control = el("input", { id, name, type: "checkbox" });
    control.checked = initial === true;
    read = () => control.checked;
  } else if (schema.type === "number" || schema.type === "integer") {
    control = el("input", {
      id, name, type: "number", required: isRequired,
      step: schema.type === "integer" ? "1" : "any", min: schema.minimum, max: schema.maximum,
    });
    if (initial !== undefined) control.value = String(initial);
    read = () => (control.value === "" ? undefined : Number(control.value));
  } else if (schema.type === "string") {
    const long = !schema.maxLength || schema.maxLength > 200;
    control = el(long ? "textarea" : "input", {
      id, name, required: isRequired, minlength: schema.minLength, maxlength: schema.maxLength, rows: long ? 3 : null,
    });
    if (initial !== undefined) control.value = String(initial);
    read = () => (control.value === "" && !isRequired ? undefined : control.value);
  } else {  // objects, arrays, anything else: JSON typed in
    control = el("textarea", { id, name, rows: 3, placeholder: "JSON" });
    if (initial !== undefined) control.value = JSON.stringify(initial);
    read = () => (control.value.trim() === "" ? undefined : JSON.parse(control.value));
  }
  return { name, node: el("div", { class: "field" }, label, control, help), read };
}

/** A file input whose file is turned into a `data:` URI here, in the browser. */
function dataUriField(id, name, initial, label, help) {
  let value = typeof initial === "string" ? initial : undefined;
  const chosen = el("span", { class: "chosen", "data-field": name });
  const image = el("img", { class: "preview", alt: "" });
  const show = (what) => {
    chosen.textContent = value === undefined
      ? "No file chosen."
      : `${what}: ${value.slice(0, value.indexOf(",") + 1)}… (${value.length} characters)`;
    image.hidden = !(value ?? "").startsWith("data:image/");
    if (!image.hidden) image.src = value;
  };
  const file = el("input", {
    id, name, type: "file",
    onchange: () => {
      const picked = file.files[0];
      if (!picked) return;
      const reader = new FileReader();
      reader.onload = () => { value = reader.result; show(picked.name); };
      reader.onerror = () => { chosen.textContent = `Could not read ${picked.name}.`; };
      reader.readAsDataURL(picked);
    },
  });
  show("Example input");
  return { name, node: el("div", { class: "field" }, label, file, chosen, image, help), read: () => value };
}

// ------------------------------------------------------------------------ shell and routes

let current = null;  // the Scope of the page on screen

function signOut(message = "") {
  sessionStorage.removeItem(KEY_STORAGE);
  byId("login-error").textContent = message;
  route();
}

function route() {
  current?.close();
  current = null;
  const signedIn = Boolean(apiKey());
  byId("login").hidden = signedIn;
  byId("view").hidden = !signedIn;
  byId("nav").hidden = !signedIn;
  byId("sign-out").hidden = !signedIn;
  if (!signedIn) {
    byId("who").textContent = "";
    byId("api-key").focus();
    return;
  }
  const [, page = "predictions", id] = location.hash.split("/");
  for (const link of document.querySelectorAll("#nav a[data-page]")) {
    link.classList.toggle("active", link.dataset.page === page);
  }
  const view = byId("view");
  view.replaceChildren();
  current = new Scope();
  if (page === "models") modelsPage(view, current);
  else if (page === "endpoints" && id) endpointPage(view, current, decodeURIComponent(id));
  else if (page === "endpoints") endpointsPage(view, current);
  else if (page === "predictions" && id) predictionPage(view, current, decodeURIComponent(id));
  else predictionsPage(view, current);
}

async function signIn(event) {
  event.preventDefault();
  const input = byId("api-key");
  sessionStorage.setItem(KEY_STORAGE, input.value.trim());
  input.value = "";
  byId("login-error").textContent = "";
  try {
    await showOwner();
    route();
  } catch (error) {
    if (error.status !== 401) signOut(String(error.message ?? error));
  }
}

async function showOwner() {
  const account = await api("/v1/account");
  byId("who").textContent = `${account.owner} (${account.key_prefix}…)`;
}

function start() {
  byId("login-form").addEventListener("submit", signIn);
  byId("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  if (apiKey()) showOwner().catch(() => {});
  route();
}

start();
