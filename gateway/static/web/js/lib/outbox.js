// Work made without a connection waits here (IndexedDB) with its request id, and is
// sent in order when the connection returns. A create carries the id as its
// Idempotency-Key, so a send whose answer was lost and is sent again makes nothing
// twice; a task action that was already applied is refused by the task's state
// machine, and `verify` then confirms it took effect instead of reporting a failure.
import { api, ApiError, Offline } from "./api.js";
import { upload } from "./photos.js";

const DB_NAME = "grassroots";
const OUTBOX = "outbox";
const KEPT = "kept";

let opening = null;
function db() {
  if (!opening) {
    opening = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB_NAME, 1);
      request.onupgradeneeded = () => {
        const database = request.result;
        database.createObjectStore(OUTBOX, { keyPath: "id" });
        database.createObjectStore(KEPT, { keyPath: "key" });
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  return opening;
}

async function run(store, mode, work) {
  const database = await db();
  return new Promise((resolve, reject) => {
    const tx = database.transaction(store, mode);
    const result = work(tx.objectStore(store));
    tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
    tx.onerror = () => reject(tx.error);
  });
}

/** Keep an action: {id (request id), owner, path, json, label, verify?, and optionally
 * photo (a Blob) with photoTenant: uploaded first and named in json.media_uris}. */
export function enqueue(item) {
  return run(OUTBOX, "readwrite", (s) => s.put({ ...item, created: Date.now() }));
}

/** The owner's waiting actions, oldest first. */
export async function waiting(owner) {
  const all = (await run(OUTBOX, "readonly", (s) => s.getAll())) || [];
  return all.filter((item) => item.owner === owner).sort((a, b) => a.created - b.created);
}

function drop(id) {
  return run(OUTBOX, "readwrite", (s) => s.delete(id));
}

/** Remember a value for offline use (the worker's open tasks). */
export function keep(key, value) {
  return run(KEPT, "readwrite", (s) => s.put({ key, value, time: Date.now() }));
}

export async function kept(key) {
  const found = await run(KEPT, "readonly", (s) => s.get(key));
  return found ? found.value : null;
}

/** Forget what was kept for offline use (sign-out); waiting actions stay until sent. */
export function forgetKept() {
  return run(KEPT, "readwrite", (s) => s.clear());
}

// `verify` names how to check that an action refused now had already taken effect.
const CHECKS = {
  taskState: async (item) => {
    const task = await api(`/v1/${item.verify.task}`);
    return item.verify.states.includes(task.state);
  },
};

let flushing = null;

/**
 * Send the owner's waiting actions in order. Stops at the first that cannot be sent now
 * (offline, rate limited, the platform unavailable) and keeps it and those after it.
 * Returns {sent, failed: [{item, error}], left}.
 */
export function flush(owner) {
  if (!flushing) {
    flushing = (async () => {
      const report = { sent: 0, failed: [], left: 0 };
      const items = await waiting(owner);
      for (let i = 0; i < items.length; i += 1) {
        const item = items[i];
        try {
          if (item.photo) {
            // The photo goes first; the action then names it. Kept at once, so a
            // resend of the action never uploads the photo again.
            const name = await upload(item.photoTenant, item.photo);
            item.json = { ...item.json, media_uris: [...(item.json.media_uris || []), name] };
            delete item.photo;
            await run(OUTBOX, "readwrite", (s) => s.put(item));
          }
          await api(item.path, { json: item.json, idempotencyKey: item.id });
          await drop(item.id);
          report.sent += 1;
        } catch (error) {
          const retryLater = error instanceof Offline || (error instanceof ApiError && (error.status >= 500 || error.status === 429 || error.status === 401));
          if (retryLater) {
            report.left = items.length - i;
            break;
          }
          const done = item.verify ? await CHECKS[item.verify.check](item).catch(() => false) : false;
          await drop(item.id);
          if (done) report.sent += 1;
          else report.failed.push({ item, error });
        }
      }
      return report;
    })().finally(() => {
      flushing = null;
    });
  }
  return flushing;
}
