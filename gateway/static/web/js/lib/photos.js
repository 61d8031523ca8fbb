// Photos of a report or a resolution (ADR 36): made small enough on the phone, then
// uploaded to the events service, which keeps them and tells them by their bytes.
import { api } from "./api.js";

const KINDS = ["image/jpeg", "image/png", "image/webp"];
const MAX_BYTES = 2 * 1024 * 1024; // the contract's bound on an attachment's content
const LONGEST_SIDE = 1600; // enough to see the scene, small enough for a slow network

/** The photo as sent: as chosen when it is small and of a kind kept, else a JPEG. */
export async function shrink(file) {
  if (KINDS.includes(file.type) && file.size <= MAX_BYTES / 2) return file;
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, LONGEST_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
}

/** Upload a photo for a tenant; its resource name, for `media_uris`. */
export async function upload(tenant, blob) {
  const form = new FormData();
  form.append("content", blob, "photo");
  const made = await api(`/v1/tenants/${tenant}/attachments`, { form });
  return made.name;
}

/** Upload a photo for a report without an account (ADR 36): sent with the report's
 * secret request id and its place, whose village keeps it; its resource name. */
export async function uploadAnonymously(tenant, blob, requestId, pin) {
  const form = new FormData();
  form.append("content", blob, "photo");
  form.append("request_id", requestId);
  form.append("longitude", String(pin.longitude));
  form.append("latitude", String(pin.latitude));
  if (pin.crs) form.append("crs", pin.crs);
  const made = await api(`/v1/tenants/${tenant}/events:attachAnonymously`, { form });
  return made.name;
}

/** An <img> of a kept photo, fetched with the signed-in person's token. */
export async function show(name, alt) {
  const img = document.createElement("img");
  img.alt = alt;
  img.className = "photo";
  const { accessToken } = await import("./auth.js");
  const token = await accessToken();
  const answer = await fetch(`/v1/${name}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!answer.ok) return null;
  img.src = URL.createObjectURL(await answer.blob());
  return img;
}
