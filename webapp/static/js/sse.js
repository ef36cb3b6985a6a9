// Follow a reply's Server-Sent Events over fetch (not EventSource), so that an expired access
// token can be refreshed and the stream resumed from the last event id, and so that the page
// can stop listening at once.
import { ApiError, api } from "./api.js";

const FINAL = new Set(["done", "stopped", "error"]);
const RETRY_DELAYS_MS = [250, 1000, 2000, 4000];

function parseEvent(block) {
  const event = { id: null, event: "message", data: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") event.id = Number(value);
    else if (field === "event") event.event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  event.data = JSON.parse(data.join("\n"));
  return event;
}

/**
 * Read the events of a reply until its last one (done, stopped, or an error with an id).
 * A broken connection, or an error event without an id (the stream broke, not the reply),
 * is resumed after the last id seen.
 * @param {number} replyId the reply.
 * @param {object} handlers onEvent(event) for each event; signal to give up; after: last id seen.
 * @returns {Promise<object>} the final event.
 */
export async function followReply(replyId, { onEvent, signal, after = 0 }) {
  let lastId = after;
  let failures = 0;
  for (;;) {
    let response;
    try {
      response = await api("GET", `/api/v1/chat/replies/${replyId}/events?last_event_id=${lastId}`, {
        headers: { Accept: "text/event-stream" },
        signal,
        raw: true,
      });
    } catch (error) {
      if (signal && signal.aborted) throw error;
      if (error instanceof ApiError && error.status === 429) {
        // Rate limited: the reply goes on being written; pick it up when allowed.
        await new Promise((resolve) => setTimeout(resolve, (error.retryAfter || 2) * 1000));
        continue;
      }
      // Other 4xx: the reply is not there (deleted, someone else's): nothing to resume.
      if (error instanceof ApiError && error.status < 500) throw error;
      response = null;
    }
    if (response) {
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const event = parseEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (!event) continue;
            if (event.event === "error" && event.id === null) continue; // resume below
            if (event.id !== null) lastId = event.id;
            failures = 0;
            onEvent(event);
            if (FINAL.has(event.event)) {
              reader.cancel().catch(() => {});
              return event;
            }
          }
        }
      } catch (error) {
        if (signal && signal.aborted) throw error;
      }
    }
    const delay = RETRY_DELAYS_MS[Math.min(failures, RETRY_DELAYS_MS.length - 1)];
    failures += 1;
    await new Promise((resolve) => setTimeout(resolve, delay));
    if (signal && signal.aborted) throw new DOMException("aborted", "AbortError");
  }
}
