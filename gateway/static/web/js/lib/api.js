// The REST client every page uses: the signed-in person's token, one refresh on 401,
// the gateway's error shape turned into ApiError, and Idempotency-Key on creates.
import { accessToken, refresh } from "./auth.js";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.fieldViolations = error.field_violations || [];
    this.body = body;
  }
}

/** No answer at all (offline, or the gateway unreachable): the request may be retried. */
export class Offline extends Error {}

async function send(path, options, token) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.idempotencyKey) headers["Idempotency-Key"] = options.idempotencyKey;
  let body;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form !== undefined) {
    body = options.form; // FormData: the browser writes the multipart type and boundary
  }
  try {
    return await fetch(path, { method: options.method || (body ? "POST" : "GET"), headers, body });
  } catch (error) {
    throw new Offline(String(error));
  }
}

/** The answer's JSON; ApiError for an error answer, Offline when none came. */
export async function api(path, options = {}) {
  let response = await send(path, options, await accessToken());
  if (response.status === 401 && (await refresh())) {
    response = await send(path, options, await accessToken());
  }
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const kept = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return kept.length ? `?${new URLSearchParams(kept)}` : "";
}
