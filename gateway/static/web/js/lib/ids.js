// Request ids (the Idempotency-Key of each create): random, and made in insecure
// contexts too, where crypto.randomUUID is missing (plain-http intranets).
export function requestId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The REST id of a tenant path: "sh/jiading/anting" -> "sh-jiading-anting". */
export function tenantId(path) {
  return String(path).replaceAll("/", "-");
}
