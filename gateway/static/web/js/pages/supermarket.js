// The supermarket: the catalog's shelf (components, scenario templates, datasets), the
// district's adoption matrix (villages x scenario templates), and installing a
// scenario in a village: the composer's plan is shown first, applied only on request,
// and the matrix is read again afterwards.
import { api, Offline, query } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { el, mayUse, ready, say, startPage } from "../lib/page.js";

const me = await startPage({ needs: ["catalog:read"] });
let items = [];
let adoption = null;
let scenarioColumns = []; // from the whole shelf, so a search does not change the matrix

/** The tenant id used in URLs: the path with dashes ("sh/jiading" -> "sh-jiading"). */
const tenantId = (path) => path.replaceAll("/", "-");
const tenantPath = (id) => id.replaceAll("-", "/");

/** A scenario template's id ("catalogItems/scenario-fire-smoke" -> "fire-smoke"). */
const templateId = (item) => item.name.replace(/^catalogItems\/scenario-/, "");

async function loadShelf(q = "") {
  const found = [];
  let token = "";
  do {
    const page = await api(`/v1/catalogItems${query({ q, page_size: 200, page_token: token })}`);
    found.push(...page.catalog_items);
    token = page.next_page_token;
  } while (token);
  return found;
}

function card(item) {
  const facts = [item.version && t("market.version", { version: item.version }), item.area].filter(Boolean);
  const extra = [];
  if (item.kind === "component") {
    if (item.health) extra.push(el("span", { class: "pill", text: t("market.health", { health: item.health }) }));
    if (item.docs_uri) extra.push(el("a", { href: item.docs_uri, text: t("market.docs") }));
  }
  if (item.kind === "scenario" && item.components.length) {
    extra.push(el("span", { class: "muted", text: t("market.uses", { components: item.components.join(", ") }) }));
  }
  if (item.kind === "dataset" && item.classification) {
    extra.push(el("span", { class: "pill", text: item.classification }));
  }
  return el(
    "li",
    { "data-name": item.name },
    el("strong", { text: item.display_name || item.name }),
    facts.length ? el("span", { class: "muted", text: ` · ${facts.join(" · ")}` }) : null,
    item.description ? el("p", { text: item.description }) : null,
    extra.length ? el("div", { class: "row" }, ...extra) : null,
  );
}

function drawShelf() {
  for (const kind of ["component", "scenario", "dataset"]) {
    const list = document.getElementById(`${kind}s`);
    const mine = items.filter((i) => i.kind === kind);
    list.replaceChildren(...mine.map(card));
    if (!mine.length) list.append(el("li", { class: "muted", text: t("market.none") }));
  }
}

function drawMatrix() {
  if (!adoption) return;
  const scenarios = scenarioColumns;
  const nodes = adoption.nodes.filter((n) => n.scenarios.length || n.datasets.length);
  const table = document.getElementById("matrix");
  const head = el(
    "tr",
    {},
    el("th", { scope: "col", text: t("market.village") }),
    ...scenarios.map((s) => el("th", { scope: "col", text: s.display_name || templateId(s) })),
  );
  const rows = nodes.map((n) =>
    el(
      "tr",
      { "data-tenant": n.tenant },
      el("th", { scope: "row", text: n.tenant }),
      ...scenarios.map((s) => {
        const used = n.scenarios.includes(s.name);
        return el("td", { class: used ? "yes" : "no", text: used ? t("market.installed") : "–" });
      }),
    ),
  );
  const caption = el("caption", { class: "muted", text: t("market.adoption.caption", { count: nodes.length }) });
  table.replaceChildren(caption, el("thead", {}, head), el("tbody", {}, ...rows));
}

// ---- installing ------------------------------------------------------------------------

let shown = null; // the plan on screen: {scenario, village, uninstall, plan}

function chosen() {
  return {
    scenario: document.getElementById("install-scenario").value,
    village: document.getElementById("install-village").value,
  };
}

function drawCommands() {
  const { scenario, village } = chosen();
  document.getElementById("plan-command").textContent =
    `grassroots scenario plan ${scenario || "<scenario>"} --village ${village || "<village-id>"}`;
}

function fillInstallForm() {
  const select = document.getElementById("install-scenario");
  const was = select.value;
  select.replaceChildren(
    ...scenarioColumns.map((s) => el("option", { value: templateId(s), text: s.display_name || templateId(s) })),
  );
  if (was) select.value = was;
  drawCommands();
}

/** The villages of the caller's subtree, walking the tenant tree down to them. */
async function villagesUnder(path) {
  if (path.split("/").length >= 4) return [path];
  const found = [];
  let token = "";
  do {
    const page = await api(`/v1/tenants/${tenantId(path)}/children${query({ page_size: 1000, page_token: token })}`);
    for (const child of page.tenants) {
      if (child.level === "village") found.push(child.path);
      else if (child.level !== "grid") found.push(...(await villagesUnder(child.path)));
    }
    token = page.next_page_token;
  } while (token);
  return found;
}

async function fillVillages() {
  const select = document.getElementById("install-village");
  let paths = [];
  try {
    paths = await villagesUnder(me.tenant);
  } catch (error) {
    say("market.villages.failed", { error: error.message }, { error: true });
  }
  select.replaceChildren(...paths.sort().map((p) => el("option", { value: tenantId(p), text: p })));
  drawCommands();
}

function forget() {
  shown = null;
  document.getElementById("plan").hidden = true;
  document.getElementById("apply").disabled = true;
}

function drawPlan() {
  const { plan, uninstall } = shown;
  const c = plan.counts;
  // Of the releases, only `shared` ones are still used by other scenarios; the rest are
  // gone already or not the scenario's to delete (a component without a delete).
  const key = !uninstall ? "market.plan.summary"
    : c.shared ? "market.plan.summary.uninstall.shared" : "market.plan.summary.uninstall";
  const summary = plan.empty
    ? t("market.plan.empty")
    : t(key, {
        create: c.create, update: c.update, replace: c.replace, delete: c.delete, release: c.release,
        shared: c.shared || 0, keep: c.keep,
      });
  document.getElementById("plan-summary").textContent = summary;
  document.getElementById("plan-text").textContent = plan.text;
  document.getElementById("plan-problems").replaceChildren(
    ...plan.blockers.map((b) => el("li", { class: "blocker", text: t("market.plan.blocked", { why: b }) })),
    ...plan.warnings.map((w) => el("li", { class: "warning", text: t("market.plan.warning", { why: w }) })),
  );
  const apply = document.getElementById("apply");
  apply.textContent = t(uninstall ? "market.apply.uninstall" : "market.apply");
  apply.disabled = plan.empty || plan.blockers.length > 0;
  document.getElementById("plan").hidden = false;
}

// Why a call failed, for the page: no answer at all (offline) says so in the page's
// language; an error answer names its fields.
function problem(error) {
  if (error instanceof Offline) return t("market.offline");
  const where = (error.fieldViolations || []).map((v) => v.field).join(", ");
  return where ? `${error.message} (${where})` : error.message;
}

async function showPlan(uninstall) {
  const { scenario, village } = chosen();
  if (!scenario || !village) return;
  forget();
  document.getElementById("alert").textContent = "";
  say("market.plan.working");
  try {
    const plan = await api(`/v1/tenants/${village}/scenarios:${uninstall ? "planUninstall" : "plan"}`, {
      method: "POST",
      json: { scenario },
    });
    shown = { scenario, village, uninstall, plan };
    drawPlan();
    say("market.plan.ready");
  } catch (error) {
    say("market.plan.failed", { error: problem(error) }, { error: true });
  }
}

async function loadAdoption() {
  adoption = await api(`/v1/tenants/${tenantId(me.tenant)}/adoption`);
  document.getElementById("adoption").hidden = false;
  drawMatrix();
}

async function applyShown() {
  if (!shown) return;
  const { scenario, village, uninstall, plan } = shown;
  const apply = document.getElementById("apply");
  apply.disabled = true;
  document.getElementById("alert").textContent = "";
  say("market.apply.working");
  try {
    const done = await api(`/v1/tenants/${village}/scenarios:${uninstall ? "uninstall" : "install"}`, {
      method: "POST",
      // Exactly the plan on screen: one that moved meanwhile is refused, and shown.
      json: { scenario, plan_digest: plan.digest },
    });
    if (watchesAdoption) await loadAdoption();
    // The village as it is now: an install's plan then says there is nothing to do.
    if (!uninstall) await showPlan(false);
    else forget();
    say(uninstall ? "market.apply.removed" : "market.apply.done", {
      scenario, village: tenantPath(village), state: t(`market.state.${done.state}`), steps: done.done,
    });
  } catch (error) {
    apply.disabled = false;
    const moved = (error.body && error.body.error && error.body.error.reason) === "PLAN_CHANGED";
    if (moved) {
      await showPlan(uninstall);
      say("market.apply.moved", {}, { error: true });
      return;
    }
    say("market.apply.failed", { error: problem(error) }, { error: true });
  }
}

async function load(q = "") {
  try {
    items = await loadShelf(q);
  } catch (error) {
    say("market.failed", { error: error.message }, { error: true });
    return;
  }
  say("market.count", { count: items.length });
  if (!q) scenarioColumns = items.filter((i) => i.kind === "scenario");
  drawShelf();
  if (!q) fillInstallForm();
}

// Town and district staff see their subtree's adoption; a village's answer has only itself.
const watchesAdoption = Boolean(me) && me.tenant.split("/").length <= 3;

// Only a role that installs scenarios sees the install form; the shelf is for all who read it.
const installs = mayUse(me, ["scenarios:install"]);

if (me) {
  document.getElementById("install").hidden = !installs;
  await Promise.all([load(), installs ? fillVillages() : null]);
  if (watchesAdoption) {
    try {
      await loadAdoption();
    } catch (error) {
      say("market.adoption.failed", { error: error.message }, { error: true });
    }
  }
  for (const id of ["install-scenario", "install-village"]) {
    document.getElementById(id).addEventListener("change", () => {
      forget();
      drawCommands();
    });
  }
  document.getElementById("install-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showPlan(false);
  });
  document.getElementById("plan-uninstall").addEventListener("click", () => showPlan(true));
  document.getElementById("apply").addEventListener("click", applyShown);
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    load(document.getElementById("search").value.trim());
  });
  document.addEventListener("languagechange", () => {
    drawShelf();
    drawMatrix();
    if (shown) drawPlan();
  });
  ready();
}
