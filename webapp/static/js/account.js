// The account pages: sign in, register, profile (display name, password, default model, API
// keys, sign out everywhere).
import { ApiError, api, signedOut } from "./api.js";
import { clearErrors, el, formatTime, limitMessage, notify, showAccount, showError, signedInUser } from "./ui.js";

const REASONS = {
  expired: "Your session has ended. Please sign in again.",
  signed_out: "You have signed out.",
  everywhere: "You have signed out on every device.",
  registered: "Your account is ready. Sign in to start.",
};

function values(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** A path on this site to go to after signing in (never another site). */
function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

function errorMessage(error) {
  return error.status === 429 ? { ...error, message: limitMessage(error) } : error;
}

async function submit(form, button, action) {
  clearErrors(form);
  button.disabled = true;
  try {
    await action();
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    showError(form, errorMessage(error));
  } finally {
    button.disabled = false;
  }
}

/** POST a JSON form without the session (sign in, register): errors stay on this page. */
async function postPublic(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data, response.headers);
  return data;
}

function requireFilled(form, names) {
  for (const name of names) {
    if (!form.elements.namedItem(name).value) {
      showError(form, { message: `${form.querySelector(`label[for="${name}"]`).textContent.trim()} is required.` }, name);
      return false;
    }
  }
  return true;
}

function loginPage() {
  const form = document.getElementById("login-form");
  const reason = new URLSearchParams(location.search).get("reason");
  if (reason && REASONS[reason]) notify(document.getElementById("page-notice"), REASONS[reason], "info");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(form, form.querySelector("button[type=submit]"), async () => {
      if (!requireFilled(form, ["email", "password"])) return;
      await postPublic("/api/v1/auth/session", values(form));
      location.assign(nextPath());
    });
  });
}

function registerPage() {
  const form = document.getElementById("register-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(form, form.querySelector("button[type=submit]"), async () => {
      if (!requireFilled(form, ["email", "password"])) return;
      const body = values(form);
      if (!body.display_name) delete body.display_name;
      await postPublic("/api/v1/auth/register", body);
      try {
        await postPublic("/api/v1/auth/session", { email: body.email, password: body.password });
        location.assign("/");
      } catch {
        location.assign("/account/login?reason=registered");
      }
    });
  });
}

async function profilePage() {
  const user = await signedInUser();
  if (!user) return;
  document.getElementById("profile-email").textContent = user.email;
  document.getElementById("profile-role").textContent = user.role;

  const nameForm = document.getElementById("name-form");
  nameForm.elements.namedItem("display_name").value = user.display_name || "";
  nameForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(nameForm, nameForm.querySelector("button[type=submit]"), async () => {
      const body = await api("PATCH", "/api/v1/auth/me", { body: values(nameForm) });
      showAccount(body.user);
      nameForm.querySelector(".form-ok").textContent = "Saved.";
    });
  });

  const passwordForm = document.getElementById("password-form");
  passwordForm.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(passwordForm, passwordForm.querySelector("button[type=submit]"), async () => {
      if (!requireFilled(passwordForm, ["current_password", "new_password", "confirm_password"])) return;
      const { current_password, new_password, confirm_password } = values(passwordForm);
      if (new_password !== confirm_password) {
        showError(passwordForm, { message: "The two new passwords differ." }, "confirm_password");
        return;
      }
      await api("POST", "/api/v1/auth/password", { body: { current_password, new_password } });
      passwordForm.reset();
      passwordForm.querySelector(".form-ok").textContent =
        "Password changed. Every other session has been signed out.";
    });
  });

  defaultModel();
  apiKeys();

  const everywhere = document.getElementById("sign-out-everywhere");
  everywhere.addEventListener("click", async () => {
    if (!confirm("Sign out on every device, this one included?")) return;
    everywhere.disabled = true;
    const errorNode = document.getElementById("everywhere-error");
    errorNode.textContent = "";
    try {
      await api("POST", "/api/v1/auth/logout-all");
      signedOut("everywhere");
    } catch (error) {
      errorNode.textContent = error.message;
      everywhere.disabled = false;
    }
  });
}

/** The default model of new conversations (GET/PATCH /api/v1/chat/preferences). */
async function defaultModel() {
  const form = document.getElementById("default-model-form");
  const select = form.elements.namedItem("default_model");
  let catalogue;
  let preferences;
  try {
    [catalogue, preferences] = await Promise.all([
      api("GET", "/api/v1/chat/models"),
      api("GET", "/api/v1/chat/preferences"),
    ]);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // A server without model choice: nothing to choose.
    document.getElementById("default-model-section").hidden = true;
    return;
  }
  const named = (name) => {
    const model = catalogue.models.find((m) => m.name === name);
    return model && model.display_name ? model.display_name : name;
  };
  const chosen = preferences.default_model || "";
  select.replaceChildren(
    el("option", { value: "", text: catalogue.default ? `The system's default (${named(catalogue.default)})` : "The system's default" }),
    ...catalogue.models.map((m) => el("option", { value: m.name, text: m.display_name || m.name })),
  );
  if (chosen && !catalogue.models.some((m) => m.name === chosen)) {
    select.append(el("option", { value: chosen, text: `${chosen} (unavailable: the system's default answers)` }));
  }
  select.value = chosen;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit(form, form.querySelector("button[type=submit]"), async () => {
      await api("PATCH", "/api/v1/chat/preferences", { body: { default_model: select.value || null } });
      form.querySelector(".form-ok").textContent = "Saved.";
    });
  });
}

const KEYS = "/api/v1/auth/api-keys";
// The API's field names → this form's inputs (the profile has other "name" fields).
const KEY_FIELDS = { name: "api_key_name", expires_at: "api_key_expires" };

/** Personal API keys: create (the key shown once), list, revoke. */
async function apiKeys() {
  const form = document.getElementById("api-key-form");
  const body = document.querySelector("#api-keys-table tbody");
  const listError = document.getElementById("api-keys-error");
  const shown = document.getElementById("new-api-key");
  const value = document.getElementById("new-api-key-value");
  const copy = document.getElementById("new-api-key-copy");

  const hideKey = () => {
    // Out of the page as soon as it has been seen: it is not kept anywhere.
    value.value = "";
    shown.hidden = true;
  };

  const row = (key) => {
    const revoke = el("button", { type: "button", class: "button button-danger", text: "Revoke", dataset: { action: "revoke" } });
    revoke.addEventListener("click", async () => {
      if (!confirm(`Revoke the API key “${key.name}”? Whatever uses it stops working at once.`)) return;
      revoke.disabled = true;
      listError.textContent = "";
      try {
        await api("DELETE", `${KEYS}/${key.id}`);
        await load();
      } catch (error) {
        listError.textContent = error.message;
        revoke.disabled = false;
      }
    });
    const time = (iso, none) => (iso ? el("time", { datetime: iso, text: formatTime(iso) }) : none);
    return el(
      "tr",
      { dataset: { keyId: String(key.id) } },
      el("td", { text: key.name }),
      el("td", {}, el("code", { text: `${key.prefix}…` })),
      el("td", {}, time(key.created_at, "")),
      el("td", {}, time(key.last_used_at, "never")),
      el("td", {}, time(key.expires_at, "never")),
      el("td", { class: "actions" }, revoke),
    );
  };

  const load = async () => {
    let answer;
    try {
      answer = await api("GET", KEYS);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 404) document.getElementById("api-keys-section").hidden = true;
      else listError.textContent = error.message;
      return;
    }
    body.replaceChildren(...answer.api_keys.map(row));
    if (!answer.api_keys.length) body.append(el("tr", { class: "empty-row" }, el("td", { colspan: "6", text: "No API keys." })));
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    hideKey();
    const button = form.querySelector("button[type=submit]");
    clearErrors(form);
    button.disabled = true;
    (async () => {
      const name = form.elements.namedItem("api_key_name").value.trim();
      if (!name) {
        showError(form, { message: "Name the key: say what will use it." }, "api_key_name");
        return;
      }
      const expires = form.elements.namedItem("api_key_expires").value;
      const payload = { name };
      if (expires) payload.expires_at = `${expires}T23:59:59Z`;
      try {
        const answer = await api("POST", KEYS, { body: payload });
        form.reset();
        value.value = answer.key;
        shown.hidden = false;
        value.focus();
        value.select();
        await load();
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        const problem = errorMessage(error);
        showError(form, problem, KEY_FIELDS[error.field] || null);
      }
    })().finally(() => {
      button.disabled = false;
    });
  });
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(value.value);
      copy.textContent = "Copied";
    } catch {
      // No clipboard (an insecure context, a refusal): the key is selected for copying by hand.
      value.select();
      copy.textContent = "Press Ctrl+C";
    }
    setTimeout(() => {
      copy.textContent = "Copy";
    }, 1500);
  });
  document.getElementById("new-api-key-done").addEventListener("click", hideKey);
  await load();
}

const page = document.querySelector("[data-form=login]")
  ? loginPage
  : document.querySelector("[data-form=register]")
    ? registerPage
    : profilePage;
page();
