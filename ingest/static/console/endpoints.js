// The console's webhook endpoints pages: #/endpoints (create, disable/enable, rotate, test,
// recover) and #/endpoints/{id} (its deliveries with every attempt). Same rules as app.js:
// data from the /v1 API only, shown as textContent.
import { api, deliveryRow, el, when, POLL_MS } from "./app.js";

const ROOT = "/v1/webhooks/endpoints";

export function endpointsPage(view, scope) {
  const rows = el("tbody");
  const notice = el("p", { class: "error", role: "alert" });
  const failed = el("p", { class: "error", id: "endpoint-error", role: "alert" });
  const url = el("input", { id: "endpoint-url", type: "url", placeholder: "https://…/hook", required: "" });
  const types = el("input", { id: "endpoint-types", placeholder: "event types, comma-separated (empty: all)" });
  const secret = el("p", { class: "muted", id: "endpoint-secret", role: "status" });
  const refresh = async () => {
    const page = await api(`${ROOT}?limit=200`, { signal: scope.signal });
    rows.replaceChildren(...page.results.map((e) => endpointRow(e, act)));
  };
  const act = async (task, message) => {
    failed.textContent = "";
    try {
      const shown = await task();
      secret.textContent = message(shown);
      await refresh();
    } catch (error) {
      failed.textContent = String(error.message ?? error);
    }
  };
  const create = (event) => {
    event.preventDefault();
    const eventTypes = types.value.split(",").map((t) => t.trim()).filter(Boolean);
    act(() => api(ROOT, { method: "POST", body: { url: url.value.trim(), event_types: eventTypes } }),
      (created) => `Created ${created.id}; its signing secret: ${created.secret}`);
  };
  view.append(
    el("h1", {}, "Webhook endpoints"),
    el("p", { class: "muted" }, "Every matching event of your predictions goes to each endpoint, signed with its own secret."),
    el("form", { id: "endpoint-form", class: "row-form", onsubmit: create }, url, types,
      el("button", { type: "submit" }, "Create")),
    secret, failed, notice,
    el("table", { id: "endpoints" },
      el("thead", {}, el("tr", {}, ["ID", "URL", "Events", "State", ""].map((n) => el("th", {}, n)))),
      rows));
  scope.every(POLL_MS, refresh, notice);
}

function endpointRow(e, act) {
  const path = `${ROOT}/${encodeURIComponent(e.id)}`;
  const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  const state = e.disabled ? "disabled" : e.failing_since ? "failing" : "enabled";
  const button = (label, task, message) =>
    el("button", { type: "button", "data-action": label, onclick: () => act(task, message) }, label);
  return el("tr", { "data-id": e.id },
    el("td", {}, el("a", { href: `#/endpoints/${encodeURIComponent(e.id)}` }, el("code", {}, e.id))),
    el("td", {}, el("code", {}, e.url)),
    el("td", {}, e.event_types.length ? e.event_types.join(", ") : "all"),
    el("td", {}, el("span", { class: `badge endpoint-${state}` }, state),
      e.disabled_reason ? ` ${e.disabled_reason}` : ""),
    el("td", { class: "actions" },
      button(e.disabled ? "enable" : "disable",
        () => api(path, { method: "PATCH", body: { disabled: !e.disabled } }),
        (shown) => `${shown.id} is ${shown.disabled ? "disabled" : "enabled"}.`),
      button("test", () => api(`${path}/test`, { method: "POST" }), (d) => `Test event ${d.webhook_id} queued.`),
      button("rotate", () => api(`${path}/secret/rotate`, { method: "POST" }),
        (keys) => `New secret: ${keys.key} (the old one signs until ${when(keys.previous_key_expires_at)}).`),
      button("recover 24 h", () => api(`${path}/recover`, { method: "POST", body: { since } }),
        (r) => `${r.requeued} failed or skipped deliveries queued again.`)));
}

export function endpointPage(view, scope, id) {
  const table = el("div");
  const notice = el("p", { class: "error", role: "alert" });
  const path = `${ROOT}/${encodeURIComponent(id)}`;
  view.append(el("p", {}, el("a", { href: "#/endpoints" }, "← Endpoints")),
    el("h1", {}, "Deliveries to ", el("code", {}, id)), notice, table);
  scope.every(POLL_MS, async () => {
    const page = await api(`${path}/deliveries?limit=100`, { signal: scope.signal });
    table.replaceChildren(page.results.length === 0
      ? el("p", { class: "muted" }, "No deliveries yet.")
      : el("table", { id: "deliveries" },
        el("thead", {}, el("tr", {}, ["Event", "State", "Attempts", "Last answer", "Log"]
          .map((name) => el("th", {}, name)))),
        el("tbody", {}, page.results.map(deliveryRow))));
  }, notice);
}
