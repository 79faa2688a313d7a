// orders-core console: reads /console/api/v1 and draws it. No framework, no build step.
// Everything from the server is put on the page as text (textContent), never as HTML.
"use strict";

(() => {
  const API = "/console/api/v1";
  const POLL_MS = 2000; // one request at a time, paused while the tab is hidden
  const MAX_BACKOFF_MS = 30000; // after failures, polls slow down to this at most
  const CSRF_COOKIE = /(?:^|;\s*)orders-console-csrf=([0-9a-f]{64})(?:;|$)/;
  const $ = (id) => document.getElementById(id);

  const cache = new Map(); // url -> {etag, data}: a poll that finds nothing new is a 304
  let live = true;
  let timer = null;
  let inFlight = false;
  let failures = 0;
  let shown = ""; // the route and data drawn last: unchanged data is not drawn again
  let routeKey = "";

  class Problem extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || `HTTP ${status}`);
      this.status = status;
    }
  }

  // -- small helpers -------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function when(iso) {
    if (!iso) return el("span", { class: "muted" }, "–");
    const date = new Date(iso);
    return el("time", { datetime: iso, title: iso }, date.toLocaleString());
  }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value < 1) return `${Math.round(value * 1000)} ms`;
    if (value < 120) return `${value.toFixed(1)} s`;
    return `${Math.round(value / 60)} min`;
  }

  function pill(text) {
    return el("span", { class: `pill ${text}` }, text);
  }

  function say(text, bad) {
    const message = $("message");
    message.textContent = text || "";
    message.className = bad ? "message bad" : "message";
  }

  function hashFor(path, params) {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) if (value) query.set(name, value);
    const text = query.toString();
    return `#${path}${text ? `?${text}` : ""}`;
  }

  async function getJson(url) {
    const cached = cache.get(url);
    const headers = { Accept: "application/json" };
    if (cached) headers["If-None-Match"] = cached.etag;
    const response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
    if (response.status === 304 && cached) return cached.data;
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new Problem(response.status, body);
    const etag = response.headers.get("ETag");
    if (etag) {
      if (cache.size > 50) cache.clear(); // bounded: only recent views are worth keeping
      cache.set(url, { etag, data: body });
    }
    return body;
  }

  function route() {
    const hash = location.hash.slice(1) || "/orders";
    const [path, query = ""] = hash.split("?");
    const params = new URLSearchParams(query);
    const parts = path.split("/").filter(Boolean);
    if (parts[0] === "orders" && parts[1]) {
      return { view: "order", id: decodeURIComponent(parts[1]), params };
    }
    return { view: parts[0] === "outbox" ? "outbox" : "orders", params };
  }

  // -- drawing -------------------------------------------------------------------------

  function fill(tbody, rows, columns, emptyText) {
    tbody.replaceChildren();
    if (!rows.length) {
      tbody.append(el("tr", {}, el("td", { class: "empty", colspan: columns.length }, emptyText)));
      return;
    }
    for (const row of rows) {
      const tr = el("tr");
      columns.forEach(([label, cell]) => tr.append(el("td", { "data-label": label }, cell(row))));
      tbody.append(tr);
    }
  }

  function drawNav(view, overview) {
    for (const link of document.querySelectorAll("[data-nav]")) {
      const current = link.dataset.nav === (view === "order" ? "orders" : view);
      if (current) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const failed = overview && overview.outbox ? overview.outbox.failed : 0;
    const badge = $("nav-failed");
    badge.hidden = !failed;
    badge.textContent = failed ? `${failed} failed` : "";
    if (overview) $("store").textContent = `Store: ${overview.store}.`;
  }

  function drawCounts(overview, params) {
    const list = $("counts");
    list.replaceChildren();
    if (!overview.counts) return;
    const customerId = params.get("customerId") || "";
    const total = Object.values(overview.counts).reduce((a, b) => a + b, 0);
    const entries = [["", "All", total], ...Object.entries(overview.counts).map(([s, n]) => [s, s, n])];
    for (const [status, label, count] of entries) {
      const current = (params.get("status") || "") === status;
      const link = el(
        "a",
        { href: hashFor("/orders", { status, customerId }), "aria-current": current ? "true" : null,
          "data-key": `count-${label}` },
        el("strong", {}, count),
        el("span", {}, label),
      );
      list.append(el("li", {}, link));
    }
  }

  async function showOrders(params) {
    const customerId = params.get("customerId") || "";
    const status = params.get("status") || "";
    const overviewUrl = `${API}/overview${customerId ? `?customerId=${encodeURIComponent(customerId)}` : ""}`;
    const overview = await getJson(overviewUrl);
    let page = null;
    let unavailable = "";
    if (overview.capabilities.orders) {
      const query = new URLSearchParams({ limit: "20" });
      for (const name of ["status", "customerId", "cursor"]) {
        if (params.get(name)) query.set(name, params.get(name));
      }
      page = await getJson(`${API}/orders?${query}`);
    } else {
      unavailable = `The ${overview.store} store cannot list every order (${overview.capabilities.events || "no index"}); open one by its id below.`;
    }
    return () => {
      drawNav("orders", overview);
      drawCounts(overview, params);
      const form = $("filters");
      form.elements.status.value = status;
      if (document.activeElement !== form.elements.customerId) form.elements.customerId.value = customerId;
      $("orders-unavailable").hidden = !unavailable;
      $("orders-unavailable").textContent = unavailable;
      $("orders-table").hidden = !page;
      const rows = page ? page.orders : [];
      fill($("orders-table").tBodies[0], rows, [
        ["Order", (o) => el("a", { href: `#/orders/${encodeURIComponent(o.orderId)}`, class: "mono", "data-key": `order-${o.orderId}` }, o.orderId)],
        ["Customer", (o) => o.customerId || "–"],
        ["Status", (o) => pill(o.status)],
        ["Version", (o) => o.version],
        ["Items", (o) => o.itemCount],
        ["Created", (o) => when(o.createdAt)],
        ["Updated", (o) => when(o.updatedAt)],
      ], "No orders match.");
      const older = $("older");
      older.hidden = !(page && page.nextCursor);
      if (page && page.nextCursor) older.href = hashFor("/orders", { status, customerId, cursor: page.nextCursor });
      const newest = $("newest");
      newest.hidden = !params.get("cursor");
      newest.href = hashFor("/orders", { status, customerId });
    };
  }

  function redeliverButton(delivery) {
    if (delivery.state !== "failed") return null;
    return el(
      "button",
      { type: "button", class: "primary", "data-key": `redeliver-${delivery.eventId}`,
        onclick: (event) => redeliver(delivery.eventId, event.currentTarget) },
      "Redeliver",
    );
  }

  function deliveryFacts(event) {
    const state = el("span", {}, pill(event.state), ` ${event.attempts} attempt${event.attempts === 1 ? "" : "s"}`);
    if (event.deliveredAt) state.append(" · delivered ", when(event.deliveredAt));
    if (event.redeliveryRequestedAt) state.append(" · redelivery asked ", when(event.redeliveryRequestedAt));
    let trace = "–";
    if (event.traceUrl) trace = el("a", { href: event.traceUrl, class: "mono", rel: "noreferrer" }, event.traceId);
    else if (event.traceId) trace = el("code", {}, event.traceId);
    return [
      ["Event", el("span", {}, el("code", { "data-event-id": event.eventId }, event.eventId), " ", el("span", { class: "muted" }, event.eventType))],
      ["Delivery", state],
      ["Last error", event.lastError ? el("span", { class: "error-text" }, event.lastError) : null],
      ["Trace", trace],
    ];
  }

  async function showOrder(id) {
    const [overview, detail] = await Promise.all([
      getJson(`${API}/overview`),
      getJson(`${API}/orders/${encodeURIComponent(id)}`),
    ]);
    return () => {
      drawNav("order", overview);
      const order = detail.order;
      $("order-id").textContent = order.orderId;
      const facts = $("order-state");
      facts.replaceChildren();
      const total = order.total ? `${order.total.amount} ${order.total.currency} (minor units)` : "–";
      const items = order.items.map((i) => `${i.quantity} × ${i.sku}`).join(", ");
      for (const [label, value] of [
        ["Status", pill(order.status)], ["Version", order.version], ["Customer", order.customerId || "–"],
        ["Items", items], ["Total", total], ["Created", when(order.createdAt)],
        ["Updated", when(order.updatedAt)], ["Cancel reason", order.cancelReason || null],
      ]) {
        if (value === null) continue;
        facts.append(el("dt", {}, label), el("dd", {}, value));
      }
      $("timeline-unavailable").hidden = detail.timeline !== null;
      const list = $("timeline");
      list.replaceChildren();
      for (const entry of detail.timeline || []) {
        const command = entry.command;
        const rows = [];
        if (command) {
          rows.push(["Command", el("code", {}, command.type)]);
          rows.push(["By", `${command.principalKind} principal`]);
          rows.push(["Idempotency key", command.idempotencyKey ? el("code", {}, command.idempotencyKey) : "none"]);
          rows.push(["Command id", el("code", {}, command.commandId)]);
        } else {
          rows.push(["Command", "not recorded (committed before the console's schema)"]);
        }
        rows.push(...deliveryFacts(entry.event));
        const dl = el("dl");
        for (const [label, value] of rows) if (value !== null) dl.append(el("dt", {}, label), el("dd", {}, value));
        list.append(el("li", { "data-version": entry.version },
          el("h3", {}, `Version ${entry.version}`, pill(entry.status), when(entry.at)),
          dl,
          redeliverButton(entry.event)));
      }
    };
  }

  async function showOutbox(params) {
    const state = params.get("state") === "failed" ? "failed" : "undelivered";
    const query = new URLSearchParams({ state, limit: "50" });
    if (params.get("after")) query.set("after", params.get("after"));
    const [overview, list] = await Promise.all([
      getJson(`${API}/overview`),
      getJson(`${API}/outbox?${query}`).catch((error) => {
        if (error.status === 404) return null; // a store without an outbox: said below
        throw error;
      }),
    ]);
    return () => {
      drawNav("outbox", overview);
      $("show-failed").setAttribute("aria-current", state === "failed" ? "true" : "false");
      $("show-undelivered").setAttribute("aria-current", state === "failed" ? "false" : "true");
      $("outbox-unavailable").hidden = Boolean(list);
      $("outbox-unavailable").textContent = list ? "" : `The ${overview.store} store keeps no outbox: events go to ${overview.capabilities.events || "its sink"}.`;
      const facts = $("outbox-state");
      facts.replaceChildren();
      if (list) {
        const o = list.outbox;
        for (const [label, value] of [
          ["Undelivered", o.undelivered], ["Failed", o.failed],
          ["Oldest waiting", o.oldestUndeliveredAt ? el("span", {}, seconds(o.lagSeconds), " (since ", when(o.oldestUndeliveredAt), ")") : "nothing waits"],
          ["Last delivered", when(o.lastDeliveredAt)],
          ["Last delivery lag", seconds(o.lastDeliveryLagSeconds)],
        ]) facts.append(el("dt", {}, label), el("dd", {}, value));
      }
      $("outbox-caption").textContent = state === "failed" ? "Failed events, in commit order" : "Undelivered events, in commit order";
      fill($("outbox-table").tBodies[0], list ? list.events : [], [
        ["Event", (e) => el("a", { href: `#/orders/${encodeURIComponent(e.orderId)}`, class: "mono", "data-key": `event-${e.eventId}` }, e.eventId)],
        ["Type", (e) => e.eventType],
        ["State", (e) => pill(e.state)],
        ["Attempts", (e) => e.attempts],
        ["Last error", (e) => (e.lastError ? el("span", { class: "error-text" }, e.lastError) : "–")],
        ["Committed", (e) => when(e.committedAt)],
        ["Action", (e) => redeliverButton(e) || "–"],
      ], state === "failed" ? "No failed events." : "Every event is delivered.");
      const more = $("outbox-more");
      more.hidden = !(list && list.nextAfter);
      if (list && list.nextAfter) more.href = hashFor("/outbox", { state: state === "failed" ? state : "", after: String(list.nextAfter) });
    };
  }

  // -- acting --------------------------------------------------------------------------

  async function redeliver(eventId, button) {
    button.disabled = true;
    const found = document.cookie.match(CSRF_COOKIE);
    try {
      const response = await fetch(`${API}/outbox/${encodeURIComponent(eventId)}/redeliver`, {
        method: "POST",
        credentials: "same-origin",
        headers: { Accept: "application/json", "X-Console-CSRF": found ? found[1] : "" },
      });
      const body = await response.json().catch(() => null);
      if (!response.ok) throw new Problem(response.status, body);
      say(body.created
        ? `Redelivery of ${eventId} recorded: the relay retries it now.`
        : `Redelivery of ${eventId} was already asked for: the relay retries it now.`);
    } catch (error) {
      say(`Redelivery refused: ${error.message}`, true);
      button.disabled = false;
    }
    poll(0);
  }

  // -- the loop ------------------------------------------------------------------------

  async function refresh() {
    const current = route();
    const key = `${current.view}|${current.id || ""}|${current.params}`;
    const moved = key !== routeKey;
    let draw;
    if (current.view === "order") draw = await showOrder(current.id);
    else if (current.view === "outbox") draw = await showOutbox(current.params);
    else draw = await showOrders(current.params);
    for (const view of ["orders", "order", "outbox"]) $(`view-${view}`).hidden = view !== current.view;
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.key : null;
    const snapshot = key + JSON.stringify([...cache.values()].map((c) => c.etag));
    if (moved || snapshot !== shown) {
      draw();
      shown = snapshot;
      if (focused) {
        const again = document.querySelector(`[data-key="${CSS.escape(focused)}"]`);
        if (again) again.focus();
      }
    }
    if (moved) {
      routeKey = key;
      const heading = $(`${current.view}-title`);
      if (heading && document.activeElement !== $("filters").elements.customerId) heading.focus();
    }
  }

  function poll(delay) {
    clearTimeout(timer);
    timer = setTimeout(tick, delay);
  }

  async function tick() {
    if (inFlight) return;
    if (!live || document.hidden) return; // resumed by the button or the tab coming back
    inFlight = true;
    try {
      await refresh();
      if (failures) say("");
      failures = 0;
      $("live-state").textContent = "Live";
    } catch (error) {
      failures += 1;
      const status = error instanceof Problem ? error.status : 0;
      say(status ? error.message : "The server does not answer; retrying.", true);
      $("live-state").textContent = "Retrying";
    } finally {
      inFlight = false;
      if (live) poll(failures ? Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** failures) : POLL_MS);
    }
  }

  function start() {
    $("pause").addEventListener("click", (event) => {
      live = !live;
      event.currentTarget.setAttribute("aria-pressed", String(!live));
      event.currentTarget.textContent = live ? "Pause" : "Resume";
      $("live-state").textContent = live ? "Live" : "Paused";
      if (live) poll(0);
      else clearTimeout(timer);
    });
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      const form = event.currentTarget;
      const customerId = form.elements.customerId.value.trim();
      location.hash = hashFor("/orders", { status: form.elements.status.value, customerId });
    });
    $("filters").addEventListener("reset", () => { location.hash = "#/orders"; });
    $("lookup").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = event.currentTarget.elements.orderId.value.trim();
      if (id) location.hash = `#/orders/${encodeURIComponent(id)}`;
    });
    window.addEventListener("hashchange", () => { say(""); poll(0); });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(0); });
    poll(0);
  }

  start();
})();
