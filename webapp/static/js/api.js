// Calls to the REST API with the browser session: HttpOnly cookies carry the tokens (this
// script never sees one), unsafe requests echo the CSRF cookie in X-CSRF-TOKEN (double
// submit), and an expired access token is refreshed once, then the request retried.

const CSRF_HEADER = "X-CSRF-TOKEN";
const ACCESS_CSRF = "csrf_access_token";
const REFRESH_CSRF = "csrf_refresh_token";
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/** An error answer of the API, in its one shape: {error: {code, message, field?, ...}}. */
export class ApiError extends Error {
  constructor(status, body, headers) {
    const error = (body && body.error) || {};
    super(error.message || `Request failed (HTTP ${status}).`);
    this.status = status;
    this.code = error.code || "http_" + status;
    this.field = error.field || null;
    this.details = error;
    const retry = headers ? Number(headers.get("Retry-After")) : NaN;
    this.retryAfter = Number.isFinite(retry) && retry > 0 ? retry : error.retry_after || null;
  }
}

/** Return a cookie's value (only the CSRF cookies are readable: the tokens are HttpOnly). */
export function getCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

let refreshing = null;

async function refreshOnce(failedCsrf) {
  const run = async () => {
    // Another tab may have refreshed while this request failed: its new cookies are ours too.
    const current = getCookie(ACCESS_CSRF);
    if (current && current !== failedCsrf) return true;
    const csrf = getCookie(REFRESH_CSRF);
    if (!csrf) return false;
    const response = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      credentials: "same-origin",
      headers: { [CSRF_HEADER]: csrf, Accept: "application/json" },
    });
    return response.ok;
  };
  // One refresh at a time across tabs: a refresh token is spent by its first use, and a
  // second use of the same token would revoke the whole session (reuse detection).
  if (navigator.locks) return navigator.locks.request("chatbot-session-refresh", run);
  return run();
}

/**
 * Refresh the session's tokens (rotating the refresh cookie). Concurrent callers share one.
 * @returns {Promise<boolean>} whether the session is alive.
 */
export function refreshSession(failedCsrf = getCookie(ACCESS_CSRF)) {
  if (!refreshing) {
    refreshing = refreshOnce(failedCsrf)
      .catch(() => false)
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/**
 * Send a request to the API.
 * @param {string} method HTTP method.
 * @param {string} path Path under the site, e.g. /api/v1/chat/conversations.
 * @param {object} [options] body (JSON), headers, signal, raw (return the Response itself).
 * @returns {Promise<any>} the JSON body (null for 204), or the Response when raw.
 */
export async function api(method, path, options = {}) {
  const { body, headers = {}, signal, raw = false } = options;
  const send = () => {
    const all = { Accept: "application/json", ...headers };
    if (body !== undefined) all["Content-Type"] = "application/json";
    if (!SAFE.has(method)) all[CSRF_HEADER] = getCookie(ACCESS_CSRF) || "";
    return fetch(path, {
      method,
      headers: all,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  };
  const csrfUsed = getCookie(ACCESS_CSRF);
  let response = await send();
  if (response.status === 401 && (await refreshSession(csrfUsed))) {
    response = await send();
  }
  if (response.status === 401) {
    // Without any session cookie this visitor never signed in: no "session ended" notice.
    signedOut(getCookie(REFRESH_CSRF) || csrfUsed ? "expired" : "required");
    throw new ApiError(401, await readJson(response), response.headers);
  }
  if (!response.ok) throw new ApiError(response.status, await readJson(response), response.headers);
  if (raw) return response;
  if (response.status === 204) return null;
  return readJson(response);
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

// Set once this page is leaving for the sign-in page (or signing out): a request that the
// sign-out itself made fail (401) must not send the browser away again with another reason.
let leaving = false;

/** Leave for the sign-in page, coming back here afterwards. */
export function signedOut(reason = "expired") {
  if (leaving) return;
  leaving = true;
  const next = location.pathname + location.search;
  const target = new URL("/account/login", location.origin);
  if (reason !== "required") target.searchParams.set("reason", reason);
  if (!next.startsWith("/account/")) target.searchParams.set("next", next);
  location.assign(target.toString());
}

/** Return the signed-in user, or go to the sign-in page. */
export async function requireUser() {
  const body = await api("GET", "/api/v1/auth/me");
  return body.user;
}

/** Sign this browser out (revoking the session) and go to the sign-in page. */
export async function signOut() {
  leaving = true;
  const send = () =>
    fetch("/api/v1/auth/session", {
      method: "DELETE",
      credentials: "same-origin",
      headers: { [CSRF_HEADER]: getCookie(REFRESH_CSRF) || "", Accept: "application/json" },
    });
  let response;
  try {
    response = await send();
  } catch (error) {
    leaving = false;
    throw error;
  }
  if (response.status === 503) {
    // The session store is down: signing out cannot be recorded; say so rather than pretend.
    leaving = false;
    throw new ApiError(503, await readJson(response), response.headers);
  }
  location.assign("/account/login?reason=signed_out");
}
