// Pieces every page shares: the account menu, form errors next to their fields, notices.
import { requireUser, signOut } from "./api.js";

/** Create an element with properties and children (text is always set as text, never HTML). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show the signed-in user in the top bar, and wire the sign-out button. */
export function showAccount(user) {
  const menu = document.getElementById("account-menu");
  if (!menu) return;
  document.getElementById("account-name").textContent = user.display_name || user.email;
  document.getElementById("admin-link").hidden = user.role !== "admin";
  menu.hidden = false;
  const button = document.getElementById("sign-out");
  if (button.dataset.wired) return; // called again after a profile change
  button.dataset.wired = "1";
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await signOut();
    } catch (error) {
      button.disabled = false;
      alert(error.message);
    }
  });
}

/**
 * Return the signed-in user with the account menu shown, or null when there is none (the page
 * is then on its way to the sign-in page).
 */
export async function signedInUser() {
  let user;
  try {
    user = await requireUser();
  } catch {
    return null;
  }
  showAccount(user);
  return user;
}

/** Clear a form's error and success messages. */
export function clearErrors(form) {
  for (const node of form.querySelectorAll("[data-error-for], .form-ok")) node.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/** Show an error next to the field it names (error.field), or under the form. */
export function showError(form, error, field = error.field) {
  const target =
    (field && form.querySelector(`[data-error-for="${CSS.escape(field)}"]`)) ||
    form.querySelector('[data-error-for=""]');
  if (target) target.textContent = error.message;
  const input = field && form.elements.namedItem(field);
  if (input && input.focus) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

/** Show a message in a notice element (hidden when the message is empty). */
export function notify(node, message, kind = "error") {
  node.textContent = message || "";
  node.className = `notice notice-${kind}`;
  node.hidden = !message;
}

/** Format an ISO date for people, in their locale and time zone. */
export function formatTime(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** Say in words what a 429 (rate limit or quota) means for the user. */
export function limitMessage(error) {
  if (error.code === "quota_exceeded") {
    const resets = error.details.resets_at
      ? ` It resets at ${formatTime(error.details.resets_at)}.`
      : "";
    return `You have used today's token quota (${error.details.used ?? "?"} of ${
      error.details.limit ?? "?"
    }).${resets}`;
  }
  const wait = error.retryAfter ? aboutDuration(error.retryAfter) : "a few seconds";
  return `Too many requests: please wait ${wait} and try again.`;
}

/**
 * Say a wait in words people read at a glance: "12 seconds", "about 52 minutes", "about 3 hours".
 * Below a minute it is exact; above, rounded to the nearest minute, hour or day ("about").
 * @param {number} seconds a duration in seconds.
 * @returns {string} the duration in words.
 */
export function aboutDuration(seconds) {
  const plural = (count, unit) => `${count} ${unit}${count === 1 ? "" : "s"}`;
  const whole = Math.max(1, Math.ceil(seconds));
  if (whole < 60) return plural(whole, "second");
  const minutes = Math.round(whole / 60);
  if (minutes < 60) return `about ${plural(minutes, "minute")}`;
  const hours = Math.round(whole / 3600);
  if (hours < 24) return `about ${plural(hours, "hour")}`;
  return `about ${plural(Math.round(whole / 86_400), "day")}`;
}
