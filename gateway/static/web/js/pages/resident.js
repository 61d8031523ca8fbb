// The resident page: pin a problem on the map, send it with a category, follow it by
// its receipt and rate the work once it is resolved. Signed in, the receipt is the
// event id; without an account (where the village allows it, ADR 35) it is the
// answer's receipt, kept on this phone, the only way to follow the report.
import { api, ApiError, Offline } from "../lib/api.js";
import { session } from "../lib/auth.js";
import { categoryName as nameOf } from "../lib/categories.js";
import { t } from "../lib/i18n.js";
import { requestId, tenantId } from "../lib/ids.js";
import { baseMap, pageConfig, reportArea } from "../lib/map.js";
import { el, ready, say, startPage, when } from "../lib/page.js";
import { show, shrink, upload, uploadAnonymously } from "../lib/photos.js";

/* global L */
const RECEIPTS = "grassroots.receipts"; // receipts of reports sent from this phone
const KEPT_RECEIPTS = 10;
// Signed in, reporting needs events:write; without it the page says so and stops.
const signedIn = Boolean(session() && session().me);
const me = await startPage({ signIn: false, needs: ["events:write"] });
if (me || !signedIn) {
  const anonymous = !me;
  const tenantPath = anonymous ? (await pageConfig()).public_tenant : me.tenant;
  const tenant = tenantId(tenantPath);
  const base = `/v1/tenants/${tenant}`;
  document.getElementById("anonymous-note").hidden = !anonymous;
  let pin = null; // {longitude, latitude, crs}
  let marker = null;
  let categories = [];
  let pendingId = requestId(); // one report, one key: a retried send is the same report
  // Without an account, the photo uploaded for the pending report (with its key and
  // place): a retried send names it again instead of uploading it twice.
  let pendingPhoto = null; // {file, place, name}

  const mapReady = baseMap(document.getElementById("map"), tenant);
  // The villages' outlines frame the map and tell a tap in no village before sending.
  const area = mapReady.then(({ map }) => reportArea(map, tenant, tenantPath));
  let mapCrs = null;

  // False only when the pin is known to lie in none of the villages (a tap on this
  // map; a phone's position is in its own CRS and is checked by the service).
  async function pinInVillage() {
    if (!pin || pin.crs !== mapCrs) return true;
    return (await area).villageAt(L.latLng(pin.latitude, pin.longitude)) !== null;
  }

  const categoryName = (code) => nameOf(code, categories);

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

  // After a report is sent the form starts empty: nothing of it slips into the next one.
  function clearReport() {
    for (const id of ["category", "description", "address", "photo"]) document.getElementById(id).value = "";
    pin = null;
    if (marker) marker.remove();
    marker = null;
    showPin();
  }

  const describe = (event, receipt = event.id) => [
    el("strong", { text: categoryName(event.category) }),
    " ",
    el("span", { class: `state ${event.state}`, text: t(`state.${event.state}`) }),
    el("div", { class: "muted receipt", text: `${t("resident.receipt")}: ${receipt} · ${when(event.create_time)}` }),
  ];

  function keptReceipts() {
    try {
      return JSON.parse(localStorage.getItem(RECEIPTS) || "[]");
    } catch {
      return [];
    }
  }

  function keepReceipt(receipt) {
    const kept = [receipt, ...keptReceipts().filter((r) => r !== receipt)].slice(0, KEPT_RECEIPTS);
    localStorage.setItem(RECEIPTS, JSON.stringify(kept));
  }

  // Signed in: my reports from the API. Without an account: those whose receipts
  // this phone kept, each followed by its receipt.
  async function myReports() {
    if (!anonymous) return (await api(`${base}/events?page_size=20`)).events.map((e) => ({ event: e, receipt: e.id }));
    const found = [];
    for (const receipt of keptReceipts()) {
      try {
        found.push({ event: (await byReceipt(receipt)).event, receipt });
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) throw error;
      }
    }
    return found;
  }

  async function loadMine() {
    try {
      const mine = await myReports();
      const list = document.getElementById("mine");
      list.replaceChildren(
        ...mine.map(({ event, receipt }) =>
          el("li", {}, ...describe(event, receipt), el("button", { type: "button", onclick: () => follow(receipt), text: t("resident.follow.go") })),
        ),
      );
      if (!mine.length) list.replaceChildren(el("li", { class: "muted", text: t("resident.mine.none") }));
    } catch (error) {
      if (!(error instanceof Offline)) say("error.generic", { reason: error.message }, { error: true });
    }
  }

  const byReceipt = (receipt) => api(`${base}/events:followReceipt`, { json: { receipt } });

  function evaluationForm(event, receipt) {
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
    let sending = false; // one rating, however often the button is pressed
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (sending) return;
      const button = form.querySelector("button[type=submit]");
      const score = Number(new FormData(form).get("score"));
      const text = document.getElementById("evaluate-text").value;
      sending = true;
      button.disabled = true;
      try {
        const done = receipt.includes(".")
          ? (await api(`${base}/events:evaluateReceipt`, { json: { receipt, score, text } })).event
          : await api(`${base}/events/${event.id}:evaluate`, { json: { score, text, etag: event.etag } });
        say("resident.evaluate.thanks");
        showFollowed(done, receipt);
        loadMine();
      } catch (error) {
        sending = false;
        button.disabled = false;
        say(error instanceof Offline ? "error.offline" : "error.generic", { reason: error.message }, { error: true });
      }
    });
    return form;
  }

  let followed = null; // the report shown under "follow", drawn again on a language switch

  function showFollowed(event, receipt = event.id) {
    followed = { event, receipt };
    const box = document.getElementById("followed");
    const timeline = el(
      "ol",
      { class: "timeline" },
      ...event.timeline.map((entry) =>
        el("li", { text: `${when(entry.time)} · ${t(`state.${entry.to_state}`)}${entry.note ? ` · ${entry.note}` : ""}` }),
      ),
    );
    box.replaceChildren(el("div", { class: "card", id: "followed-event" }, ...describe(event, receipt), el("p", { text: event.description }), timeline));
    if (!anonymous) showPhotos(event.media_uris || [], box.firstChild);
    if (event.evaluation) {
      box.append(el("p", { text: t("resident.evaluated", { score: event.evaluation.score }) }));
    } else if (event.state === "resolved") {
      box.append(evaluationForm(event, receipt));
    }
  }

  async function showPhotos(names, into) {
    for (const name of names.filter((n) => n.startsWith("tenants/"))) {
      const img = await show(name, t("resident.photo.alt")).catch(() => null);
      if (img) into.append(img);
    }
  }

  // A receipt with a dot is one given without an account; otherwise an event id.
  async function follow(receipt) {
    document.getElementById("follow-id").value = receipt;
    try {
      const event = receipt.includes(".")
        ? (await byReceipt(receipt)).event
        : await api(`${base}/events/${encodeURIComponent(receipt)}`);
      showFollowed(event, receipt);
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
    if (!(await pinInVillage())) {
      say("resident.pin.outside", {}, { error: true });
      return;
    }
    const send = document.getElementById("send");
    send.disabled = true;
    const report = {
      category: document.getElementById("category").value,
      description: document.getElementById("description").value,
      address: document.getElementById("address").value,
      location: pin,
    };
    try {
      let receipt;
      if (anonymous) {
        // The request id is the receipt's secret: a retry is the same report.
        const chosen = document.getElementById("photo").files[0];
        const place = JSON.stringify(pin);
        if (chosen && !(pendingPhoto && pendingPhoto.file === chosen && pendingPhoto.place === place)) {
          const name = await uploadAnonymously(tenant, await shrink(chosen), pendingId, pin);
          pendingPhoto = { file: chosen, place, name };
        }
        if (chosen) report.media_uris = [pendingPhoto.name];
        const sent = await api(`${base}/events:reportAnonymously`, { json: { ...report, request_id: pendingId } });
        receipt = sent.receipt;
        keepReceipt(receipt);
        pendingPhoto = null;
        document.getElementById("photo").value = "";
      } else {
        const chosen = document.getElementById("photo").files[0];
        if (chosen) report.media_uris = [await upload(tenant, await shrink(chosen))];
        receipt = (await api(`${base}/events`, { idempotencyKey: pendingId, json: report })).id;
        document.getElementById("photo").value = "";
      }
      pendingId = requestId();
      document.getElementById("receipt").textContent = receipt;
      document.getElementById("receipt-box").hidden = false;
      clearReport();
      say("resident.sent");
      loadMine();
    } catch (error) {
      // Offline: the same key is kept, so sending again cannot make a second report.
      const reason = error instanceof ApiError && error.body && error.body.error && error.body.error.reason;
      const key =
        error instanceof Offline
          ? "error.offline"
          : { ANONYMOUS_REPORTS_OFF: "resident.anonymous.off", ANONYMOUS_REPORTS_LIMIT: "resident.anonymous.full" }[reason] ||
            (error instanceof ApiError && error.status === 429 ? "resident.anonymous.full" : "error.generic");
      const field = error.fieldViolations && error.fieldViolations[0];
      if (field && /(^|\.)location$/.test(field.field)) {
        say("resident.pin.outside", {}, { error: true });
        return;
      }
      say(key, { reason: field ? `${field.field}: ${field.description}` : error.message }, { error: true });
    } finally {
      send.disabled = false;
    }
  });

  document.addEventListener("languagechange", () => {
    fillCategories();
    showPin();
    loadMine();
    if (followed) showFollowed(followed.event, followed.receipt);
  });

  // Without an account the categories come from the public Open311 service list.
  const listing = anonymous
    ? api("/open311/v2/services.json").then((services) => ({
        categories: services.map((s) => ({ code: s.service_code, display_name: s.service_name })),
      }))
    : api(`${base}/categories`);
  const [{ map, crs }, listed] = await Promise.all([mapReady, listing.catch(() => ({ categories: [] })), area]);
  categories = listed.categories;
  fillCategories();
  showPin();
  mapCrs = crs;
  map.on("click", async (e) => {
    await placePin(e.latlng, crs);
    document.getElementById("alert").textContent = "";
    if (!(await pinInVillage())) say("resident.pin.outside", {}, { error: true });
  });
  await loadMine();
  ready();
}
