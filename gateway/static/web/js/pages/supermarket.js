// The supermarket: the catalog's shelf (components, scenario templates, datasets), the
// district's adoption matrix (villages x scenario templates) and, since the REST API
// has no plan/install route, the `grassroots scenario` commands district IT runs.
import { api, query } from "../lib/api.js";
import { t } from "../lib/i18n.js";
import { el, ready, say, startPage } from "../lib/page.js";

const me = await startPage();
let items = [];
let adoption = null;
let scenarioColumns = []; // from the whole shelf, so a search does not change the matrix

/** The tenant id used in URLs: the path with dashes ("sh/jiading" -> "sh-jiading"). */
const tenantId = (path) => path.replaceAll("/", "-");

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
  document.getElementById("villages").replaceChildren(...nodes.map((n) => el("option", { value: tenantId(n.tenant) })));
}

function drawCommands() {
  const select = document.getElementById("install-scenario");
  const village = document.getElementById("install-village").value.trim() || "<village-id>";
  const id = select.value || "<scenario>";
  document.getElementById("plan-command").textContent = `grassroots scenario plan ${id} --village ${village}`;
  document.getElementById("apply-command").textContent = `grassroots scenario install ${id} --village ${village}`;
}

function fillInstallForm() {
  const select = document.getElementById("install-scenario");
  const chosen = select.value;
  select.replaceChildren(
    ...scenarioColumns.map((s) => el("option", { value: templateId(s), text: s.display_name || templateId(s) })),
  );
  if (chosen) select.value = chosen;
  drawCommands();
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

if (me) {
  await load();
  // Town and district staff see their subtree's adoption; a village's answer has only itself.
  if (me.tenant.split("/").length <= 3) {
    try {
      adoption = await api(`/v1/tenants/${tenantId(me.tenant)}/adoption`);
      document.getElementById("adoption").hidden = false;
      drawMatrix();
    } catch (error) {
      say("market.adoption.failed", { error: error.message }, { error: true });
    }
  }
  const village = document.getElementById("install-village");
  if (me.tenant.split("/").length >= 4) village.value = tenantId(me.tenant);
  drawCommands();
  document.getElementById("install-scenario").addEventListener("change", drawCommands);
  village.addEventListener("input", drawCommands);
  document.getElementById("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    load(document.getElementById("search").value.trim());
  });
  document.addEventListener("languagechange", () => {
    drawShelf();
    drawMatrix();
  });
  ready();
}
