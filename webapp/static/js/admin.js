// The admin pages over the admin API: dashboard (totals, usage charts), users, audit log,
// webhooks with their deliveries, system status; the model catalogue's pages (providers,
// models) are in admin_catalogue.js, the API keys' in admin_keys.js. Each page renders what
// the API answers; a part whose route this server does not have (404) says so instead of
// failing the page.
import { ApiError, api } from "./api.js";
import { models, providers } from "./admin_catalogue.js";
import { apiKeys } from "./admin_keys.js";
import { ADMIN, badge, cell, label, notice, problem, unavailable } from "./admin_parts.js";
import { clearErrors, el, formatTime, notify, showError, signedInUser } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const main = document.getElementById("main");

// What each figure of the dashboard counts, as [label, explanation]: the totals (/stats, all
// time) and the period's figures (/usage) both have "messages", counted differently.
const FIGURES = {
  stats: {
    users: ["Users", "Accounts, active or disabled."],
    conversations: ["Conversations", "Stored now, all time."],
    messages: ["Messages stored", "Users' messages and the bot's replies in the stored conversations, all time."],
  },
  usage: {
    messages: ["Messages sent", "Sent by users in the period (the bot's replies are counted apart)."],
    replies: ["Replies", "Written by the bot in the period, whatever their outcome."],
    failed_replies: ["Failed replies", "Replies that ended in an error."],
    tokens_in: ["Prompt tokens", "Tokens sent to the model (history and message) for the replies."],
    tokens_out: ["Completion tokens", "Tokens the model wrote in the replies."],
    cache_hit_rate: ["Cache hit rate", "Share of replies answered from the reply cache."],
    fallback_rate: ["Fallback rate", "Share of replies written by the fallback model."],
    latency_p50_ms: ["Latency p50 (ms)", "Half of the model's replies took at most this long (cache hits left out)."],
    latency_p95_ms: ["Latency p95 (ms)", "95 % of the model's replies took at most this long (cache hits left out)."],
    quota_tokens: [
      "Quota tokens",
      "Prompt and completion tokens counted against the users' daily token quotas in the period; " +
        "unlike the figures above, they stay counted when a conversation is deleted.",
    ],
  },
};

function formatValue(value, key = "") {
  if (typeof value !== "number") return String(value);
  // Rates are fractions (0.25); everything else is a count or a measure.
  if (key.endsWith("_rate")) return `${Math.round(value * 1000) / 10} %`;
  return value.toLocaleString(undefined, { maximumFractionDigits: 1 });
}

/** Cards of figures, each with its label and what it counts (FIGURES[kind]). */
function cards(container, values, kind) {
  const known = FIGURES[kind] || {};
  container.replaceChildren(
    ...Object.entries(values)
      .filter(([, value]) => typeof value === "number")
      .map(([key, value]) => {
        const [name, explanation] = known[key] || [label(key), ""];
        return el(
          "div",
          { class: "card", dataset: { figure: key } },
          el("div", { class: "card-value", text: formatValue(value, key) }),
          el("div", { class: "card-label", text: name }),
          explanation ? el("div", { class: "card-hint", text: explanation }) : null,
        );
      }),
  );
}

// --- charts: small inline SVG, no library --------------------------------------------------------

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

/**
 * A chart of one or more series over the days: bars for the first, lines for the rest.
 * @param {string} title what it shows.
 * @param {Array<object>} days rows with a "day" field.
 * @param {Array<[string, string]>} series [field, label] pairs.
 */
function chart(title, days, series) {
  const width = 720;
  const height = 220;
  const pad = { left: 48, right: 12, top: 12, bottom: 28 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const max = Math.max(1, ...days.flatMap((d) => series.map(([field]) => d[field] || 0)));
  const x = (i) => pad.left + (days.length <= 1 ? plotW / 2 : (i * plotW) / (days.length - 1));
  const y = (v) => pad.top + plotH - (v / max) * plotH;
  const summary = series.map(([field, name]) => `${name}: ${days.reduce((s, d) => s + (d[field] || 0), 0)}`).join(", ");
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${title} (${summary})` });
  root.append(svg("title", {}, `${title}: ${summary}`));
  for (const fraction of [0, 0.5, 1]) {
    const value = Math.round(max * fraction);
    root.append(svg("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value) }));
    root.append(svg("text", { x: pad.left - 6, y: y(value) + 4, "text-anchor": "end" }, String(value)));
  }
  const [barField] = series[0];
  const barW = Math.max(2, (plotW / Math.max(days.length, 1)) * 0.6);
  days.forEach((d, i) => {
    const value = d[barField] || 0;
    root.append(svg("rect", { class: "bar", x: x(i) - barW / 2, y: y(value), width: barW, height: pad.top + plotH - y(value), opacity: 0.55 }, svg("title", {}, `${d.day}: ${value}`)));
  });
  for (const [field] of series.slice(1)) {
    const points = days.map((d, i) => `${x(i)},${y(d[field] || 0)}`).join(" ");
    root.append(svg("polyline", { class: "line", points }));
  }
  // At most 8 day labels, evenly spaced and counted back from the last day (always labelled),
  // so no two labels ever come closer than one step.
  const step = Math.max(1, Math.ceil(days.length / 8));
  days.forEach((d, i) => {
    if ((days.length - 1 - i) % step === 0) {
      root.append(svg("text", { x: x(i), y: height - 8, "text-anchor": "middle" }, d.day.slice(5)));
    }
  });
  const legend = el("p", { class: "hint", text: series.map(([, name], i) => `${i === 0 ? "bars" : "line"}: ${name}`).join(" · ") });
  return el("figure", {}, el("figcaption", { text: title }), root, legend);
}

function table(headers, rows) {
  return el(
    "div",
    { class: "table-wrap" },
    el("table", { class: "data" }, el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", text: h })))), el("tbody", {}, rows)),
  );
}

// --- pages ---------------------------------------------------------------------------------------

/** Every day of the report's range, the days without activity as zeros. */
function allDays(usage) {
  const byDay = new Map(usage.days.map((d) => [d.day, d]));
  const days = [];
  const until = new Date(`${usage.until}T00:00:00Z`);
  for (let day = new Date(`${usage.since}T00:00:00Z`); day <= until; day.setUTCDate(day.getUTCDate() + 1)) {
    const key = day.toISOString().slice(0, 10);
    days.push(byDay.get(key) || { day: key, messages: 0, replies: 0, tokens_in: 0, tokens_out: 0 });
  }
  return days;
}

async function dashboard() {
  const stats = document.getElementById("stats-cards");
  try {
    cards(stats, await api("GET", `${ADMIN}/stats`), "stats");
  } catch (error) {
    unavailable(stats, error);
  }
  const charts = document.getElementById("usage-charts");
  const select = document.getElementById("usage-days");
  const load = async () => {
    const since = new Date(Date.now() - (Number(select.value) - 1) * 86_400_000).toISOString().slice(0, 10);
    try {
      const usage = await api("GET", `${ADMIN}/usage?since=${since}`);
      const days = allDays(usage);
      const totals = el("div", { class: "cards", id: "usage-cards" });
      cards(totals, usage.totals, "usage");
      charts.replaceChildren(
        el("h3", { text: `In the period (${usage.since} to ${usage.until}, UTC days)` }),
        totals,
        chart("Messages and replies per day", days, [["messages", "messages"], ["replies", "replies"]]),
        chart("Tokens per day", days, [["tokens_out", "completion tokens"], ["tokens_in", "prompt tokens"]]),
        el("h3", { text: "Models" }),
        table(
          ["Model", "Replies", "Prompt tokens", "Completion tokens", "Cached", "Fallback", "Cost"],
          // Cost: a decimal string from the catalogue's prices; null where the model has none.
          usage.models.map((m) => el("tr", {}, cell(m.model || "—"), cell(formatValue(m.replies)), cell(formatValue(m.tokens_in)), cell(formatValue(m.tokens_out)), cell(formatValue(m.cached)), cell(formatValue(m.fallback)), cell(m.cost ?? "—"))),
        ),
        el("h3", { text: "Top users" }),
        table(
          ["User", "Details"],
          (usage.top_users || []).map((u) => el("tr", {}, cell(u.email || String(u.user_id)), cell(Object.entries(u).filter(([k]) => !["email", "user_id"].includes(k)).map(([k, v]) => `${label(k)}: ${formatValue(v, k)}`).join(" · ")))),
        ),
      );
    } catch (error) {
      unavailable(charts, error);
    }
  };
  select.addEventListener("change", load);
  await load();
}

async function users(me) {
  const body = document.querySelector("#users-table tbody");
  const more = document.getElementById("users-more");
  const form = document.getElementById("users-filter");
  let cursor = null;

  const act = async (user, action) => {
    notify(notice, "");
    const who = user.email;
    const calls = {
      disable: ["POST", `/users/${user.id}/disable`, `Disable ${who}? They are signed out everywhere at once.`],
      enable: ["POST", `/users/${user.id}/enable`, null],
      promote: ["PATCH", `/users/${user.id}`, `Make ${who} an admin?`, { role: "admin" }],
      demote: ["PATCH", `/users/${user.id}`, `Make ${who} a regular user?`, { role: "user" }],
      reset: ["POST", `/users/${user.id}/password`, `Set a new random password for ${who}? They are signed out everywhere.`, {}],
      delete: ["DELETE", `/users/${user.id}`, `Delete ${who} with all their conversations? This cannot be undone.`],
    };
    const [method, path, question, payload] = calls[action];
    if (question && !confirm(question)) return;
    try {
      const answer = await api(method, `${ADMIN}${path}`, { body: payload });
      if (action === "reset" && answer.password) {
        notify(notice, `New password for ${who} (shown once): ${answer.password}`, "info");
      } else if (action === "delete") {
        notify(notice, `Deleted ${who}.`, "info");
      }
      await load(false);
    } catch (error) {
      notify(notice, problem(error), "error");
    }
  };

  // A user's own daily token quota: null is the global one (LLM_DAILY_TOKEN_QUOTA), 0 none.
  const setQuota = async (user) => {
    notify(notice, "");
    const current = user.daily_token_quota == null ? "" : String(user.daily_token_quota);
    const answer = prompt(
      `Daily token quota of ${user.email}: tokens a UTC day, 0 for unlimited, empty for the global quota.`,
      current,
    );
    if (answer === null) return;
    const value = answer.trim() === "" ? null : Number(answer.trim());
    if (value !== null && !Number.isInteger(value)) {
      notify(notice, "The quota is a whole number of tokens (0: unlimited), or empty for the global quota.", "error");
      return;
    }
    try {
      await api("PATCH", `${ADMIN}/users/${user.id}`, { body: { daily_token_quota: value } });
      await load(false);
    } catch (error) {
      notify(notice, problem(error), "error");
    }
  };

  const quota = (user) => {
    if (!("daily_token_quota" in user)) return "—"; // a server without per-user quotas
    const q = user.daily_token_quota;
    const change = el("button", { type: "button", class: "link-button", text: "Change", dataset: { action: "quota" } });
    change.addEventListener("click", () => setQuota(user));
    return [el("span", { class: "quota", text: q == null ? "global" : q === 0 ? "unlimited" : formatValue(q) }), " ", change];
  };

  const row = (user) => {
    const buttons = [];
    const button = (action, text, danger = false) => {
      const b = el("button", { type: "button", class: `button${danger ? " button-danger" : ""}`, text, dataset: { action } });
      b.addEventListener("click", () => act(user, action));
      buttons.push(b);
    };
    const self = user.id === me.id;
    if (!self) button(user.is_active ? "disable" : "enable", user.is_active ? "Disable" : "Enable", user.is_active);
    if (!self) button(user.role === "admin" ? "demote" : "promote", user.role === "admin" ? "Make user" : "Make admin");
    button("reset", "Reset password");
    if (!self) button("delete", "Delete", true);
    return el(
      "tr",
      { dataset: { userId: String(user.id) } },
      cell(user.email),
      cell(user.display_name || ""),
      cell(user.role),
      cell(badge(user.is_active, "active", "disabled")),
      cell(formatTime(user.created_at)),
      cell(quota(user), { class: "nowrap" }),
      cell(buttons, { class: "actions" }),
    );
  };

  const load = async (append) => {
    const params = new URLSearchParams();
    const q = document.getElementById("users-query").value.trim();
    if (q) params.set("q", q);
    if (append && cursor) params.set("cursor", cursor);
    try {
      const answer = await api("GET", `${ADMIN}/users?${params}`);
      if (!append) body.replaceChildren();
      body.append(...answer.users.map(row));
      if (!body.children.length) {
        const text = q ? `No user matches “${q}”.` : "No users yet.";
        body.append(el("tr", { class: "empty-row" }, cell(text, { colspan: "7" })));
      }
      cursor = answer.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      notify(notice, problem(error), "error");
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(false);
  });
  more.addEventListener("click", () => load(true));
  await load(false);
}

/** The UTC day after a YYYY-MM-DD day (the API's "until" is exclusive, the form's "To" is not). */
function nextDay(day) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + 1);
  return date.toISOString().slice(0, 10);
}

async function audit() {
  const body = document.querySelector("#audit-table tbody");
  const more = document.getElementById("audit-more");
  const form = document.getElementById("audit-filter");
  let cursor = null;
  // The API's filters, from the form: only the fields that are filled in.
  const filters = () => {
    const params = new URLSearchParams();
    for (const name of ["action", "actor_id", "target_type", "target_id", "since", "until"]) {
      const value = form.elements.namedItem(name).value.trim();
      if (value) params.set(name, name === "until" ? nextDay(value) : value);
    }
    return params;
  };
  const load = async (append) => {
    clearErrors(form);
    const params = filters();
    if (append && cursor) params.set("cursor", cursor);
    try {
      const answer = await api("GET", `${ADMIN}/audit?${params}`);
      if (!append) body.replaceChildren();
      body.append(
        ...answer.events.map((event) =>
          el(
            "tr",
            {},
            cell(el("time", { datetime: event.created_at, text: formatTime(event.created_at) }), { class: "nowrap" }),
            cell(`${event.actor_email || event.actor_id || "system"}${event.source_ip ? ` (${event.source_ip})` : ""}`),
            cell(event.action),
            cell(event.target_type ? `${event.target_type} ${event.target_id ?? ""}` : ""),
            // Indented, and wrapped anywhere: a long value must not be cut off by the column.
            cell(el("pre", { class: "details", text: Object.keys(event.details || {}).length ? JSON.stringify(event.details, null, 2) : "" })),
          ),
        ),
      );
      if (!body.children.length) {
        const text = params.toString() ? "No event matches these filters." : "No events yet.";
        body.append(el("tr", { class: "empty-row" }, cell(text, { colspan: "5" })));
      }
      cursor = answer.next_cursor;
      more.hidden = !cursor;
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) showError(form, error);
      else notify(notice, problem(error), "error");
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load(false);
  });
  // After the reset has emptied the fields.
  form.addEventListener("reset", () => setTimeout(() => load(false)));
  more.addEventListener("click", () => load(true));
  await load(false);
}

async function webhooks() {
  const body = document.querySelector("#webhooks-table tbody");
  const form = document.getElementById("webhook-form");
  const deliveriesSection = document.getElementById("deliveries");
  const deliveries = document.querySelector("#deliveries-table tbody");

  const showDeliveries = async (hook) => {
    try {
      const answer = await api("GET", `${ADMIN}/webhooks/${hook.id}/deliveries`);
      deliveriesSection.hidden = false;
      document.getElementById("deliveries-heading").textContent = `Deliveries to ${hook.url}`;
      deliveries.replaceChildren(
        ...answer.deliveries.map((d) => {
          const redeliver = el("button", { type: "button", class: "button", text: "Redeliver" });
          redeliver.addEventListener("click", async () => {
            try {
              await api("POST", `${ADMIN}/webhooks/${hook.id}/deliveries/${d.id}/redeliver`);
              await showDeliveries(hook);
            } catch (error) {
              notify(notice, problem(error), "error");
            }
          });
          return el(
            "tr",
            {},
            cell(formatTime(d.created_at)),
            cell(d.event),
            cell(badge(d.status === "delivered" || d.status === "succeeded", d.status, d.status)),
            cell(String(d.attempts ?? "")),
            cell([el("span", { class: "pre-wrap", text: [d.last_status_code ? `HTTP ${d.last_status_code}` : "", d.last_error || ""].filter(Boolean).join(" · ") }), " ", redeliver]),
          );
        }),
      );
      if (!answer.deliveries.length) deliveries.append(el("tr", {}, cell("No deliveries yet.", { colspan: "5" })));
    } catch (error) {
      notify(notice, problem(error), "error");
    }
  };

  const action = (text, run, danger = false) => {
    const b = el("button", { type: "button", class: `button${danger ? " button-danger" : ""}`, text });
    b.addEventListener("click", async () => {
      notify(notice, "");
      try {
        await run();
      } catch (error) {
        notify(notice, problem(error), "error");
      }
    });
    return b;
  };

  const load = async () => {
    let answer;
    try {
      answer = await api("GET", `${ADMIN}/webhooks`);
    } catch (error) {
      notify(notice, problem(error), "error");
      form.hidden = error instanceof ApiError && error.status === 404;
      return;
    }
    body.replaceChildren(
      ...answer.webhooks.map((hook) =>
        el(
          "tr",
          {},
          cell([el("div", { text: hook.url }), hook.description ? el("div", { class: "hint", text: hook.description }) : null]),
          cell(hook.events.length ? hook.events.join(", ") : "all"),
          cell(badge(hook.active, "active", "paused")),
          cell(
            [
              action("Deliveries", () => showDeliveries(hook)),
              action("Send test", async () => {
                await api("POST", `${ADMIN}/webhooks/${hook.id}/test`);
                await showDeliveries(hook);
              }),
              action(hook.active ? "Pause" : "Resume", async () => {
                await api("PATCH", `${ADMIN}/webhooks/${hook.id}`, { body: { active: !hook.active } });
                await load();
              }),
              action(
                "Delete",
                async () => {
                  if (!confirm(`Delete the webhook to ${hook.url}?`)) return;
                  await api("DELETE", `${ADMIN}/webhooks/${hook.id}`);
                  deliveriesSection.hidden = true;
                  await load();
                },
                true,
              ),
            ],
            { class: "actions" },
          ),
        ),
      ),
    );
    if (!answer.webhooks.length) body.append(el("tr", {}, cell("No webhooks yet.", { colspan: "4" })));
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const url = form.elements.namedItem("url").value.trim();
    const events = [...form.querySelectorAll('input[name="events"]:checked')].map((box) => box.value);
    if (!events.length) {
      showError(form, { message: "Choose at least one event to send to this webhook." }, "events");
      return;
    }
    const payload = { url, events };
    try {
      await api("POST", `${ADMIN}/webhooks`, { body: payload });
      form.reset();
      form.querySelector(".form-ok").textContent = "Webhook added.";
      await load();
    } catch (error) {
      showError(form, error);
    }
  });
  await load();
}

async function status() {
  const container = document.getElementById("status-cards");
  const details = document.getElementById("status-details");
  try {
    const report = await api("GET", `${ADMIN}/status`);
    const parts = [
      ["Overall", report],
      ["Database", report.database],
      ["Redis", report.redis],
      ["Model", report.model],
      ...Object.entries(report.services || {}).map(([name, part]) => [`Service ${name}`, part]),
      // Each provider of the model catalogue: reachable or not, and how fast it answered.
      ...(report.providers || []).map((part) => [`Provider ${part.name}`, part]),
    ].filter(([, part]) => part);
    const measured = (part) =>
      [part.latency_ms != null ? `${part.latency_ms} ms` : "", part.error || ""].filter(Boolean).join(" · ");
    container.replaceChildren(
      ...parts.map(([name, part]) =>
        el(
          "div",
          { class: "card", dataset: { part: name } },
          el("div", { class: "card-label", text: name }),
          badge(part.status === "ok", part.status, part.status || "unknown"),
          measured(part) ? el("div", { class: "card-hint", text: measured(part) }) : null,
        ),
      ),
    );
    details.textContent = JSON.stringify(report, null, 2);
  } catch (error) {
    unavailable(container, error);
  }
}

const PAGES = { dashboard, users, audit, webhooks, providers, models, api_keys: apiKeys, status };

async function start() {
  const user = await signedInUser();
  if (!user) return;
  if (user.role !== "admin") {
    // Only the refusal: none of the page's (empty) controls, nor the admin navigation.
    for (const node of [...main.children]) {
      if (node !== notice && node.tagName !== "H1") node.remove();
    }
    document.querySelector(".admin-nav").remove();
    notify(notice, "These pages are for admins. Your account is not an admin.", "error");
    main.dataset.refused = "1";
    return;
  }
  await PAGES[main.dataset.adminPage](user);
  main.dataset.loaded = "1";
}

start();
