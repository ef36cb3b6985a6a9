// The model catalogue's admin pages: providers (with the models they offer upstream) and
// models (with a one-request test). The managed entries (from the deployment's settings) are
// listed read-only; a provider's API key is write-only: the API answers only whether it is set
// and its last four characters.
import { ApiError, api } from "./api.js";
import { ADMIN, badge, cell, notice, problem } from "./admin_parts.js";
import { clearErrors, el, notify, showError } from "./ui.js";

// A catalogue name the API accepts (webapp.models): what an upstream id becomes as a name.
const NAME_UNSAFE = /[^A-Za-z0-9._:/-]+/g;

function field(form, name) {
  return form.elements.namedItem(name);
}

function text(form, name) {
  return field(form, name).value.trim();
}

/** A number input's value: null when empty (the API's "not set"). */
function numberOrNull(form, name) {
  const value = text(form, name);
  return value === "" ? null : Number(value);
}

/** A button that runs `run`, disabled meanwhile; a failure is shown in the page's notice. */
function action(label, run, { danger = false, dataset = {} } = {}) {
  const button = el("button", { type: "button", class: `button${danger ? " button-danger" : ""}`, text: label, dataset });
  button.addEventListener("click", async () => {
    notify(notice, "");
    button.disabled = true;
    try {
      await run();
    } catch (error) {
      notify(notice, problem(error), "error");
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function managedBadge() {
  return el("span", { class: "badge", text: "managed · read-only", title: "From the deployment's settings" });
}

/** What the API says of a provider's key: "set ••••abcd" or "not set". */
function keyState(key) {
  if (!key || !key.set) return "not set";
  return key.last4 ? `set ••••${key.last4}` : "set";
}

function headerLines(headers) {
  return Object.entries(headers || {})
    .map(([name, value]) => `${name}: ${value}`)
    .join("\n");
}

/** The extra headers of the form's text ("Name: value" a line), or an error naming the field. */
function parseHeaders(source) {
  const headers = {};
  const lines = source.split("\n");
  for (const [index, line] of lines.entries()) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon <= 0) {
      throw invalid(`Write each header as “Name: value” (line ${index + 1}).`, "extra_headers");
    }
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

// --- the add/edit form both pages share ------------------------------------------------------

/**
 * The add/edit form of one kind of catalogue entry, over its admin routes (POST to add, PATCH
 * to change, DELETE), and the list it reloads after each change.
 * @param {object} spec
 * @param {string} spec.kind "provider" or "model": the form's ids (`${kind}-form`, -submit,
 *   -cancel, -form-heading) and the answers' key.
 * @param {string} spec.path the routes under the admin API, e.g. "/providers".
 * @param {function(object|null): void} spec.fill fills the form from an entry (null: a new one).
 * @param {function(object|null): object} spec.payload the request body (null: a new entry); it
 *   may throw an ApiError naming a field.
 * @param {function(): Promise<void>} spec.load reloads the list.
 */
function entryForm({ kind, path, fill, payload, load }) {
  const form = document.getElementById(`${kind}-form`);
  const heading = document.getElementById(`${kind}-form-heading`);
  const submit = document.getElementById(`${kind}-submit`);
  const cancel = document.getElementById(`${kind}-cancel`);
  let editing = null; // the entry the form edits (null: a new one)

  const reset = () => {
    editing = null;
    form.reset();
    clearErrors(form);
    heading.textContent = `Add a ${kind}`;
    submit.textContent = `Add ${kind}`;
    cancel.hidden = true;
    fill(null);
  };

  const edit = (entry) => {
    reset();
    editing = entry;
    fill(entry);
    heading.textContent = `Edit the ${kind} ${entry.name}`;
    submit.textContent = `Save ${kind}`;
    cancel.hidden = false;
    form.scrollIntoView({ block: "start" });
    field(form, "name").focus();
  };

  /** The Delete button of an entry: asks `question` first. */
  const deleteButton = (entry, question, after = () => {}) =>
    action(
      "Delete",
      async () => {
        if (!confirm(question)) return;
        await api("DELETE", `${ADMIN}${path}/${entry.id}`);
        if (editing && editing.id === entry.id) reset();
        after();
        notify(notice, `Deleted the ${kind} ${entry.name}.`, "info");
        await load();
      },
      { danger: true, dataset: { action: "delete" } },
    );

  cancel.addEventListener("click", reset);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const changed = editing;
    try {
      const body = payload(changed);
      const answer = changed
        ? await api("PATCH", `${ADMIN}${path}/${changed.id}`, { body })
        : await api("POST", `${ADMIN}${path}`, { body });
      reset();
      form.querySelector(".form-ok").textContent = `${changed ? "Saved" : "Added"} the ${kind} ${answer[kind].name}.`;
      await load();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      showError(form, error);
    }
  });
  return { form, edit, deleteButton, editing: () => editing };
}

/** An error of the form's own checks, in the API's shape (shown by the field it names). */
function invalid(message, fieldName) {
  return new ApiError(400, { error: { code: "validation_error", message, field: fieldName } });
}

// --- providers -----------------------------------------------------------------------------------

export async function providers() {
  const body = document.querySelector("#providers-table tbody");
  const keyNote = document.getElementById("provider-api-key-state");
  const clearChoice = document.getElementById("provider-api-key-clear-choice");
  const clearKey = document.getElementById("provider-api-key-clear");
  const discoverSection = document.getElementById("discover");
  const discovered = document.querySelector("#discover-table tbody");
  let headersShown = ""; // the headers as the form showed them: unchanged, they are not sent

  const fill = (provider) => {
    headersShown = provider ? headerLines(provider.extra_headers) : "";
    keyNote.textContent = `(${keyState(provider && provider.api_key)})`;
    clearChoice.hidden = !(provider && provider.api_key && provider.api_key.set);
    if (!provider) return;
    field(form, "name").value = provider.name;
    field(form, "base_url").value = provider.base_url || "";
    field(form, "timeout_seconds").value = provider.timeout_seconds ?? "";
    field(form, "extra_headers").value = headersShown;
  };

  const payload = (provider) => {
    const values = { name: text(form, "name"), base_url: text(form, "base_url") };
    const timeout = numberOrNull(form, "timeout_seconds");
    if (timeout !== null) values.timeout_seconds = timeout;
    const key = field(form, "api_key").value.trim();
    // Write only: an empty field keeps the key; "" (the box ticked) removes it.
    if (clearKey.checked) values.api_key = "";
    else if (key) values.api_key = key;
    const headers = field(form, "extra_headers").value;
    // Shown masked (***): sent back only when rewritten, or they would become "***".
    if (!provider || headers.trim() !== headersShown.trim()) values.extra_headers = parseHeaders(headers);
    return values;
  };

  const discover = async (provider) => {
    const answer = await api("POST", `${ADMIN}/providers/${provider.id}/discover`);
    discoverSection.hidden = false;
    document.getElementById("discover-heading").textContent = `Models of ${provider.name}`;
    discovered.replaceChildren(
      ...answer.models.map((model) => {
        const params = new URLSearchParams({ provider: provider.name, upstream_id: model.id });
        const add = model.known
          ? el("span", { class: "hint", text: "already added" })
          : el("a", { class: "button", href: `/admin/models?${params}`, text: "Add", dataset: { upstreamId: model.id } });
        return el("tr", { dataset: { upstreamId: model.id } }, cell(model.id), cell(model.known ? "yes" : "no"), cell(add, { class: "actions" }));
      }),
    );
    if (!answer.models.length) discovered.append(el("tr", { class: "empty-row" }, cell("The provider lists no models.", { colspan: "3" })));
    discoverSection.scrollIntoView({ block: "start" });
  };

  const row = (provider) => {
    const actions = provider.managed
      ? [managedBadge()]
      : [
          action("Discover models", () => discover(provider), { dataset: { action: "discover" } }),
          action("Edit", async () => editor.edit(provider), { dataset: { action: "edit" } }),
          editor.deleteButton(
            provider,
            `Delete the provider ${provider.name} and all its models? Conversations using them move to the default model.`,
            () => {
              discoverSection.hidden = true;
            },
          ),
        ];
    const headers = Object.keys(provider.extra_headers || {});
    return el(
      "tr",
      { dataset: { provider: provider.name, managed: provider.managed ? "1" : null } },
      cell([el("div", { text: provider.name }), el("div", { class: "hint", text: provider.kind })]),
      cell(provider.base_url || "—", { class: "wrap-anywhere" }),
      cell(keyState(provider.api_key), { class: "nowrap", dataset: { apiKey: "" } }),
      cell(provider.timeout_seconds == null ? "—" : `${provider.timeout_seconds} s`, { class: "nowrap" }),
      cell(headers.length ? headers.join(", ") : "—"),
      cell(actions, { class: "actions" }),
    );
  };

  const load = async () => {
    let answer;
    try {
      answer = await api("GET", `${ADMIN}/providers`);
    } catch (error) {
      notify(notice, problem(error), "error");
      return;
    }
    body.replaceChildren(...answer.providers.map(row));
    if (!answer.providers.length) body.append(el("tr", { class: "empty-row" }, cell("No providers yet.", { colspan: "6" })));
  };

  const editor = entryForm({ kind: "provider", path: "/providers", fill, payload, load });
  const { form } = editor;
  await load();
}

// --- models --------------------------------------------------------------------------------------

function prices(model) {
  if (model.price_input_per_mtok == null && model.price_output_per_mtok == null) return "—";
  return `in ${model.price_input_per_mtok ?? "—"} · out ${model.price_output_per_mtok ?? "—"}`;
}

// The model form's fields that are the model object's own, as they are (text and numbers).
const MODEL_FIELDS = ["name", "upstream_id", "display_name", "description", "context_window", "max_output_tokens", "default_temperature", "price_input_per_mtok", "price_output_per_mtok"];

export async function models() {
  const body = document.querySelector("#models-table tbody");
  const providerSelect = document.getElementById("model-provider");
  const fallbackSelect = document.getElementById("model-fallback");
  const testResult = document.getElementById("model-test-result");
  let catalogue = [];
  let provider = ""; // the provider last chosen: the next new model's too

  const fillProviders = (list) => {
    // Models are added to the admins' providers: the managed ones have theirs from the settings.
    const stored = list.filter((entry) => !entry.managed);
    providerSelect.replaceChildren(...stored.map((entry) => el("option", { value: entry.name, text: entry.name })));
    if (!stored.length) {
      providerSelect.append(el("option", { value: "", text: "No provider yet: add one under Providers", disabled: true, selected: true }));
    }
  };

  const fillFallbacks = () => {
    const current = fallbackSelect.value;
    const editing = editor.editing();
    fallbackSelect.replaceChildren(
      el("option", { value: "", text: "None" }),
      // A fallback is a stored model (a managed one is reached through the settings' own).
      ...catalogue
        .filter((model) => !model.managed && (!editing || model.name !== editing.name))
        .map((model) => el("option", { value: model.name, text: model.display_name ? `${model.display_name} (${model.name})` : model.name })),
    );
    fallbackSelect.value = current;
    if (fallbackSelect.value !== current) fallbackSelect.value = "";
  };

  const fill = (model) => {
    fillFallbacks();
    if (!model) {
      if (provider) providerSelect.value = provider;
      return;
    }
    providerSelect.value = model.provider;
    for (const name of MODEL_FIELDS) field(form, name).value = model[name] ?? "";
    fallbackSelect.value = model.fallback || "";
    for (const box of form.querySelectorAll('input[name="allowed_roles"]')) box.checked = (model.allowed_roles || []).includes(box.value);
    field(form, "enabled").checked = Boolean(model.enabled);
    field(form, "is_default").checked = Boolean(model.is_default);
  };

  const payload = (model) => {
    const optionalText = (name) => text(form, name) || null;
    provider = providerSelect.value;
    const values = {
      provider,
      name: text(form, "name"),
      upstream_id: text(form, "upstream_id"),
      display_name: optionalText("display_name"),
      description: optionalText("description"),
      context_window: numberOrNull(form, "context_window"),
      max_output_tokens: numberOrNull(form, "max_output_tokens"),
      default_temperature: numberOrNull(form, "default_temperature"),
      // Decimal strings, as the API answers them: no rounding through a float.
      price_input_per_mtok: optionalText("price_input_per_mtok"),
      price_output_per_mtok: optionalText("price_output_per_mtok"),
      fallback: fallbackSelect.value || null,
      allowed_roles: [...form.querySelectorAll('input[name="allowed_roles"]:checked')].map((box) => box.value),
      enabled: field(form, "enabled").checked,
      is_default: field(form, "is_default").checked,
    };
    if (!values.allowed_roles.length) throw invalid("Choose at least one role that may use this model.", "allowed_roles");
    if (!model) {
      // A new model: what is not filled in is left to the API's defaults.
      for (const [key, value] of Object.entries(values)) if (value === null) delete values[key];
    }
    return values;
  };

  const test = async (model) => {
    notify(testResult, `Testing ${model.name}…`, "info");
    testResult.dataset.model = model.name;
    delete testResult.dataset.ok;
    let result;
    try {
      result = await api("POST", `${ADMIN}/models/${model.id}/test`);
    } catch (error) {
      notify(testResult, `${model.name}: ${problem(error)}`, "error");
      testResult.dataset.ok = "false";
      return;
    }
    testResult.dataset.ok = String(Boolean(result.ok));
    if (result.ok) {
      notify(testResult, `${model.name} answered in ${result.latency_ms} ms: “${result.reply}”`, "info");
    } else {
      notify(testResult, `${model.name} failed after ${result.latency_ms} ms: ${result.error || "no answer"}`, "error");
    }
  };

  const row = (model) => {
    const actions = model.managed
      ? [managedBadge()]
      : [
          action("Test", () => test(model), { dataset: { action: "test" } }),
          action("Edit", async () => editor.edit(model), { dataset: { action: "edit" } }),
          editor.deleteButton(model, `Delete the model ${model.name}? Conversations using it move to the default model.`),
        ];
    return el(
      "tr",
      { dataset: { model: model.name, managed: model.managed ? "1" : null } },
      cell([
        el("div", { text: model.name }),
        model.display_name && model.display_name !== model.name ? el("div", { class: "hint", text: model.display_name }) : null,
        model.is_default ? el("span", { class: "badge badge-ok", text: "default" }) : null,
      ]),
      cell(model.provider),
      cell(model.upstream_id, { class: "wrap-anywhere" }),
      cell(badge(model.enabled, "enabled", "disabled")),
      cell((model.allowed_roles || []).join(", ")),
      cell(model.fallback || "—"),
      cell(prices(model), { class: "nowrap" }),
      cell(actions, { class: "actions" }),
    );
  };

  const load = async () => {
    let answer;
    try {
      answer = await api("GET", `${ADMIN}/models`);
    } catch (error) {
      notify(notice, problem(error), "error");
      return;
    }
    catalogue = answer.models;
    body.replaceChildren(...catalogue.map(row));
    if (!catalogue.length) body.append(el("tr", { class: "empty-row" }, cell("No models yet.", { colspan: "8" })));
    fillFallbacks();
  };

  /** A model to add from a provider's list (the "Add" of a discovered model). */
  const prefill = () => {
    const params = new URLSearchParams(location.search);
    const upstream = params.get("upstream_id");
    if (!upstream) return;
    if (params.get("provider")) providerSelect.value = params.get("provider");
    field(form, "upstream_id").value = upstream;
    field(form, "name").value = upstream.replace(NAME_UNSAFE, "-").replace(/^[^A-Za-z0-9]+/, "").slice(0, 100);
    field(form, "display_name").value = upstream;
    form.scrollIntoView({ block: "start" });
    field(form, "name").focus();
  };

  const editor = entryForm({ kind: "model", path: "/models", fill, payload, load });
  const { form } = editor;
  try {
    fillProviders((await api("GET", `${ADMIN}/providers`)).providers);
  } catch (error) {
    notify(notice, problem(error), "error");
  }
  await load();
  prefill();
}
