// The account pages: sign in, register, profile (display name, password, sign out everywhere).
import { ApiError, api, signedOut } from "./api.js";
import { clearErrors, limitMessage, notify, showAccount, showError, signedInUser } from "./ui.js";

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

const page = document.querySelector("[data-form=login]")
  ? loginPage
  : document.querySelector("[data-form=register]")
    ? registerPage
    : profilePage;
page();
