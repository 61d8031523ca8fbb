// The resident page: pin a problem on the map, send it with a category, follow it by
// its receipt (the event id) and rate the work once it is resolved.
import { api, ApiError, Offline } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { requestId, tenantId } from "../lib/ids.js";
import { baseMap } from "../lib/map.js";
import { el, ready, say, startPage, when } from "../lib/page.js";

/* global L */
const me = await startPage();
if (me) {
  const tenant = tenantId(me.tenant);
  const base = `/v1/tenants/${tenant}`;
  let pin = null; // {longitude, latitude, crs}
  let marker = null;
  let categories = [];
  let pendingId = requestId(); // one report, one key: a retried send is the same report

  const mapReady = baseMap(document.getElementById("map"), tenant);

  function categoryName(code) {
    const key = `category.${code}`;
    const own = t(key);
    return own !== key ? own : (categories.find((c) => c.code === code) || {}).display_name || code;
  }

  function fillCategories() {
    const select = document.getElementById("category");
    const chosen = select.value;
    select.replaceChildren(
      el("option", { value: "", text: t("resident.category.choose") }),
      ...categories.map((c) => el("option", { value: c.code, text: categoryName(c.code) })),
    );
    select.value = chosen;
  }

  function showPin() {
    document.getElementById("pin").textContent = pin
      ? t("resident.pin", { lat: pin.latitude.toFixed(5), lon: pin.longitude.toFixed(5) })
      : t("resident.pin.none");
  }

  async function placePin(latlng, crs) {
    const { map } = await mapReady;
    pin = { longitude: latlng.lng, latitude: latlng.lat, crs };
    if (marker) marker.setLatLng(latlng);
    else marker = L.marker(latlng, { alt: t("resident.pin.alt"), keyboard: false }).addTo(map);
    showPin();
  }

  const describe = (event) => [
    el("strong", { text: categoryName(event.category) }),
    " ",
    el("span", { class: `state ${event.state}`, text: t(`state.${event.state}`) }),
    el("div", { class: "muted", text: `${t("resident.receipt")}: ${event.id} · ${when(event.create_time)}` }),
  ];

  async function loadMine() {
    try {
      const page = await api(`${base}/events?page_size=20`);
      const list = document.getElementById("mine");
      list.replaceChildren(
        ...page.events.map((e) =>
          el("li", {}, ...describe(e), el("button", { type: "button", onclick: () => follow(e.id), text: t("resident.follow.go") })),
        ),
      );
      if (!page.events.length) list.replaceChildren(el("li", { class: "muted", text: t("resident.mine.none") }));
    } catch (error) {
      if (!(error instanceof Offline)) say("error.generic", { reason: error.message }, { error: true });
    }
  }

  function evaluationForm(event) {
    const form = el("form", { id: "evaluate-form" });
    const stars = el("fieldset", { class: "stars" }, el("legend", { text: t("resident.evaluate.score") }));
    for (let score = 1; score <= 5; score += 1) {
      stars.append(el("label", {}, el("input", { type: "radio", name: "score", value: String(score), required: true }), String(score)));
    }
    form.append(
      el("h3", { text: t("resident.evaluate") }),
      stars,
      el("label", { for: "evaluate-text", text: t("resident.evaluate.text") }),
      el("textarea", { id: "evaluate-text", maxlength: "500" }),
      el("div", { class: "row" }, el("button", { class: "primary", type: "submit", text: t("resident.evaluate.send") })),
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const score = Number(new FormData(form).get("score"));
      try {
        const done = await api(`${base}/events/${event.id}:evaluate`, {
          json: { score, text: document.getElementById("evaluate-text").value, etag: event.etag },
        });
        say("resident.evaluate.thanks");
        showFollowed(done);
        loadMine();
      } catch (error) {
        say("error.generic", { reason: error.message }, { error: true });
      }
    });
    return form;
  }

  function showFollowed(event) {
    const box = document.getElementById("followed");
    const timeline = el(
      "ol",
      { class: "timeline" },
      ...event.timeline.map((entry) =>
        el("li", { text: `${when(entry.time)} · ${t(`state.${entry.to_state}`)}${entry.note ? ` · ${entry.note}` : ""}` }),
      ),
    );
    box.replaceChildren(el("div", { class: "card", id: "followed-event" }, ...describe(event), el("p", { text: event.description }), timeline));
    if (event.evaluation) {
      box.append(el("p", { text: t("resident.evaluated", { score: event.evaluation.score }) }));
    } else if (event.state === "resolved") {
      box.append(evaluationForm(event));
    }
  }

  async function follow(id) {
    document.getElementById("follow-id").value = id;
    try {
      showFollowed(await api(`${base}/events/${encodeURIComponent(id)}`));
    } catch (error) {
      const key = error instanceof ApiError && error.status === 404 ? "resident.follow.unknown" : "error.generic";
      say(key, { reason: error.message }, { error: true });
    }
  }

  document.getElementById("follow-form").addEventListener("submit", (e) => {
    e.preventDefault();
    follow(document.getElementById("follow-id").value.trim());
  });

  document.getElementById("locate").addEventListener("click", () => {
    if (!navigator.geolocation) {
      say("resident.locate.unavailable", {}, { error: true });
      return;
    }
    say("resident.locate.working");
    navigator.geolocation.getCurrentPosition(
      async (position) => {
        const { map, deviceCrs } = await mapReady;
        const latlng = L.latLng(position.coords.latitude, position.coords.longitude);
        await placePin(latlng, deviceCrs);
        map.setView(latlng, Math.max(map.getZoom(), 17));
        say("resident.locate.done");
      },
      () => say("resident.locate.unavailable", {}, { error: true }),
      { enableHighAccuracy: true, timeout: 15000 },
    );
  });

  document.getElementById("report-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    document.getElementById("alert").textContent = "";
    if (!pin) {
      say("resident.pin.needed", {}, { error: true });
      return;
    }
    const send = document.getElementById("send");
    send.disabled = true;
    try {
      const event = await api(`${base}/events`, {
        idempotencyKey: pendingId,
        json: {
          category: document.getElementById("category").value,
          description: document.getElementById("description").value,
          address: document.getElementById("address").value,
          location: pin,
        },
      });
      pendingId = requestId();
      document.getElementById("receipt").textContent = event.id;
      document.getElementById("receipt-box").hidden = false;
      document.getElementById("description").value = "";
      say("resident.sent");
      loadMine();
    } catch (error) {
      // Offline: the same key is kept, so sending again cannot make a second report.
      const key = error instanceof Offline ? "error.offline" : "error.generic";
      const field = error.fieldViolations && error.fieldViolations[0];
      say(key, { reason: field ? `${field.field}: ${field.description}` : error.message }, { error: true });
    } finally {
      send.disabled = false;
    }
  });

  document.addEventListener("languagechange", () => {
    fillCategories();
    showPin();
    loadMine();
  });

  const [{ map, crs }, listed] = await Promise.all([mapReady, api(`${base}/categories`).catch(() => ({ categories: [] }))]);
  categories = listed.categories;
  fillCategories();
  showPin();
  map.on("click", (e) => placePin(e.latlng, crs));
  await loadMine();
  ready();
}
