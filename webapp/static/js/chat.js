// The chat app: conversations in the sidebar, the messages of one, streamed replies; each
// conversation's model (the picker in its header) and settings (system prompt, temperature).
import { ApiError, api, requireUser } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { followReply } from "./sse.js";
import { clearErrors, el, formatTime, limitMessage, notify, showAccount, showError } from "./ui.js";

const CHAT = "/api/v1/chat";
const PAGE_SIZE = 30;
const SESSION_CHECK_MS = 60_000;
// How close to the bottom (px) still counts as "at the bottom": a reply being written is followed
// from there, and not once the user has scrolled further up to read.
const FOLLOW_SLACK_PX = 48;

const $ = (id) => document.getElementById(id);
const dom = {
  list: $("conversation-list"),
  empty: $("conversation-empty"),
  more: $("conversation-more"),
  search: $("conversation-search"),
  title: $("conversation-title"),
  renameForm: $("rename-form"),
  renameInput: $("rename-input"),
  renameError: $("rename-error"),
  messages: $("messages"),
  emptyState: $("empty-state"),
  notice: $("chat-notice"),
  composer: $("composer"),
  input: $("message-input"),
  send: $("send-button"),
  stop: $("stop-button"),
  sidebar: $("sidebar"),
  sidebarToggle: $("sidebar-toggle"),
  picker: $("model-picker"),
  pickerError: $("model-picker-error"),
  settingsToggle: $("settings-toggle"),
  settings: $("settings-form"),
  // What only an existing conversation has (a new one is made by its first message).
  conversationOnly: ["rename-conversation", "export-markdown", "export-json", "delete-conversation"].map($),
};

const state = {
  conversation: null, // {id, title, ...}
  cursor: null,
  query: "",
  reply: null, // the reply being followed: {id, controller, view}
  listRequest: 0,
  followBottom: true, // keep the newest text in view (false once the user scrolls up)
  models: null, // GET /chat/models: {models: [...], default: name}, null when not offered
  // The choices made before the first message, for the conversation it creates.
  draft: { model: null, system_prompt: null, temperature: null },
};

// --- errors and notices ------------------------------------------------------------------------

function describe(error) {
  if (!(error instanceof ApiError)) return "Something went wrong. Check your connection and try again.";
  if (error.status === 429) return limitMessage(error);
  if (error.status === 409) return "A reply is still being written in this conversation: wait for it or stop it.";
  return error.message;
}

function showProblem(error) {
  if (error && error.name === "AbortError") return;
  notify(dom.notice, describe(error), "error");
}

function clearNotice() {
  notify(dom.notice, "");
}

// --- sidebar -------------------------------------------------------------------------------------

function conversationItem(conversation) {
  const link = el(
    "a",
    {
      class: "conversation-link",
      href: `/?c=${conversation.id}`,
      dataset: { id: String(conversation.id) },
      "aria-current": state.conversation && state.conversation.id === conversation.id ? "page" : null,
    },
    el("span", { class: "conversation-link-title", text: conversation.title || "New conversation" }),
    el("time", { class: "conversation-link-time", datetime: conversation.updated_at, text: formatTime(conversation.updated_at) }),
  );
  link.addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    openConversation(conversation.id, { push: true });
    closeSidebar();
  });
  return el("li", { class: "conversation", dataset: { id: String(conversation.id) } }, link);
}

async function loadConversations({ append = false } = {}) {
  const request = ++state.listRequest;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.query) params.set("q", state.query);
  if (append && state.cursor) params.set("cursor", state.cursor);
  let body;
  try {
    body = await api("GET", `${CHAT}/conversations?${params}`);
  } catch (error) {
    showProblem(error);
    return;
  }
  if (request !== state.listRequest) return; // a newer search answered first
  if (!append) dom.list.replaceChildren();
  for (const conversation of body.conversations) dom.list.append(conversationItem(conversation));
  state.cursor = body.next_cursor;
  dom.more.hidden = !state.cursor;
  dom.empty.hidden = dom.list.children.length > 0;
  dom.empty.textContent = state.query ? "No conversation matches." : "No conversations yet.";
}

function markActive() {
  for (const link of dom.list.querySelectorAll(".conversation-link")) {
    const active = state.conversation && link.dataset.id === String(state.conversation.id);
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  dom.sidebarToggle.setAttribute("aria-expanded", "false");
}

// --- messages ------------------------------------------------------------------------------------

function decorateCodeBlock(pre, code) {
  const button = el("button", { type: "button", class: "copy-code", text: "Copy code" });
  button.addEventListener("click", () => copyText(code.textContent, button));
  pre.prepend(button);
}

async function copyText(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => {
    button.textContent = label;
  }, 1500);
}

/** A model's name for people: "Display name (name)", or the name alone. */
function modelLabel(name) {
  const model = state.models && state.models.models.find((m) => m.name === name);
  return model && model.display_name && model.display_name !== name ? `${model.display_name} (${name})` : name;
}

function metaText(message) {
  const parts = [];
  if (message.role === "assistant") {
    if (message.model) parts.push(modelLabel(message.model));
    if (message.cached) parts.push("cached");
    if (message.fallback) parts.push("fallback model");
    if (message.status === "stopped") parts.push("stopped");
    if (message.status === "failed") parts.push("failed");
    if (message.status === "streaming") parts.push("writing…");
  }
  parts.push(formatTime(message.created_at));
  return parts.join(" · ");
}

/** A message on screen; update() re-renders it from a (partial) message object. */
class MessageView {
  constructor(message) {
    this.message = { ...message };
    this.body = el("div", { class: "message-body" });
    this.meta = el("span", { class: "message-meta" });
    this.actions = el("div", { class: "message-actions" });
    this.node = el(
      "article",
      { class: `message message-${message.role}`, dataset: { id: String(message.id) } },
      el("h2", { class: "visually-hidden", text: message.role === "user" ? "You wrote" : "The bot replied" }),
      this.body,
      el("footer", { class: "message-footer" }, this.meta, this.actions),
    );
    this.pending = false;
    this.update(message);
  }

  update(changes) {
    Object.assign(this.message, changes);
    this.render();
    keepBottomInView();
  }

  render() {
    const message = this.message;
    this.node.dataset.status = message.status;
    if (message.role === "assistant") {
      this.body.replaceChildren(renderMarkdown(message.content || "", { codeBlock: decorateCodeBlock }));
      if (message.status === "streaming") this.body.append(el("span", { class: "cursor", "aria-hidden": "true" }));
    } else {
      // What the user typed is shown exactly as typed.
      this.body.replaceChildren(el("p", { class: "plain", text: message.content }));
    }
    this.meta.textContent = metaText(message);
    this.meta.dataset.model = message.model || "";
    this.renderActions();
  }

  appendText(text) {
    this.message.content = (this.message.content || "") + text;
    // One render per frame however fast tokens arrive.
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.update({});
    });
  }

  renderActions() {
    const message = this.message;
    const buttons = [];
    if (message.status !== "streaming" && message.content) {
      const copy = el("button", { type: "button", class: "link-button copy-message", text: "Copy" });
      copy.addEventListener("click", () => copyText(message.content, copy));
      buttons.push(copy);
    }
    if (message.role === "assistant" && message.status !== "streaming" && isLastMessage(this)) {
      const regenerate = el("button", { type: "button", class: "link-button regenerate", text: "Regenerate" });
      regenerate.addEventListener("click", () => regenerateReply());
      buttons.push(regenerate);
    }
    this.actions.replaceChildren(...buttons);
  }
}

let views = [];

// --- scrolling: follow the newest text unless the user scrolled up to read --------------------

function atBottom() {
  const box = dom.messages;
  return box.scrollHeight - box.scrollTop - box.clientHeight <= FOLLOW_SLACK_PX;
}

function scrollToBottom() {
  state.followBottom = true;
  dom.messages.scrollTop = dom.messages.scrollHeight;
}

/** After the messages grew: stay at the bottom if the user was there. */
function keepBottomInView() {
  if (state.followBottom) dom.messages.scrollTop = dom.messages.scrollHeight;
}

function isLastMessage(view) {
  return views.length > 0 && views[views.length - 1] === view;
}

function addView(message) {
  const view = new MessageView(message);
  const previous = views[views.length - 1];
  views.push(view);
  dom.emptyState.hidden = true;
  dom.messages.append(view.node);
  // Only the last message offers Regenerate: render both ends again now that this one is last.
  if (previous) previous.renderActions();
  view.renderActions();
  scrollToBottom();
  return view;
}

function removeView(view) {
  views = views.filter((v) => v !== view);
  view.node.remove();
}

function showEmpty() {
  views = [];
  dom.messages.replaceChildren(dom.emptyState);
  dom.emptyState.hidden = false;
}

// --- conversations -------------------------------------------------------------------------------

function withoutMessages(conversation) {
  const copy = { ...conversation };
  delete copy.messages;
  return copy;
}

function setConversation(conversation) {
  // A refresh of the same conversation (its new title, after a reply) leaves an open rename
  // form alone: the user is typing in it.
  const other = !state.conversation || !conversation || state.conversation.id !== conversation.id;
  state.conversation = conversation;
  // Without a conversation the header still offers the model and the settings: they apply to
  // the conversation the first message creates.
  for (const button of dom.conversationOnly) button.hidden = !conversation;
  if (other) {
    dom.renameForm.hidden = true;
    dom.title.hidden = !conversation;
    closeSettings();
  }
  showModel();
  if (conversation) {
    dom.title.textContent = conversation.title || "New conversation";
    document.title = `${conversation.title || "New conversation"} · Chat bot`;
  } else {
    document.title = "Chat · Chat bot";
  }
  markActive();
}

function setUrl(id, push) {
  const url = id ? `/?c=${id}` : "/";
  if (location.pathname + location.search === url) return;
  if (push) history.pushState({ c: id }, "", url);
  else history.replaceState({ c: id }, "", url);
}

async function openConversation(id, { push = false } = {}) {
  stopFollowing();
  clearNotice();
  let body;
  try {
    body = await api("GET", `${CHAT}/conversations/${id}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      setUrl(null, false);
      setConversation(null);
      showEmpty();
      notify(dom.notice, "That conversation does not exist (any more).", "info");
      return;
    }
    showProblem(error);
    return;
  }
  const { messages } = body.conversation;
  const conversation = withoutMessages(body.conversation);
  setUrl(conversation.id, push);
  setConversation(conversation);
  showEmpty();
  for (const message of messages) addView(message);
  const last = views[views.length - 1];
  if (last && last.message.role === "assistant" && last.message.status === "streaming") {
    // A reply still being written (the page was reloaded mid-reply): replay it from the start.
    last.update({ content: "" });
    follow(last.message.id, last);
  }
  setBusy(Boolean(state.reply));
  dom.input.focus();
}

async function createConversation() {
  const choices = Object.fromEntries(Object.entries(state.draft).filter(([, value]) => value !== null));
  const body = await api("POST", `${CHAT}/conversations`, { body: choices });
  state.draft = { model: null, system_prompt: null, temperature: null };
  setUrl(body.conversation.id, true);
  setConversation(body.conversation);
  showEmpty();
  await loadConversations();
  return body.conversation;
}

// --- replies -------------------------------------------------------------------------------------

function setBusy(busy) {
  dom.send.disabled = busy;
  dom.stop.hidden = !busy;
  dom.stop.disabled = false;
}

function stopFollowing() {
  if (state.reply) state.reply.controller.abort();
  state.reply = null;
  setBusy(false);
}

async function follow(replyId, view) {
  const controller = new AbortController();
  state.reply = { id: replyId, controller, view };
  setBusy(true);
  const conversationId = state.conversation && state.conversation.id;
  try {
    const last = await followReply(replyId, {
      signal: controller.signal,
      onEvent(event) {
        if (event.event === "token") view.appendText(event.data.text);
      },
    });
    if (last.event === "error") {
      view.update({ status: "failed" });
      notify(dom.notice, last.data.error ? last.data.error.message : "The reply failed.", "error");
    } else {
      view.update(last.data);
    }
  } catch (error) {
    if (error.name === "AbortError") return;
    showProblem(error);
  } finally {
    if (state.reply && state.reply.id === replyId) {
      state.reply = null;
      setBusy(false);
    }
  }
  // The first reply names the conversation: show the new title.
  if (state.conversation && state.conversation.id === conversationId) {
    refreshTitle(conversationId);
  }
}

async function refreshTitle(id) {
  try {
    const body = await api("GET", `${CHAT}/conversations/${id}`);
    if (state.conversation && state.conversation.id === id) {
      setConversation(withoutMessages(body.conversation));
    }
  } catch {
    // the list reload below shows what there is
  }
  await loadConversations();
}

async function startReply(path, body) {
  const answer = await api("POST", `${path}?wait=0`, { body });
  return answer;
}

/** Start a reply with `start` (which returns it) and follow it as it is generated. */
async function generate(start) {
  clearNotice();
  setBusy(true);
  try {
    const reply = await start();
    follow(reply.id, addView(reply));
  } catch (error) {
    setBusy(false);
    showProblem(error);
  }
}

function sendMessage(content) {
  return generate(async () => {
    const conversation = state.conversation || (await createConversation());
    const answer = await startReply(`${CHAT}/conversations/${conversation.id}/messages`, { content });
    dom.input.value = "";
    // The first message names the conversation: show it in the list.
    loadConversations();
    addView(answer.message);
    return answer.reply;
  });
}

function regenerateReply() {
  if (!state.conversation || state.reply) return;
  return generate(async () => {
    const answer = await startReply(`${CHAT}/conversations/${state.conversation.id}/regenerate`, {});
    const last = views[views.length - 1];
    if (last && last.message.role === "assistant") removeView(last);
    return answer.reply;
  });
}

async function stopReply() {
  if (!state.reply) return;
  dom.stop.disabled = true;
  try {
    await api("POST", `${CHAT}/replies/${state.reply.id}/stop`);
    // The stream ends with a "stopped" event, which finishes the view.
  } catch (error) {
    dom.stop.disabled = false;
    showProblem(error);
  }
}

// --- conversation actions --------------------------------------------------------------------

function startRename() {
  if (!state.conversation) return;
  dom.renameInput.value = state.conversation.title || "";
  dom.renameError.textContent = "";
  dom.title.hidden = true;
  dom.renameForm.hidden = false;
  dom.renameInput.focus();
  dom.renameInput.select();
}

function endRename() {
  dom.renameForm.hidden = true;
  dom.title.hidden = false;
  $("rename-conversation").focus();
}

async function saveRename(event) {
  event.preventDefault();
  const title = dom.renameInput.value.trim();
  if (!title) {
    dom.renameError.textContent = "The title cannot be empty.";
    return;
  }
  try {
    const body = await api("PATCH", `${CHAT}/conversations/${state.conversation.id}`, { body: { title } });
    setConversation(body.conversation);
    endRename();
    await loadConversations();
  } catch (error) {
    dom.renameError.textContent = describe(error);
    dom.renameInput.focus();
  }
}

async function deleteConversation() {
  if (!state.conversation) return;
  const title = state.conversation.title || "this conversation";
  if (!confirm(`Delete “${title}” and all its messages? This cannot be undone.`)) return;
  try {
    await api("DELETE", `${CHAT}/conversations/${state.conversation.id}`);
  } catch (error) {
    showProblem(error);
    return;
  }
  stopFollowing();
  setUrl(null, true);
  setConversation(null);
  showEmpty();
  await loadConversations();
  notify(dom.notice, `Deleted “${title}”.`, "info");
}

async function exportConversation(format) {
  if (!state.conversation) return;
  try {
    const response = await api("GET", `${CHAT}/conversations/${state.conversation.id}/export?format=${format}`, {
      raw: true,
      headers: { Accept: "*/*" },
    });
    const blob = await response.blob();
    const disposition = response.headers.get("Content-Disposition") || "";
    const match = /filename="([^"]+)"/.exec(disposition);
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: match ? match[1] : `conversation.${format}` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    showProblem(error);
  }
}

// --- model and settings ------------------------------------------------------------------------

/** The model and settings of the open conversation, or those chosen for the next one. */
function currentChoices() {
  return state.conversation || state.draft;
}

async function loadModels() {
  try {
    const [models, preferences] = await Promise.all([
      api("GET", `${CHAT}/models`),
      api("GET", `${CHAT}/preferences`),
    ]);
    state.models = { ...models, preferred: preferences.default_model };
  } catch (error) {
    // A server without model choice: no picker, the conversations work as before.
    if (!(error instanceof ApiError) || error.status === 401) throw error;
    state.models = null;
  }
  showModel();
}

/** The model a conversation that chooses none answers with: the user's default, else the system's. */
function defaultModel() {
  const { models, preferred } = state.models;
  return preferred && models.some((m) => m.name === preferred) ? preferred : state.models.default;
}

/** Show the conversation's model in the picker (null: the default, whatever it is now). */
function showModel() {
  const choice = dom.picker.parentElement;
  choice.hidden = !state.models;
  if (!state.models) return;
  const chosen = currentChoices().model || "";
  const { models } = state.models;
  // Removed, disabled or not for this role: the default answers; the picker says so.
  const unavailable = chosen && !models.some((m) => m.name === chosen) ? chosen : "";
  // The options are made again only when they change: a conversation refreshed (its title
  // after a reply) must not replace them under the user's pointer.
  const key = `${defaultModel()}\n${unavailable}`;
  if (dom.picker.dataset.options !== key) {
    dom.picker.replaceChildren(
      el("option", { value: "", text: defaultModel() ? `Default (${modelLabel(defaultModel())})` : "Default" }),
      ...models.map((m) => el("option", { value: m.name, text: m.display_name || m.name, title: m.description || null })),
      unavailable ? el("option", { value: unavailable, text: `${unavailable} (unavailable: the default answers)` }) : null,
    );
    dom.picker.dataset.options = key;
  }
  dom.picker.value = chosen;
  dom.pickerError.textContent = "";
}

async function chooseModel() {
  const model = dom.picker.value || null;
  dom.pickerError.textContent = "";
  if (!state.conversation) {
    state.draft.model = model;
    return;
  }
  dom.picker.disabled = true;
  try {
    const body = await api("PATCH", `${CHAT}/conversations/${state.conversation.id}`, { body: { model } });
    setConversation(withoutMessages(body.conversation));
  } catch (error) {
    showModel();
    dom.pickerError.textContent = describe(error);
  } finally {
    dom.picker.disabled = false;
  }
}

function openSettings() {
  const { system_prompt: prompt, temperature } = currentChoices();
  clearErrors(dom.settings);
  dom.settings.elements.namedItem("system_prompt").value = prompt || "";
  dom.settings.elements.namedItem("temperature").value = temperature ?? "";
  dom.settings.hidden = false;
  dom.settingsToggle.setAttribute("aria-expanded", "true");
  dom.settings.elements.namedItem("system_prompt").focus();
}

function closeSettings() {
  dom.settings.hidden = true;
  dom.settingsToggle.setAttribute("aria-expanded", "false");
}

async function saveSettings(event) {
  event.preventDefault();
  const form = dom.settings;
  clearErrors(form);
  const temperature = form.elements.namedItem("temperature").value.trim();
  const changes = {
    system_prompt: form.elements.namedItem("system_prompt").value.trim() || null,
    temperature: temperature === "" ? null : Number(temperature),
  };
  if (!state.conversation) {
    Object.assign(state.draft, changes);
    form.querySelector(".form-ok").textContent = "Saved: they apply to the conversation your next message starts.";
    return;
  }
  try {
    const body = await api("PATCH", `${CHAT}/conversations/${state.conversation.id}`, { body: changes });
    setConversation(withoutMessages(body.conversation));
    form.querySelector(".form-ok").textContent = "Saved.";
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    showError(form, error.status === 400 ? error : { ...error, message: describe(error), field: null });
  }
}

// --- wiring --------------------------------------------------------------------------------------

function wire() {
  dom.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const content = dom.input.value.trim();
    if (!content || dom.send.disabled) return;
    sendMessage(content);
  });
  dom.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      dom.composer.requestSubmit();
    }
  });
  dom.stop.addEventListener("click", stopReply);
  $("new-conversation").addEventListener("click", async () => {
    stopFollowing();
    clearNotice();
    try {
      await createConversation();
      closeSidebar();
      dom.input.focus();
    } catch (error) {
      showProblem(error);
    }
  });
  let searchTimer = null;
  dom.search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.query = dom.search.value.trim();
      loadConversations();
    }, 250);
  });
  dom.more.addEventListener("click", () => loadConversations({ append: true }));
  // Our own scrolling to the bottom fires this too, and leaves following on.
  dom.messages.addEventListener("scroll", () => {
    state.followBottom = atBottom();
  });
  $("rename-conversation").addEventListener("click", startRename);
  dom.renameForm.addEventListener("submit", saveRename);
  $("rename-cancel").addEventListener("click", endRename);
  dom.renameInput.addEventListener("keydown", (event) => {
    if (event.key === "Escape") endRename();
  });
  $("delete-conversation").addEventListener("click", deleteConversation);
  dom.picker.addEventListener("change", chooseModel);
  dom.settingsToggle.addEventListener("click", () => (dom.settings.hidden ? openSettings() : closeSettings()));
  dom.settings.addEventListener("submit", saveSettings);
  $("settings-close").addEventListener("click", () => {
    closeSettings();
    dom.settingsToggle.focus();
  });
  $("export-markdown").addEventListener("click", () => exportConversation("md"));
  $("export-json").addEventListener("click", () => exportConversation("json"));
  dom.sidebarToggle.addEventListener("click", () => {
    const open = document.body.classList.toggle("sidebar-open");
    dom.sidebarToggle.setAttribute("aria-expanded", String(open));
    if (open) dom.search.focus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("sidebar-open")) closeSidebar();
  });
  window.addEventListener("popstate", () => {
    const id = Number(new URLSearchParams(location.search).get("c"));
    if (id) openConversation(id);
    else {
      stopFollowing();
      setConversation(null);
      showEmpty();
    }
  });
  // A disabled account or a session ended elsewhere: leave as soon as the page is looked at.
  const checkSession = () => api("GET", "/api/v1/auth/me").catch(() => {});
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") checkSession();
  });
  setInterval(checkSession, SESSION_CHECK_MS);
}

async function main() {
  let user;
  try {
    user = await requireUser();
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) showProblem(error);
    return;
  }
  showAccount(user);
  wire();
  const id = Number(new URLSearchParams(location.search).get("c"));
  try {
    await loadModels();
  } catch (error) {
    showProblem(error);
  }
  setConversation(null);
  await loadConversations();
  if (id) await openConversation(id);
  else dom.input.focus();
}

main();
