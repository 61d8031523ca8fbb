// Sign-in with the identity accounts (the gateway's OAuth token endpoint). The session
// lives in sessionStorage: it ends with the tab, and other sites cannot read it.
const KEY = "grassroots.session";
const EARLY_SECONDS = 30; // refresh this long before the access token expires

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || "null");
  } catch {
    return null;
  }
}

function keep(value) {
  if (value) sessionStorage.setItem(KEY, JSON.stringify(value));
  else sessionStorage.removeItem(KEY);
}

async function tokenCall(fields) {
  const response = await fetch("/v1/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
  const body = await response.json().catch(() => ({}));
  return { ok: response.ok, status: response.status, body };
}

function withTokens(old, body) {
  return {
    ...old,
    access_token: body.access_token,
    refresh_token: body.refresh_token || (old && old.refresh_token) || null,
    expires_at: Date.now() + (body.expires_in || 0) * 1000,
  };
}

async function whoAmI(accessToken) {
  const response = await fetch("/v1/me", { headers: { Authorization: `Bearer ${accessToken}` } });
  if (!response.ok) throw new Error(`/v1/me answered ${response.status}`);
  return response.json();
}

/** {ok}, {changePassword: true} (a password someone else set), or {error: text}. */
export async function signIn(username, password) {
  const answer = await tokenCall({ grant_type: "password", username, password });
  if (!answer.ok) return { error: answer.body.error_description || answer.body.error || `HTTP ${answer.status}` };
  if (answer.body.password_change_required) {
    keep({ ...withTokens(null, answer.body), pending_password_change: true, username });
    return { changePassword: true };
  }
  const started = withTokens(null, answer.body);
  started.me = await whoAmI(started.access_token);
  started.username = username;
  keep(started);
  return { ok: true };
}

/** Replace a first password; the answer carries a full session. */
export async function changePassword(current, next) {
  const held = session();
  const response = await fetch("/v1/me:changePassword", {
    method: "POST",
    headers: { Authorization: `Bearer ${held && held.access_token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ current_password: current, new_password: next }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) return { error: (body.error && body.error.message) || `HTTP ${response.status}` };
  const started = withTokens(null, body);
  started.me = await whoAmI(started.access_token);
  started.username = held && held.username;
  keep(started);
  return { ok: true };
}

let refreshing = null;

/** New tokens from the refresh token (one request however many callers ask). */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const held = session();
      if (!held || !held.refresh_token) return false;
      const answer = await tokenCall({ grant_type: "refresh_token", refresh_token: held.refresh_token });
      if (!answer.ok) {
        if (answer.status === 400) keep(null); // used, expired or revoked: sign in again
        return false;
      }
      keep(withTokens(held, answer.body));
      return true;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** The access token, refreshed first when it is about to expire. */
export async function accessToken() {
  let held = session();
  if (!held || held.pending_password_change) return null;
  if (held.expires_at - Date.now() < EARLY_SECONDS * 1000) {
    await refresh();
    held = session();
  }
  return held ? held.access_token : null;
}

/** Sign out: the refresh token (and the rest of its sign-in) is revoked, the session dropped. */
export async function signOut() {
  const held = session();
  keep(null);
  if (held && held.refresh_token) {
    await fetch("/v1/auth/revoke", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: held.refresh_token }),
    }).catch(() => undefined);
  }
}

/** The signed-in person (GET /v1/me), or a trip to the sign-in page that comes back here. */
export function requireSignIn() {
  const held = session();
  if (held && held.me && !held.pending_password_change) return held.me;
  const next = location.pathname + location.search;
  location.replace(`/web/signin.html?next=${encodeURIComponent(next)}`);
  return null;
}
