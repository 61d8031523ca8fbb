import { changePassword, signIn } from "../lib/auth.js";
import { startPage, ready, say } from "../lib/page.js";

await startPage({ signIn: false });
const form = document.getElementById("signin-form");
const change = document.getElementById("change-form");
let password = "";

/** Back to the page that sent us here: a path on this site only, never another origin. */
function goOn() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  location.assign(next.startsWith("/") && !next.startsWith("//") ? next : "/");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  say("signin.working");
  password = document.getElementById("password").value;
  const result = await signIn(document.getElementById("username").value.trim(), password);
  if (result.error) {
    say("", {});
    say("signin.failed", { reason: result.error }, { error: true });
    return;
  }
  if (result.changePassword) {
    form.hidden = true;
    change.hidden = false;
    say("signin.change.needed");
    document.getElementById("new-password").focus();
    return;
  }
  goOn();
});

change.addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = await changePassword(password, document.getElementById("new-password").value);
  if (result.error) {
    say("signin.failed", { reason: result.error }, { error: true });
    return;
  }
  goOn();
});
document.getElementById("username").focus();
ready();
