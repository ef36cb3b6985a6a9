// What the admin pages share (admin.js, admin_catalogue.js): the API's prefix, the page's
// notice, and the small pieces tables are built from.
import { ApiError } from "./api.js";
import { el } from "./ui.js";

export const ADMIN = "/api/v1/admin";
export const notice = document.getElementById("admin-notice");

/** Say why an admin request failed; a route this server does not have (404) says so. */
export function problem(error) {
  if (error instanceof ApiError && error.status === 404) return "This server does not offer this yet.";
  return error.message || String(error);
}

/** Replace a container's content with why it could not be loaded. */
export function unavailable(container, error) {
  container.replaceChildren(el("p", { class: "notice notice-info", text: problem(error) }));
}

/** A table cell. */
export function cell(content, props = {}) {
  return el("td", props, content);
}

/** A coloured badge: `yes` when ok, else `no`. */
export function badge(ok, yes, no) {
  return el("span", { class: `badge ${ok ? "badge-ok" : "badge-bad"}`, text: ok ? yes : no });
}

/** A field name as a label: "tokens_in" → "Tokens in". */
export function label(key) {
  const text = key.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}
