// The admin page of personal API keys: every user's keys that are not revoked, by prefix (the
// key itself is never shown again after its creation), and revoking anyone's.
import { ApiError, api } from "./api.js";
import { ADMIN, cell, notice, problem } from "./admin_parts.js";
import { clearErrors, el, formatTime, notify, showError } from "./ui.js";

function when(iso, none) {
  return iso ? el("time", { datetime: iso, text: formatTime(iso) }) : none;
}

export async function apiKeys() {
  const body = document.querySelector("#admin-api-keys-table tbody");
  const form = document.getElementById("api-keys-filter");

  const row = (key) => {
    const revoke = el("button", { type: "button", class: "button button-danger", text: "Revoke", dataset: { action: "revoke" } });
    revoke.addEventListener("click", async () => {
      if (!confirm(`Revoke ${key.user_email}'s API key “${key.name}”? Whatever uses it stops working at once.`)) return;
      notify(notice, "");
      revoke.disabled = true;
      try {
        await api("DELETE", `${ADMIN}/api-keys/${key.id}`);
        notify(notice, `Revoked ${key.user_email}'s key “${key.name}”.`, "info");
        await load();
      } catch (error) {
        notify(notice, problem(error), "error");
        revoke.disabled = false;
      }
    });
    return el(
      "tr",
      { dataset: { keyId: String(key.id), userId: String(key.user_id) } },
      cell(key.user_email),
      cell(key.name),
      cell(el("code", { text: `${key.prefix}…` })),
      cell(when(key.created_at, ""), { class: "nowrap" }),
      cell(when(key.last_used_at, "never"), { class: "nowrap" }),
      cell(when(key.expires_at, "never"), { class: "nowrap" }),
      cell(revoke, { class: "actions" }),
    );
  };

  const load = async () => {
    clearErrors(form);
    const params = new URLSearchParams();
    const owner = form.elements.namedItem("user_id").value.trim();
    if (owner) params.set("user_id", owner);
    let answer;
    try {
      answer = await api("GET", `${ADMIN}/api-keys?${params}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) showError(form, error);
      else notify(notice, problem(error), "error");
      return;
    }
    body.replaceChildren(...answer.api_keys.map(row));
    if (!answer.api_keys.length) {
      const text = owner ? "This user has no API keys." : "No API keys.";
      body.append(el("tr", { class: "empty-row" }, cell(text, { colspan: "7" })));
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  await load();
}
