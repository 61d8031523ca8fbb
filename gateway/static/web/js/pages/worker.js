// The grid worker page: my tasks (accept or decline an offer, navigate, check in,
// resolve with a note and a photo) and findings from the patrol. Every action goes through the
// outbox with its request id, so it works the same with and without a connection.
import { api, Offline } from "../lib/api.js";
import { categoryName } from "../lib/categories.js";
import { t } from "../lib/i18n.js";
import { requestId, tenantId } from "../lib/ids.js";
import { enqueue, flush, keep, kept, waiting } from "../lib/outbox.js";
import { el, mayUse, ready, say, startPage, when } from "../lib/page.js";
import { pageConfig } from "../lib/map.js";
import { shrink } from "../lib/photos.js";

const RETRY_MS = 15000;
const OPEN = ["assigned", "accepted", "in_progress", "waiting"];
// What each action leaves the task in, once applied (to recognise one applied before).
const AFTER = {
  accept: ["accepted", "in_progress", "done"],
  start: ["in_progress", "done"],
  resolve: ["done"],
  decline: ["assigned", "waiting", "cancelled", "accepted", "in_progress", "done"],
};

const me = await startPage({ needs: ["command:read"] });
if (me) {
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/web/sw.js", { scope: "/web/" }).catch(() => undefined);
  const tenant = tenantId(me.tenant);
  const base = `/v1/tenants/${tenant}`;
  const keptKey = `tasks:${me.subject}`;
  let tasks = [];
  let events = {}; // event name -> event, for the description
  let categories = [];
  let position = null;
  const drafts = {}; // task id -> the note being written, kept across re-renders

  const banner = () => {
    document.getElementById("offline").hidden = navigator.onLine;
  };

  async function showWaiting() {
    const count = (await waiting(me.subject)).length;
    document.getElementById("waiting").textContent = count ? t("worker.waiting", { count }) : "";
    document.body.dataset.waiting = String(count);
  }

  function navigateLink(task) {
    if (!task.location) return null;
    const { latitude, longitude } = task.location;
    // RFC 5870 geo URI: phones open it in their map app; the coordinates are WGS84.
    return el("a", { href: `geo:${latitude},${longitude}?q=${latitude},${longitude}`, text: t("worker.navigate") });
  }

  function actions(task) {
    const buttons = [];
    const act = (name, label, json = {}) =>
      el("button", { type: "button", "data-action": name, onclick: () => perform(task, name, json), text: t(label) });
    if (task.pending) return [el("span", { class: "state queued", text: t("worker.queued") })];
    if (task.state === "assigned") {
      buttons.push(act("accept", "worker.accept"));
      buttons.push(act("decline", "worker.decline", { reason: "" }));
    }
    if (task.state === "accepted") buttons.push(act("start", "worker.checkin"));
    if (task.state === "in_progress" || task.state === "accepted") {
      const noteId = `note-${task.id}`;
      const form = el(
        "form",
        { class: "resolve" },
        el("label", { for: noteId, text: t("worker.note") }),
        el("textarea", { id: noteId, required: true, maxlength: "2000", oninput: (e) => (drafts[task.id] = e.target.value) }),
        el("label", { for: `photo-${task.id}`, text: t("worker.photo") }),
        el("input", { id: `photo-${task.id}`, type: "file", accept: "image/jpeg,image/png,image/webp", capture: "environment" }),
        el("div", { class: "row" }, el("button", { class: "primary", type: "submit", "data-action": "resolve", text: t("worker.resolve") })),
      );
      form.querySelector("textarea").value = drafts[task.id] || "";
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const note = document.getElementById(noteId).value;
        const chosen = document.getElementById(`photo-${task.id}`).files[0];
        delete drafts[task.id];
        // The photo waits in the outbox with the action, offline too (IndexedDB keeps Blobs).
        const photo = chosen ? await shrink(chosen) : undefined;
        perform(task, "resolve", { note, media_uris: [] }, photo);
      });
      buttons.push(form);
    }
    return buttons;
  }

  // An event's task shows its category; an emergency plan's task says what to do.
  function title(task) {
    if (!task.category) return task.description || "";
    return categoryName(task.category, categories);
  }

  function render() {
    const open = tasks.filter((task) => OPEN.includes(task.state) || task.pending);
    const list = document.getElementById("tasks");
    if (!open.length) {
      list.replaceChildren(el("li", { class: "muted", text: t("worker.none") }));
      return;
    }
    list.replaceChildren(
      ...open.map((task) => {
        const event = events[task.event];
        const due = task.due_time ? t("worker.due", { time: when(task.due_time) }) : "";
        const sla = task.sla_status && task.sla_status !== "on_track" && task.sla_status !== "stopped" ? task.sla_status : "";
        return el(
          "li",
          { "data-task": task.id },
          el("strong", { text: title(task) }),
          " ",
          el("span", { class: `state ${task.state}`, text: t(`task.${task.state}`) }),
          sla ? el("span", { class: `state ${sla}`, text: t(`sla.${sla}`) }) : null,
          event ? el("p", { text: event.description }) : null,
          el("div", { class: "muted", text: [due, event && event.address].filter(Boolean).join(" · ") }),
          el("div", { class: "row" }, navigateLink(task), ...actions(task)),
        );
      }),
    );
  }

  async function load() {
    try {
      const page = await api(`${base}/tasks?handler=${encodeURIComponent(me.subject)}&page_size=100`);
      tasks = page.tasks;
      const names = [...new Set(tasks.filter((task) => OPEN.includes(task.state)).map((task) => task.event).filter(Boolean))];
      const found = await Promise.all(names.map((name) => api(`/v1/${name}`).catch(() => null)));
      events = Object.fromEntries(found.filter(Boolean).map((event) => [event.name, event]));
      await keep(keptKey, { tasks, events });
    } catch (error) {
      if (!(error instanceof Offline)) say("error.generic", { reason: error.message }, { error: true });
      const saved = await kept(keptKey);
      if (saved) ({ tasks, events } = saved);
    }
    // Actions still waiting show as queued, whatever the last answer said.
    const queued = new Set((await waiting(me.subject)).map((item) => item.task).filter(Boolean));
    for (const task of tasks) task.pending = queued.has(task.name);
    render();
    await showWaiting();
  }

  async function send() {
    const report = await flush(me.subject);
    for (const { item, error } of report.failed) say("worker.failed", { what: item.label, reason: error.message }, { error: true });
    if (report.sent) say("worker.sent", { count: report.sent });
    await showWaiting();
    if (report.sent || report.failed.length) await load();
  }

  async function perform(task, action, json, photo = undefined) {
    await enqueue({
      id: requestId(),
      owner: me.subject,
      path: `/v1/${task.name}:${action}`,
      json,
      ...(photo ? { photo, photoTenant: task.name.split("/")[1] } : {}),
      task: task.name,
      label: `${t(`worker.${action === "start" ? "checkin" : action}`)} ${task.id}`,
      verify: { check: "taskState", task: task.name, states: AFTER[action] },
    });
    task.pending = true;
    await keep(keptKey, { tasks, events });
    render();
    await showWaiting();
    if (navigator.onLine) await send();
    else say("worker.kept");
  }

  function fillCategories() {
    const select = document.getElementById("finding-category");
    const chosen = select.value;
    select.replaceChildren(
      el("option", { value: "", text: t("resident.category.choose") }),
      ...categories.map((c) => el("option", { value: c.code, text: categoryName(c.code, categories) })),
    );
    select.value = chosen;
  }

  document.getElementById("finding-locate").addEventListener("click", () => {
    navigator.geolocation.getCurrentPosition(
      async (found) => {
        const { device_crs: crs } = await pageConfig();
        position = { longitude: found.coords.longitude, latitude: found.coords.latitude, crs };
        document.getElementById("finding-pin").textContent = t("resident.pin", {
          lat: position.latitude.toFixed(5),
          lon: position.longitude.toFixed(5),
        });
      },
      () => say("resident.locate.unavailable", {}, { error: true }),
      { enableHighAccuracy: true, timeout: 15000 },
    );
  });

  document.getElementById("finding-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!position) {
      say("resident.pin.needed", {}, { error: true });
      return;
    }
    const description = document.getElementById("finding-description").value;
    await enqueue({
      id: requestId(),
      owner: me.subject,
      path: `${base}/events`,
      json: { category: document.getElementById("finding-category").value, description, location: position, source: "grid_patrol" },
      label: t("worker.finding"),
    });
    document.getElementById("finding-description").value = "";
    await showWaiting();
    if (navigator.onLine) await send();
    else say("worker.kept");
  });

  // Refresh sends what waits, then reads the tasks again; a flaky connection that never
  // says "online" again is retried every so often.
  document.getElementById("reload").addEventListener("click", async () => {
    if (navigator.onLine) await send();
    await load();
  });
  setInterval(() => {
    if (navigator.onLine && document.body.dataset.waiting !== "0") send();
  }, RETRY_MS);
  window.addEventListener("online", () => {
    banner();
    send();
  });
  window.addEventListener("offline", banner);
  document.addEventListener("languagechange", () => {
    render();
    fillCategories();
    showWaiting();
  });

  // Findings are reports: only a role that may report sees the form.
  document.getElementById("finding-form").closest("section").hidden = !mayUse(me, ["events:write"]);
  banner();
  const listed = await api(`${base}/categories`).catch(() => null);
  categories = listed ? listed.categories : (await kept("categories")) || [];
  if (listed) await keep("categories", categories);
  fillCategories();
  await load();
  ready();
  if (navigator.onLine) send();
}
