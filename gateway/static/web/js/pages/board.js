// The operations board of a town or village: events on the map coloured by state and
// kept live over SSE, an event's timeline, filters, figures with charts (reports per
// day, the SLA breach rate as a ring, reports per grid cell as bars and as a
// choropleth of the grid cells with its scale), tasks running out of time with a
// countdown, sensors' current readings with their alarm state and the active
// emergency level.
import { api, query } from "../lib/api.js";
import { categoryName as nameOf } from "../lib/categories.js";
import { t } from "../lib/i18n.js";
import { tenantId } from "../lib/ids.js";
import { baseMap } from "../lib/map.js";
import { el, ready, say, startPage, when } from "../lib/page.js";
import { show } from "../lib/photos.js";
import { follow } from "../lib/stream.js";

/* global L */
const COLOURS = {
  reported: "#c0392b",
  reopened: "#c0392b",
  accepted: "#d35400",
  dispatched: "#d35400",
  in_progress: "#b7950b",
  resolved: "#1e8449",
  closed: "#7f8c8d",
  rejected: "#7f8c8d",
  duplicate: "#7f8c8d",
  withdrawn: "#7f8c8d",
};
const STATES = Object.keys(COLOURS);
const MAX_EVENTS = 500;
const LIVE_ROWS = 15;

const me = await startPage({ needs: ["events:read"] });
if (me) {
  const tenant = tenantId(me.tenant);
  const base = `/v1/tenants/${tenant}`;
  const events = new Map(); // id -> event
  const markers = new Map(); // id -> circle marker
  let categories = []; // the categories API's list: codes and display names
  let cells = [];
  let tasks = [];
  const handlerNames = new Map(); // subject (users/...) -> the handler's display name
  // What is on screen, kept so a language switch draws it again in the other language.
  let figures = null; // {all, todays}
  let sensors = [];
  let emergencies = [];
  let streamState = null;
  let detailId = null;
  let pageReady;
  const lateAfter = new Promise((resolve) => {
    pageReady = resolve;
  });
  // Started together: the map's light layers, the categories and the events.
  const listing = api(`${base}/categories`).catch(() => ({ categories: [] }));
  const firstEvents = api(`${base}/events${query({ page_size: MAX_EVENTS })}`);
  const { map, layers } = await baseMap(document.getElementById("map"), tenant, { lateAfter });
  const eventLayer = L.featureGroup().addTo(map);

  const filters = () => ({
    grid_cell: document.getElementById("f-cell").value,
    category: document.getElementById("f-category").value,
    state: document.getElementById("f-state").value,
  });
  const shown = (event) => {
    const f = filters();
    return (!f.grid_cell || event.grid_cell === f.grid_cell) && (!f.category || event.category === f.category) && (!f.state || event.state === f.state);
  };
  const categoryName = (code) => nameOf(code, categories);

  function fillFilters() {
    const fill = (id, label, values, name) => {
      const select = document.getElementById(id);
      const chosen = select.value;
      select.replaceChildren(el("option", { value: "", text: t(label) }), ...values.map((v) => el("option", { value: v, text: name(v) })));
      select.value = chosen;
    };
    fill("f-cell", "board.filter.cell.all", cells, (v) => v);
    // Two codes read alike (a built-in and a scenario's category, say) are told apart
    // by their codes, so the filter never offers the same words twice.
    const labels = categories.map((c) => categoryName(c.code));
    const shared = new Set(labels.filter((label, i) => labels.indexOf(label) !== i));
    fill("f-category", "board.filter.category.all", categories.map((c) => c.code),
      (code) => (shared.has(categoryName(code)) ? `${categoryName(code)} (${code})` : categoryName(code)));
    fill("f-state", "board.filter.state.all", STATES, (v) => t(`state.${v}`));
    document.getElementById("legend").replaceChildren(
      ...["reported", "accepted", "in_progress", "resolved", "closed"].map((s) =>
        el("li", {}, el("span", { class: "swatch", "data-state": s }), t(`state.${s}`)),
      ),
    );
    for (const swatch of document.querySelectorAll(".legend .swatch")) swatch.style.background = COLOURS[swatch.dataset.state];
  }

  function showDetail(event) {
    document.getElementById("detail").replaceChildren(
      el("div", { id: "detail-event", "data-event": event.id },
        el("strong", { text: categoryName(event.category) }), " ",
        el("span", { class: `state ${event.state}`, text: t(`state.${event.state}`) }),
        el("p", { text: event.description }),
        el("div", { class: "muted", text: `${event.id} · ${event.grid_cell || ""} · ${when(event.create_time)}` }),
        el("div", { class: "photos", id: "detail-photos" }),
        el("ol", { class: "timeline" }, ...event.timeline.map((entry) =>
          el("li", { "data-state": entry.to_state }, `${when(entry.time)} · ${t(`state.${entry.to_state}`)}${entry.note ? ` · ${entry.note}` : ""}`))),
      ),
    );
  }

  // Photos kept by the events service (ADR 36): the report's under its words, the
  // resolution's (its task's media) on the timeline's last "resolved" step.
  async function addPhotos(names, into) {
    for (const name of (names || []).filter((n) => n.startsWith("tenants/"))) {
      const img = await show(name, t("board.photo.alt")).catch(() => null);
      if (img && into.isConnected) into.append(img);
    }
  }

  async function openDetail(id) {
    detailId = id;
    const event = await api(`${base}/events/${id}`);
    showDetail(event);
    await addPhotos(event.media_uris, document.getElementById("detail-photos"));
    const found = await api(`${base}/tasks${query({ event: event.name })}`).catch(() => ({ tasks: [] }));
    const resolved = [...document.querySelectorAll("#detail-event .timeline li[data-state=resolved]")].pop();
    if (resolved) for (const task of found.tasks) await addPhotos(task.media_uris, resolved);
  }

  function draw(event) {
    const old = markers.get(event.id);
    if (old) eventLayer.removeLayer(old);
    markers.delete(event.id);
    if (!shown(event) || !event.location) return;
    const marker = L.circleMarker([event.location.latitude, event.location.longitude], {
      radius: 6, color: "#fff", weight: 1, fillColor: COLOURS[event.state] || "#333", fillOpacity: 0.9,
    });
    marker.on("click", () => openDetail(event.id));
    marker.addTo(eventLayer);
    markers.set(event.id, marker);
  }

  function liveRow(event) {
    return el("li", { "data-event": event.id },
      el("span", { class: `state ${event.state}`, text: t(`state.${event.state}`) }), " ",
      el("strong", { text: categoryName(event.category) }), " ",
      el("span", { class: "muted", text: `${event.grid_cell || ""} · ${when(event.update_time)}` }),
      el("div", {}, el("button", { type: "button", onclick: () => openDetail(event.id), text: t("board.open") })));
  }

  function renderLive() {
    const newest = [...events.values()].filter(shown).sort((a, b) => b.update_time.localeCompare(a.update_time)).slice(0, LIVE_ROWS);
    document.getElementById("live").replaceChildren(...newest.map(liveRow));
    document.body.dataset.events = String(markers.size);
  }

  async function loadEvents(ready = null) {
    const page = ready ? await ready : await api(`${base}/events${query({ ...filters(), page_size: MAX_EVENTS })}`);
    events.clear();
    eventLayer.clearLayers();
    markers.clear();
    for (const event of page.events) {
      events.set(event.id, event);
      draw(event);
    }
    renderLive();
  }

  // Charts are plain SVG drawn here: no chart library, nothing from another origin.
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attributes = {}) => {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    return node;
  };
  const DAYS = 14;
  // The statistics count days in China Standard Time.
  const dayOf = (date) => new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai" }).format(date);

  function drawTrend(byDay) {
    const days = [];
    for (let i = DAYS - 1; i >= 0; i -= 1) days.push(dayOf(new Date(Date.now() - i * 86400000)));
    const counts = days.map((d) => byDay[d] || 0);
    const top = Math.max(1, ...counts);
    const width = 280;
    const height = 100;
    const step = width / DAYS;
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 16}`, role: "img", class: "trend" });
    chart.setAttribute("aria-label", t("board.chart.days.label", { days: DAYS, total: counts.reduce((a, b) => a + b, 0), today: counts[DAYS - 1] }));
    chart.append(svg("line", { x1: 0, y1: height, x2: width, y2: height, class: "axis" }));
    days.forEach((day, i) => {
      const h = Math.round((height - 14) * (counts[i] / top));
      const bar = svg("rect", {
        x: i * step + 2, y: height - h, width: step - 4, height: Math.max(h, 1),
        class: i === DAYS - 1 ? "day today" : "day", "data-day": day, "data-count": counts[i],
      });
      const tip = svg("title");
      tip.textContent = `${day}: ${counts[i]}`;
      bar.append(tip);
      chart.append(bar);
      if (counts[i]) {
        const label = svg("text", { x: i * step + step / 2, y: height - h - 3, "text-anchor": "middle", class: "count" });
        label.textContent = String(counts[i]);
        chart.append(label);
      }
    });
    for (const i of [0, DAYS - 1]) {
      const label = svg("text", { x: i === 0 ? 0 : width, y: height + 13, "text-anchor": i === 0 ? "start" : "end", class: "tick" });
      label.textContent = i === 0 ? days[0].slice(5) : t("board.chart.today");
      chart.append(label);
    }
    document.getElementById("trend").replaceChildren(chart);
  }

  function drawBreach(rate) {
    const share = Math.min(1, Math.max(0, rate || 0));
    const r = 40;
    const around = 2 * Math.PI * r;
    const percent = `${Math.round(share * 100)}%`;
    const ring = svg("svg", { viewBox: "0 0 100 100", role: "img", class: "ring" });
    ring.setAttribute("aria-label", t("board.chart.breach.label", { percent }));
    ring.append(svg("circle", { cx: 50, cy: 50, r, class: "track" }));
    ring.append(svg("circle", {
      cx: 50, cy: 50, r, class: "share", "data-share": share.toFixed(3),
      "stroke-dasharray": `${(share * around).toFixed(2)} ${around.toFixed(2)}`, transform: "rotate(-90 50 50)",
    }));
    const label = svg("text", { x: 50, y: 56, "text-anchor": "middle", class: "percent" });
    label.textContent = percent;
    ring.append(label);
    document.getElementById("breach").replaceChildren(ring);
  }

  async function loadFigures() {
    // Today begins at midnight in China Standard Time, the day the statistics count by.
    const today = `${dayOf(new Date())}T00:00:00+08:00`;
    const f = filters();
    const [all, todays] = await Promise.all([
      api(`${base}/events:statistics${query({ grid_cell: f.grid_cell, category: f.category })}`),
      api(`${base}/events:statistics${query({ grid_cell: f.grid_cell, category: f.category, created_from: today })}`),
    ]);
    figures = { all, todays };
    drawFigures();
  }

  function drawFigures() {
    if (!figures) return;
    const { all, todays } = figures;
    const figure = (key, value) => el("div", {}, el("dt", { text: t(key) }), el("dd", { text: value }));
    document.getElementById("figures").replaceChildren(
      figure("board.stats.today", String(todays.total)),
      figure("board.stats.total", String(all.total)),
      figure("board.stats.breach", `${Math.round(all.sla_breach_rate * 100)}%`),
      figure("board.stats.resolve", all.resolved_count ? t("board.hours", { hours: all.mean_hours_to_resolve.toFixed(1) }) : "–"),
    );
    const counts = all.by_grid_cell;
    cells = Object.keys(counts).sort();
    const top = Math.max(1, ...Object.values(counts));
    document.getElementById("per-cell").replaceChildren(
      ...cells.map((cell) => {
        const bar = el("span", { class: "bar" });
        bar.style.width = `${(100 * counts[cell]) / top}%`;
        return el("li", {}, el("span", { text: cell }), el("span", {}, bar), el("span", { text: String(counts[cell]) }));
      }),
    );
    drawTrend(all.by_day || {});
    drawBreach(all.sla_breach_rate);
    // The choropleth: grid cells shaded by their number of reports, with its scale.
    if (layers["grid-cells"]) {
      // The map is drawn on a canvas: what it shaded is also said on the element.
      let shaded = 0;
      let darkest = { id: "", count: 0 };
      layers["grid-cells"].eachLayer((group) =>
        group.eachLayer((cell) => {
          const count = counts[cell.feature.id] || 0;
          cell.setStyle({ fillOpacity: 0.05 + 0.45 * (count / top), fillColor: "#c0392b" });
          if (count) shaded += 1;
          if (count > darkest.count) darkest = { id: String(cell.feature.id), count };
        }),
      );
      const element = document.getElementById("map");
      element.dataset.shaded = String(shaded);
      element.dataset.darkest = darkest.id;
      document.getElementById("choropleth-high").textContent = String(top);
      document.getElementById("choropleth-legend").hidden = false;
    }
    fillFilters();
  }

  function countdown(task) {
    const due = task.due_time || task.response_due_time;
    if (!due) return "";
    const seconds = Math.round((new Date(due) - Date.now()) / 1000);
    const abs = Math.abs(seconds);
    const text = `${Math.floor(abs / 3600)}:${String(Math.floor((abs % 3600) / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
    return seconds < 0 ? t("board.overdue.by", { time: text }) : t("board.due.in", { time: text });
  }

  function renderTasks() {
    const list = document.getElementById("tasks");
    if (!tasks.length) {
      list.replaceChildren(el("li", { class: "muted", text: t("board.tasks.none") }));
      return;
    }
    list.replaceChildren(...tasks.map((task) =>
      el("li", { "data-task": task.id },
        el("span", { class: `state ${task.sla_status}`, text: t(`sla.${task.sla_status}`) }), " ",
        el("strong", { text: categoryName(task.category) }), " ",
        el("span", { class: "countdown", text: countdown(task) }),
        el("div", { class: "muted", text: `${task.grid_cell} · ${task.handler ? handlerNames.get(task.handler) || task.handler : t("board.unassigned")}` }))));
  }

  // The handlers' names, in one call for the whole list (not one per row); asked again
  // only when a task names someone the last answer did not.
  async function loadHandlerNames() {
    if (tasks.every((task) => !task.handler || handlerNames.has(task.handler))) return;
    const page = await api(`${base}/handlers${query({ page_size: 1000 })}`).catch(() => ({ handlers: [] }));
    for (const handler of page.handlers) {
      if (handler.display_name) handlerNames.set(handler.user, handler.display_name);
    }
  }

  async function loadTasks() {
    const [overdue, atRisk] = await Promise.all([
      api(`${base}/tasks?sla_status=overdue&page_size=50`),
      api(`${base}/tasks?sla_status=at_risk&page_size=50`),
    ]);
    tasks = [...overdue.tasks, ...atRisk.tasks];
    await loadHandlerNames();
    renderTasks();
  }

  async function loadSensors() {
    const page = await api(`${base}/entities?page_size=200`).catch(() => ({ entities: [] }));
    sensors = page.entities.filter((e) => e.properties && e.properties.some((p) => !p.point));
    renderSensors();
  }

  function renderSensors() {
    // Alarm state: the sensor's rules that are not idle (an alarm open, or a breach
    // waiting out its minimum duration), the worst first.
    const alarm = (e) => {
      const phases = (e.rule_statuses || []).map((r) => r.phase);
      if (phases.includes("PHASE_ACTIVE")) return el("span", { class: "state alarm", text: t("board.sensor.alarm") });
      if (phases.includes("PHASE_PENDING")) return el("span", { class: "state pending", text: t("board.sensor.pending") });
      return el("span", { class: "state quiet", text: t("board.sensor.quiet") });
    };
    sensors.sort((a, b) => (b.rule_statuses || []).length - (a.rule_statuses || []).length);
    document.getElementById("sensors").replaceChildren(...sensors.map((e) =>
      el("li", { "data-entity": e.name.split("/").pop() }, el("strong", { text: e.display_name || e.name.split("/").pop() }), " ",
        alarm(e), " ",
        el("span", { class: "muted", text: e.entity_type }),
        el("div", { text: e.properties.filter((p) => !p.point).map((p) => `${p.property} ${p.value}${p.unit ? ` ${p.unit}` : ""} (${when(p.observe_time)})`).join(" · ") }))));
  }

  async function loadEmergency() {
    const page = await api(`${base}/emergencyPlans?page_size=50`).catch(() => ({ emergency_plans: [] }));
    emergencies = page.emergency_plans.filter((p) => p.current_level > 0).sort((a, b) => a.current_level - b.current_level);
    renderEmergency();
  }

  function renderEmergency() {
    const active = emergencies;
    const banner = document.getElementById("emergency");
    banner.hidden = !active.length;
    if (active.length) banner.textContent = t("board.emergency", { level: active[0].current_level, plan: active[0].display_name, reason: active[0].level_reason });
  }

  for (const id of ["f-cell", "f-category", "f-state"]) {
    document.getElementById(id).addEventListener("change", () => Promise.all([loadEvents(), loadFigures()]));
  }
  function showStreamState() {
    if (streamState) document.getElementById("live-state").textContent = t(`board.stream.${streamState}`);
  }

  // A language switch draws again everything on screen that the page wrote itself.
  document.addEventListener("languagechange", () => {
    fillFilters();
    renderLive();
    renderTasks();
    drawFigures();
    renderSensors();
    renderEmergency();
    showStreamState();
    if (detailId && document.getElementById("detail-event")) openDetail(detailId).catch(() => undefined);
  });

  // One entry per code: a category defined again nearer the tenant replaces the one above.
  const byCode = new Map();
  for (const category of (await listing).categories) {
    const kept = byCode.get(category.code); // names of nearer tenants are longer
    if (!kept || category.name.length >= kept.name.length) byCode.set(category.code, category);
  }
  categories = [...byCode.values()];
  fillFilters();
  await loadEvents(firstEvents);
  ready(); // the map and the events are drawn; buildings and the rest fill in
  pageReady();
  follow(`${base}/events:stream`, (message) => {
    const event = JSON.parse(message.data);
    events.set(event.id, event);
    draw(event);
    renderLive();
    if (message.event.toLowerCase().includes("creat")) say("board.new", { category: categoryName(event.category) });
  }, { onState: (s) => { streamState = s; showStreamState(); } });
  await Promise.all([loadFigures(), loadTasks(), loadSensors(), loadEmergency()]).catch((error) => say("error.generic", { reason: error.message }, { error: true }));
  setInterval(renderTasks, 1000);
  setInterval(() => Promise.all([loadTasks(), loadEmergency()]).catch(() => undefined), 30000);
}
