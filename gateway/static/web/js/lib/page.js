// What every page does first: the language, the header (who is signed in, sign out,
// the language switch), and the moment it becomes usable (a performance mark the
// browser tests read, with Navigation Timing, as time to interactive).
import { chosenLanguage, installSwitch, t, useLanguage } from "./i18n.js";
import { requireSignIn, session, signOut } from "./auth.js";

/**
 * Start the page. `needs` are the scopes without which the signed-in person has no use
 * for it: lacking one, the page says so once in place of its content and returns null.
 */
export async function startPage({ signIn = true, needs = [] } = {}) {
  const me = signIn ? requireSignIn() : (session() && session().me) || null;
  if (signIn && !me) return null; // on the way to the sign-in page
  await useLanguage(chosenLanguage());
  installSwitch(document.getElementById("lang"));
  const held = session();
  const who = document.getElementById("who");
  const out = document.getElementById("signout");
  if (me && who) who.textContent = `${(held && held.username) || me.subject} · ${me.tenant}`;
  if (me && out) {
    out.hidden = false;
    out.addEventListener("click", async () => {
      await signOut();
      // What was kept for offline use goes too; work still waiting to be sent stays.
      await import("./outbox.js").then((m) => m.forgetKept()).catch(() => undefined);
      location.assign("/");
    });
  }
  if (me && !mayUse(me, needs)) {
    forbidden();
    return null;
  }
  return me;
}

/** Whether the signed-in person holds every scope in `needs` (from /v1/me). */
export function mayUse(me, needs) {
  const held = new Set((me && me.scopes) || []);
  return needs.every((scope) => held.has(scope));
}

/** In place of the page's content: one message that this role cannot see it. */
function forbidden() {
  const main = document.querySelector("main");
  for (const child of main.children) if (child.tagName !== "H1") child.hidden = true;
  main.append(el("p", { id: "forbidden", class: "card", role: "alert", "data-i18n": "page.forbidden", text: t("page.forbidden") }));
  ready();
}

/** The page is usable: marks it for the tests and for anyone measuring. */
export function ready() {
  performance.mark("page-ready");
  document.body.dataset.ready = "true";
}

// What each live region last said, so a language switch says it again in the other
// language (unless the page has since cleared or changed it).
const said = new Map(); // region id -> {key, values, text}

/** Say something in the page's live region (polite for news, assertive for errors). */
export function say(key, values = {}, { error = false } = {}) {
  const id = error ? "alert" : "status";
  const region = document.getElementById(id);
  if (!region) return;
  region.textContent = t(key, values);
  said.set(id, { key, values, text: region.textContent });
}

document.addEventListener("languagechange", () => {
  for (const [id, { key, values, text }] of said) {
    const region = document.getElementById(id);
    if (region && region.textContent === text) say(key, values, { error: id === "alert" });
  }
});

/** An element with text and attributes; children may be nodes or strings. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

/** A short local date and time. */
export function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(document.documentElement.lang, { dateStyle: "short", timeStyle: "short" });
}
