import { startPage, ready } from "../lib/page.js";

const me = await startPage({ signIn: false });
if (!me) document.getElementById("signin").hidden = false;
ready();
