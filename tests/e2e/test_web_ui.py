"""The web UI in headless Chromium against the deployed system (see conftest.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec

from tests.e2e.conftest import MODEL, PASSWORD, Browser, Site
from tests.fakes.openai_server import FakeOpenAIServer, reply_text
from tests.waiting import EVENT_TIMEOUT

TOKEN_COOKIES = ("access_token_cookie", "refresh_token_cookie")
JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def assert_no_token_readable(browser: Browser) -> None:
    """No token is readable from JavaScript: not in document.cookie, not in web storage."""
    cookies = browser.driver.execute_script("return document.cookie")
    for name in TOKEN_COOKIES:
        assert name not in cookies, f"{name} is readable from JavaScript"
    assert not JWT.search(cookies), f"a JWT is readable in document.cookie: {cookies!r}"
    # The double-submit CSRF token is readable by design; it is not a credential by itself.
    assert "csrf_access_token" in cookies
    storage = browser.storage()
    dumped = json.dumps(storage)
    assert not JWT.search(dumped), f"a JWT is in web storage: {storage}"
    for area in storage.values():
        for key in area:
            assert "token" not in key.lower(), f"web storage holds {key!r}: {storage}"
    assert storage["session"] == {}
    # The tokens are there, only out of the page's reach.
    by_name = {cookie["name"]: cookie for cookie in browser.driver.get_cookies()}
    access = by_name["access_token_cookie"]
    assert access["httpOnly"] is True
    assert access["secure"] is True
    assert access["sameSite"] == "Strict"


def test_register_sign_out_and_sign_in(browser: Browser, new_email: Callable[[str], str]) -> None:
    """Register (errors shown next to the field), land in the chat, sign out, sign in again."""
    email = new_email("e2e-register")
    browser.open("/account/register")
    browser.fill("#email", email)
    browser.fill("#password", "short")
    browser.find("#register-form button[type=submit]").click()
    error = browser.find("#password-error")
    assert "password" in error.text.lower()
    assert browser.find("#password").get_attribute("aria-invalid") == "true"
    browser.screenshot("register-error")

    browser.fill("#password", PASSWORD)
    browser.find("#register-form button[type=submit]").click()
    browser.wait(lambda d: browser.path() == "/")
    assert browser.find("#account-name").text in (email, email.split("@")[0])
    browser.screenshot("chat-empty")
    assert_no_token_readable(browser)

    browser.find("#sign-out").click()
    browser.wait_for_path("/account/login")
    assert "signed out" in browser.find("#page-notice").text
    # Signed out means signed out: the chat page sends this browser back to sign in.
    browser.open("/")
    browser.wait_for_path("/account/login")

    browser.fill("#email", email)
    browser.fill("#password", "not the password")
    browser.find("#login-form button[type=submit]").click()
    assert "password" in browser.form_error().lower()
    browser.screenshot("login-error")
    browser.sign_in(email)
    assert_no_token_readable(browser)


def test_reply_streams_token_by_token(browser: Browser, user: str, model: FakeOpenAIServer) -> None:
    """A reply appears while it is written, then shows which model answered."""
    tokens = 30
    model.configure(MODEL, tokens=tokens, token_delay=0.1)
    browser.sign_in(user)
    reply = browser.send("Tell me about foxes.")

    seen: list[str] = []

    def grows(_driver: object) -> bool:
        text = browser.reply_text(reply)
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        return reply.get_attribute("data-status") != "streaming"

    browser.wait(grows)
    final = browser.reply_text(reply)
    assert final == reply_text(MODEL, tokens)
    # Watched growing: several partial texts, each a prefix of the next.
    partial = [text for text in seen if text != final]
    assert len(partial) >= 3, seen
    assert all(final.startswith(text.rstrip("▍").rstrip()) for text in partial)
    assert reply.get_attribute("data-status") == "complete"
    assert MODEL in reply.find_element(By.CSS_SELECTOR, ".message-meta").text
    browser.screenshot("chat-reply")
    assert_no_token_readable(browser)

    # Regenerate replaces the reply with a new one.
    model.configure(MODEL, tokens=5, token_delay=0.0)
    reply.find_element(By.CSS_SELECTOR, ".regenerate").click()

    def regenerated(_driver: object) -> bool:
        replies = browser.all(".message-assistant")
        return (
            len(replies) == 1
            and replies[0].get_attribute("data-status") == "complete"
            and browser.reply_text(replies[0]) == reply_text(MODEL, 5)
        )

    browser.wait(regenerated)
    assert len(browser.all(".message-assistant")) == 1
    assert len(browser.all(".message-user")) == 1


def test_stop_a_reply(browser: Browser, user: str, model: FakeOpenAIServer) -> None:
    """Stop keeps what was written and ends the reply as stopped."""
    tokens = 300
    model.configure(MODEL, tokens=tokens, token_delay=0.1)
    browser.sign_in(user)
    reply = browser.send("Write a long story.")
    browser.wait(lambda d: len(browser.reply_text(reply).split()) >= 3)
    browser.find("#stop-button").click()
    browser.wait(lambda d: reply.get_attribute("data-status") == "stopped")
    text = browser.reply_text(reply)
    assert reply_text(MODEL, tokens).startswith(text)
    assert len(text) < len(reply_text(MODEL, tokens))
    assert "stopped" in reply.find_element(By.CSS_SELECTOR, ".message-meta").text
    assert not browser.find("#send-button").get_attribute("disabled")
    browser.screenshot("chat-stopped")


def test_reload_mid_reply_and_see_it_finish(
    browser: Browser, user: str, model: FakeOpenAIServer
) -> None:
    """A reply being written when the page reloads is followed again, to its exact end."""
    tokens = 60
    model.configure(MODEL, tokens=tokens, token_delay=0.1)
    browser.sign_in(user)
    reply = browser.send("Count slowly.")
    browser.wait(lambda d: len(browser.reply_text(reply).split()) >= 3)
    path = browser.path()
    assert path.startswith("/?c="), path
    browser.driver.refresh()
    assert browser.path() == path
    replies = browser.wait(lambda d: browser.all(".message-assistant"))
    assert replies[-1].get_attribute("data-status") == "streaming"
    finished = browser.wait_finished()
    assert finished.get_attribute("data-status") == "complete"
    # Every token exactly once: nothing lost, nothing repeated by the resume.
    assert browser.reply_text(finished) == reply_text(MODEL, tokens)


def test_rename_search_and_delete_a_conversation(
    browser: Browser, site: Site, user: str, model: FakeOpenAIServer
) -> None:
    """Rename shows in the sidebar and search finds it; delete removes it for good."""
    browser.sign_in(user)
    browser.send("First conversation")
    browser.wait_finished()
    conversation_id = browser.path().removeprefix("/?c=")

    browser.find("#rename-conversation").click()
    field = browser.find("#rename-input")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys("Holiday plans", Keys.ENTER)
    browser.wait(lambda d: browser.find("#conversation-title").text == "Holiday plans")
    link = f'.conversation-link[data-id="{conversation_id}"]'
    browser.wait(lambda d: "Holiday plans" in browser.find(link).text)

    browser.find("#new-conversation").click()
    browser.wait(lambda d: not browser.all(".message"))
    browser.send("Second conversation")
    browser.wait_finished()
    # The first exchange names the conversation after the first message.
    browser.wait(lambda d: browser.find("#conversation-title").text == "Second conversation")
    browser.fill("#conversation-search", "Holiday")
    browser.wait(lambda d: len(browser.all(".conversation-link")) == 1)
    assert browser.all(".conversation-link")[0].get_attribute("data-id") == conversation_id
    browser.screenshot("chat-sidebar-search")
    browser.find("#conversation-search").send_keys(Keys.CONTROL, "a", Keys.BACKSPACE)
    browser.wait(lambda d: len(browser.all(".conversation-link")) == 2)

    browser.find(link).click()
    browser.wait(lambda d: browser.find("#conversation-title").text == "Holiday plans")
    browser.find("#delete-conversation").click()
    alert = browser.wait(ec.alert_is_present())
    assert "Holiday plans" in alert.text
    alert.accept()
    browser.wait(lambda d: not browser.all(link))
    assert browser.path() == "/"
    browser.open(f"/?c={conversation_id}")
    assert "does not exist" in browser.find("#chat-notice").text


HOSTILE = [
    "<script>window.__xss = 1; document.title = 'XSS'</script>",
    "<img src=x onerror=\"window.__xss = 2; document.title = 'XSS'\">",
    '[click me](javascript:window.__xss=3) and <a href="javascript:window.__xss=4">link</a>',
    '<svg onload="window.__xss = 5"></svg> <iframe src="javascript:window.__xss=6"></iframe>',
    '**bold <b onmouseover="window.__xss=7">html</b>** `<script>window.__xss=8</script>`',
]

MARKDOWN_DOCUMENT = """# Title <script>window.__xss = 10</script>

Some **bold** and *italic* text with `<img src=x onerror="window.__xss=11">` code.

```html
</code></pre><script>window.__xss = 12</script>
<img src=x onerror="window.__xss = 13">
```

- item [bad](javascript:window.__xss=14)
- item [good](https://example.com/path)
- <details open ontoggle="window.__xss=15">x</details>

> quote <iframe srcdoc="<script>parent.__xss=16</script>"></iframe>

[data](data:text/html,<script>window.__xss=17</script>) <style>body{display:none}</style>
"""


def assert_nothing_ran(browser: Browser) -> None:
    """No payload ran, nor was blocked trying (which would mean it reached the DOM)."""
    browser.no_dialog()
    state = browser.driver.execute_script(
        "return {xss: window.__xss === undefined ? null : window.__xss, title: document.title,"
        " csp: window.__cspViolations || null}"
    )
    assert state["xss"] is None, f"a payload ran: window.__xss = {state['xss']}"
    # The payloads set the title to exactly "XSS" (the page's title may quote the payload).
    assert state["title"] != "XSS"
    assert state["csp"] == [], f"content tried to run and CSP blocked it: {state['csp']}"
    dangerous = browser.driver.execute_script(
        "const root = document.getElementById('messages') || document.body;"
        " const bad = [...root.querySelectorAll('script, img, iframe, svg, style, details, object,"
        " embed')].map((e) => e.outerHTML);"
        " for (const e of root.querySelectorAll('*')) {"
        "   for (const a of e.attributes) {"
        "     if (a.name.startsWith('on')) bad.push(e.outerHTML);"
        "     const safe = /^(https?:|mailto:|\\/)/.test(a.value);"
        "     if (a.name === 'href' && !safe) bad.push(e.outerHTML);"
        "   }"
        " }"
        " return bad;"
    )
    assert dangerous == [], f"message markup reached the DOM: {dangerous}"
    errors = [
        entry
        for entry in browser.read_console()
        if "Content Security Policy" in entry["message"] or "__xss" in entry["message"]
    ]
    assert errors == [], errors


def test_hostile_messages_are_shown_as_text(
    browser: Browser, user: str, model_server: FakeOpenAIServer | None
) -> None:
    """Script, event handlers, javascript: links and embedded HTML never run: they are text.

    The built-in offline model answers, quoting the message back, so each payload goes
    through the Markdown renderer too (with the test model server, it fails on purpose and
    the offline model answers as the fallback).
    """
    if model_server is not None:
        model_server.configure(MODEL, mode="error500")
    browser.sign_in(user)
    for payload in HOSTILE:
        reply = browser.send(payload)
        browser.wait_finished()
        user_message = browser.all(".message-user")[-1]
        # What the user typed is shown exactly as typed.
        assert user_message.find_element(By.CSS_SELECTOR, ".message-body").text == payload
        # The fallback's quote shows the same characters (whitespace collapsed).
        assert "offline" in reply.find_element(By.CSS_SELECTOR, ".message-meta").text
        assert "<" in browser.reply_text(reply) or "javascript:" in browser.reply_text(reply)
        assert_nothing_ran(browser)
    browser.screenshot("chat-hostile-messages")

    # A whole hostile Markdown document through the page's own renderer (multi-line constructs
    # the offline model's one-line quote cannot carry).
    shown = browser.driver.execute_async_script(
        "const [source, done] = arguments;"
        " import('/static/js/markdown.js').then(({renderMarkdown}) => {"
        "   const box = document.createElement('div');"
        "   box.className = 'message-body';"
        "   document.getElementById('messages').append(box);"
        "   box.append(renderMarkdown(source));"
        "   done({text: box.innerText, code: box.querySelector('pre code').textContent,"
        "         links: [...box.querySelectorAll('a')].map((a) => a.href)});"
        " }, (error) => done({error: String(error)}));",
        MARKDOWN_DOCUMENT,
    )
    assert "error" not in shown, shown
    assert "<script>window.__xss = 12</script>" in shown["code"]
    assert "<script>window.__xss = 10</script>" in shown["text"]
    assert 'ontoggle="window.__xss=15"' in shown["text"]
    assert shown["links"] == ["https://example.com/path"]
    browser.screenshot("markdown-rendering")
    assert_nothing_ran(browser)


def test_admin_disables_a_user_who_is_then_signed_out(
    browser_factory: Callable[[], Browser], site: Site, user: str
) -> None:
    """An admin disables a signed-in user in the admin pages; the user's page signs them out."""
    victim = browser_factory()
    victim.sign_in(user)

    admin = browser_factory()
    admin.sign_in(site.admin_email, site.admin_password)
    assert admin.find("#admin-link").is_displayed()
    admin.find("#admin-link").click()
    admin.wait_for_path("/admin/")
    admin.find('[data-admin-page="dashboard"][data-loaded]')
    assert admin.all("#stats-cards .card")
    # Usage over time as inline SVG charts, one bar per day of the period.
    charts = admin.all("#usage-charts svg.chart")
    assert len(charts) == 2
    assert len(charts[0].find_elements(By.CSS_SELECTOR, "rect.bar")) == 30
    admin.screenshot("admin-dashboard")

    admin.open("/admin/users")
    # The first list (every user) has loaded: the row found below is the search's, not one the
    # search's answer is about to replace.
    admin.find('[data-admin-page="users"][data-loaded]')
    admin.fill("#users-query", user)
    admin.find("#users-query").send_keys(Keys.ENTER)
    row = admin.wait(
        lambda d: next((r for r in admin.all("#users-table tbody tr") if user in r.text), None)
    )
    admin.screenshot("admin-users")
    row.find_element(By.CSS_SELECTOR, "button[data-action=disable]").click()
    alert = admin.wait(ec.alert_is_present())
    assert user in alert.text
    alert.accept()
    admin.wait(
        lambda d: any(
            user in r.text and "disabled" in r.text.lower()
            for r in admin.all("#users-table tbody tr")
        )
    )

    # The victim's next step finds the session gone and lands on the sign-in page.
    victim.find("#new-conversation").click()
    victim.wait_for_path("/account/login")
    assert "session has ended" in victim.find("#page-notice").text
    victim.fill("#email", user)
    victim.fill("#password", PASSWORD)
    victim.find("#login-form button[type=submit]").click()
    assert "disabled" in victim.form_error().lower()
    victim.screenshot("login-disabled")

    for page in ("audit", "webhooks", "status"):
        admin.open(f"/admin/{page}")
        admin.find(f'[data-admin-page="{page}"][data-loaded]')
        admin.screenshot(f"admin-{page}")
        if page == "audit":
            # The audit log shows who disabled whom.
            assert any(
                "admin.user_disabled" in row.text and site.admin_email in row.text
                for row in admin.all("#audit-table tbody tr")
            )
        if page == "status":
            assert admin.all("#status-cards .card .badge")
    admin.open("/account/profile")
    admin.find("#profile-email")
    admin.screenshot("profile")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_theme_toggle(browser: Browser, user: str, theme: str) -> None:
    """The toggle switches between the light and dark themes, and the choice is kept."""
    browser.sign_in(user)
    root = browser.driver.find_element(By.TAG_NAME, "html")
    if root.get_attribute("data-theme") != theme:
        browser.find("#theme-toggle").click()
    assert root.get_attribute("data-theme") == theme
    browser.driver.refresh()
    browser.find("#account-menu")
    root = browser.driver.find_element(By.TAG_NAME, "html")
    assert root.get_attribute("data-theme") == theme
    browser.screenshot(f"chat-{theme}")


def test_profile_change_password_and_sign_out_everywhere(
    browser_factory: Callable[[], Browser], user: str
) -> None:
    """The profile changes the password (errors by the field) and signs out every device."""
    other = browser_factory()
    other.sign_in(user)
    browser = browser_factory()
    browser.sign_in(user)
    browser.open("/account/profile")
    browser.wait(lambda d: browser.find("#profile-email").text == user)

    form = "#password-form"
    browser.fill("#current_password", "not the password")
    browser.fill("#new_password", "a new passphrase 2")
    browser.fill("#confirm_password", "a new passphrase 2")
    browser.find(f"{form} button[type=submit]").click()
    browser.wait(lambda d: "incorrect" in browser.find("#current_password-error").text)

    browser.fill("#current_password", PASSWORD)
    browser.fill("#confirm_password", "something else 3")
    browser.find(f"{form} button[type=submit]").click()
    browser.wait(lambda d: "differ" in browser.find("#confirm_password-error").text)

    browser.fill("#confirm_password", "a new passphrase 2")
    browser.find(f"{form} button[type=submit]").click()
    browser.wait(lambda d: "Password changed" in browser.find(f"{form} .form-ok").text)
    browser.screenshot("profile-password-changed")

    # The other browser's session ended with the password change; this one goes on.
    other.find("#new-conversation").click()
    other.wait_for_path("/account/login")
    browser.open("/")
    browser.find("#account-menu")

    browser.open("/account/profile")
    browser.find("#sign-out-everywhere").click()
    browser.wait(ec.alert_is_present()).accept()
    browser.wait_for_path("/account/login")
    assert "every device" in browser.find("#page-notice").text
    browser.open("/")
    browser.wait_for_path("/account/login")
    browser.sign_in(user, "a new passphrase 2")


def test_keyboard_only(browser: Browser, user: str, model: FakeOpenAIServer) -> None:
    """The first Tab reaches the skip link; Enter sends, Shift+Enter starts a new line."""
    browser.sign_in(user)
    # A page that focuses nothing by itself: the first Tab goes to the skip link.
    browser.open("/account/profile")
    browser.find("#profile-email")
    ActionChains(browser.driver).send_keys(Keys.TAB).perform()
    active = browser.driver.switch_to.active_element
    assert active.get_attribute("class") == "skip-link"
    browser.open("/")
    box = browser.find("#message-input")
    # The chat page puts the focus in the message box.
    browser.wait(lambda d: d.switch_to.active_element == box)
    box.send_keys("first line", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "second line")
    assert box.get_attribute("value") == "first line\nsecond line"
    box.send_keys(Keys.ENTER)
    reply = browser.wait_finished()
    assert browser.reply_text(reply) == reply_text(MODEL, 8)
    user_text = browser.all(".message-user")[-1].find_element(By.CSS_SELECTOR, ".message-body")
    assert user_text.text == "first line\nsecond line"


def test_narrow_screen(browser: Browser, user: str) -> None:
    """On a phone-sized screen the sidebar becomes a drawer behind a button."""
    browser.sign_in(user)
    browser.driver.set_window_size(390, 844)
    toggle = browser.find("#sidebar-toggle")
    browser.screenshot("chat-narrow")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    assert "sidebar-open" in browser.driver.find_element(By.TAG_NAME, "body").get_attribute("class")
    browser.wait(lambda d: browser.find("#new-conversation").rect["x"] >= 0)
    browser.screenshot("chat-narrow-sidebar")
    ActionChains(browser.driver).send_keys(Keys.ESCAPE).perform()
    assert toggle.get_attribute("aria-expanded") == "false"


def test_rate_limited_message(browser: Browser, user: str) -> None:
    """Over the API rate limit, sending says so in words, with the wait."""
    browser.sign_in(user)
    # Spend the user's request budget (RATE_LIMIT_REQUESTS per window) at a pace nginx's own
    # per-address limit lets through, until the API answers 429.
    # 400 paced requests: about 50 s on an idle machine; the bound is for a loaded one.
    browser.driver.set_script_timeout(400 * 0.12 + EVENT_TIMEOUT)
    status = browser.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        " (async () => {"
        "   for (let i = 0; i < 400; i++) {"
        "     const r = await fetch('/api/v1/auth/me');"
        "     if (r.status === 429) {"
        "       const body = await r.json().catch(() => ({}));"
        "       return done(body.error ? body.error.code : 'nginx');"
        "     }"
        "     await new Promise((resolve) => setTimeout(resolve, 120));"
        "   }"
        "   done('never limited');"
        " })();"
    )
    assert status == "rate_limited"
    browser.send_text("Am I limited?")
    notice = browser.find("#chat-notice")
    # The wait in words (test_web_ui_details.py checks the wording of each range).
    wait = r"(\d+ seconds?|about \d+ (minute|hour|day)s?)"
    assert re.search(rf"Too many requests: please wait {wait} and try again", notice.text), (
        notice.text
    )
    browser.screenshot("chat-rate-limited")
