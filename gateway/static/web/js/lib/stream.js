// Server-sent events with the signed-in person's token. EventSource cannot send an
// Authorization header, so this reads the stream with fetch and parses it; it
// reconnects after a drop, resuming after the last id it saw (Last-Event-ID).
import { accessToken, refresh } from "./auth.js";

/** Call onMessage({id, event, data}) for each message of `path`; returns a stop function. */
export function follow(path, onMessage, { onState = () => undefined } = {}) {
  let stopped = false;
  let lastId = null;
  let controller = null;

  async function once() {
    controller = new AbortController();
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${await accessToken()}` };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    const response = await fetch(path, { headers, signal: controller.signal });
    if (response.status === 401 && (await refresh())) return;
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    onState("open");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = { id: null, event: "message", data: "" };
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "id") message.id = text;
          else if (field === "event") message.event = text;
          else if (field === "data") message.data += (message.data ? "\n" : "") + text;
        }
        if (!message.data) continue;
        if (message.id !== null) lastId = message.id;
        onMessage(message);
      }
    }
  }

  (async () => {
    while (!stopped) {
      try {
        await once();
      } catch {
        // dropped or refused: wait, then resume after the last id seen
      }
      if (stopped) break;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  })();
  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}
