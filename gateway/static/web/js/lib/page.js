// What every page does first: the language, the header (who is signed in, sign out,
// the language switch), and the moment it becomes usable (a performance mark the
// browser tests read, with Navigation Timing, as time to interactive).
import { chosenLanguage, installSwitch, t, useLanguage } from "./i18n.js";
import { requireSignIn, session, signOut } from "./auth.js";

export async function startPage({ signIn = true } = {}) {
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
  return me;
}

/** The page is usable: marks it for the tests and for anyone measuring. */
export function ready() {
  performance.mark("page-ready");
  document.body.dataset.ready = "true";
}

/** Say something in the page's live region (polite for news, assertive for errors). */
export function say(key, values = {}, { error = false } = {}) {
  const region = document.getElementById(error ? "alert" : "status");
  if (region) region.textContent = t(key, values);
}

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
