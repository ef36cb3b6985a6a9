"""The model catalogue, the model choice and the API keys in the web UI (issue 14), in headless
Chromium against the deployed system (see conftest.py).

The provider an admin adds here is a second entry for the test model server the suite runs
(the deployment's own, managed provider ``environment`` points at it too); its names carry a
random suffix, so runs against the same host never collide.

The file's name sorts before test_web_ui.py on purpose: that file ends with a test that spends
the controller address's request budget (nginx's per-address limit), and these tests, which make
many requests, were refused (429) when they came right after it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from tests.e2e.conftest import MODEL, Browser, Site
from tests.fakes.openai_server import FakeOpenAIServer, reply_text

SYSTEM_PROMPT = "Answer in one short sentence."


def row_of(browser: Browser, table: str, attribute: str, value: str) -> str:
    """Return the selector of the table row whose ``data-<attribute>`` is ``value``."""
    return f'#{table} tbody tr[data-{attribute}="{value}"]'


def set_value(browser: Browser, css: str, value: str) -> None:
    """Set an input's value through the DOM (a date input's typing depends on the locale)."""
    browser.driver.execute_script(
        "arguments[0].value = arguments[1];"
        " arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
        browser.find(css),
        value,
    )


def test_admin_adds_a_provider_and_a_model_that_a_user_picks(
    browser_factory: Callable[[], Browser], site: Site, user: str, model: FakeOpenAIServer
) -> None:
    """An admin adds a provider and, from its models, a model; a user picks it in a
    conversation, and the reply shows that model (and was asked of that provider)."""
    suffix = secrets.token_hex(3)
    provider_name = f"e2e-second-{suffix}"
    upstream = f"e2e-upstream-{suffix}"
    model_name = f"e2e-picked-{suffix}"
    api_key = f"e2e-second-key-{secrets.token_hex(8)}"
    # Listed by the server's GET /models once it has a behaviour: what Discover finds.
    model.configure(upstream, tokens=6, token_delay=0.0)

    admin = browser_factory()
    admin.sign_in(site.admin_email, site.admin_password)
    admin.open("/admin/providers")
    admin.find('[data-admin-page="providers"][data-loaded]')
    # The deployment's own providers are listed, read-only: no buttons to change them.
    managed = admin.find(row_of(admin, "providers-table", "provider", "environment"))
    assert "read-only" in managed.text
    assert not managed.find_elements(By.CSS_SELECTOR, "button")

    admin.fill("#provider-name", provider_name)
    admin.fill("#provider-base-url", model.base_url)
    admin.fill("#provider-api-key", api_key)
    admin.fill("#provider-headers", f"X-E2E-Run: {suffix}")
    admin.find("#provider-submit").click()
    provider_row = row_of(admin, "providers-table", "provider", provider_name)
    row = admin.find(provider_row)
    # The key is write-only: only whether it is set and its last 4 characters come back.
    assert row.find_element(By.CSS_SELECTOR, "[data-api-key]").text == f"set ••••{api_key[-4:]}"
    assert "X-E2E-Run" in row.text
    assert suffix not in row.text.replace(provider_name, "")
    assert api_key not in admin.driver.page_source
    admin.screenshot("admin-providers")

    # Discover lists the provider's models; Add fills the model form with the one chosen.
    row.find_element(By.CSS_SELECTOR, "button[data-action=discover]").click()
    admin.find(f'#discover-table a[data-upstream-id="{upstream}"]').click()
    admin.wait_for_path("/admin/models")
    admin.find('[data-admin-page="models"][data-loaded]')
    assert admin.find("#model-upstream-id").get_attribute("value") == upstream
    assert admin.find("#model-provider").get_attribute("value") == provider_name
    assert admin.find("#model-name").get_attribute("value") == upstream
    admin.fill("#model-name", model_name)
    admin.fill("#model-display-name", f"E2E picked {suffix}")
    admin.fill("#model-description", "The second provider's model, added by the browser test.")
    admin.fill("#model-context-window", "8192")
    admin.fill("#model-price-input", "0.5")
    admin.find("#model-submit").click()
    model_row = admin.find(row_of(admin, "models-table", "model", model_name))
    assert provider_name in model_row.text
    assert "enabled" in model_row.text
    # One short request through the provider: ok, its latency, the reply's start.
    model_row.find_element(By.CSS_SELECTOR, "button[data-action=test]").click()
    result = admin.find(f'#model-test-result[data-model="{model_name}"][data-ok]')
    assert result.get_attribute("data-ok") == "true", result.text
    assert f"[{upstream}]" in result.text
    admin.screenshot("admin-models")
    # The status page shows the new provider reachable, and how fast it answered.
    admin.open("/admin/status")
    admin.find('[data-admin-page="status"][data-loaded]')
    card = admin.find(f'#status-cards .card[data-part="Provider {provider_name}"]')
    assert card.find_element(By.CSS_SELECTOR, ".badge").text == "ok", card.text
    assert card.text.endswith(" ms"), card.text

    # The user: a first reply from the default model, then the new model for the next one.
    browser = browser_factory()
    browser.sign_in(user)
    browser.find(f'#model-picker option[value="{model_name}"]')
    first = browser.send("Which model are you?")
    browser.wait_finished()
    assert MODEL in first.find_element(By.CSS_SELECTOR, ".message-meta").text
    # The first exchange has named the conversation (the header is up to date).
    browser.wait(lambda d: browser.find("#conversation-title").text == "Which model are you?")

    Select(browser.find("#model-picker")).select_by_value(model_name)
    browser.find("#settings-toggle").click()
    browser.fill("#settings-system-prompt", SYSTEM_PROMPT)
    browser.fill("#settings-temperature", "0.3")
    browser.find("#settings-form button[type=submit]").click()
    browser.wait(lambda d: browser.find("#settings-form .form-ok").text == "Saved.")
    browser.screenshot("chat-model-settings")
    browser.find("#settings-close").click()

    reply = browser.send("And now?")
    browser.wait_finished()
    assert browser.reply_text(reply) == reply_text(upstream, 6)
    meta = reply.find_element(By.CSS_SELECTOR, ".message-meta").text
    assert model_name in meta
    assert f"E2E picked {suffix}" in meta
    browser.screenshot("chat-reply-picked-model")
    # Asked of the second provider, with its key, its headers and the conversation's settings.
    request = model.chat_requests(upstream)[-1]
    assert request.headers["authorization"] == f"Bearer {api_key}"
    assert request.headers["x-e2e-run"] == suffix
    assert request.body["temperature"] == 0.3
    assert any(
        m["role"] == "system" and SYSTEM_PROMPT in m["content"] for m in request.body["messages"]
    )
    # The choice is the conversation's: it is still there after a reload.
    browser.driver.refresh()
    browser.wait(lambda d: browser.all(".message-assistant"))
    browser.wait(lambda d: browser.find("#model-picker").get_attribute("value") == model_name)

    # The user's default model (Account) answers a new conversation that chooses none.
    browser.open("/account/profile")
    browser.find(f'#default_model option[value="{model_name}"]')
    Select(browser.find("#default_model")).select_by_value(model_name)
    browser.find("#default-model-form button[type=submit]").click()
    browser.wait(lambda d: browser.find("#default-model-form .form-ok").text == "Saved.")
    browser.open("/")
    browser.find(f'#model-picker option[value="{model_name}"]')
    picker = Select(browser.find("#model-picker"))
    assert browser.find("#model-picker").get_attribute("value") == ""
    assert f"E2E picked {suffix}" in picker.first_selected_option.text
    default_reply = browser.send("A new conversation")
    browser.wait_finished()
    assert browser.reply_text(default_reply) == reply_text(upstream, 6)
    assert model_name in default_reply.find_element(By.CSS_SELECTOR, ".message-meta").text

    # Deleting the provider (after a confirm) takes its model with it.
    admin.open("/admin/providers")
    admin.find('[data-admin-page="providers"][data-loaded]')
    admin.find(provider_row).find_element(By.CSS_SELECTOR, "button[data-action=delete]").click()
    alert = admin.wait(ec.alert_is_present())
    assert provider_name in alert.text
    alert.accept()
    admin.wait(lambda d: not admin.all(provider_row))
    admin.open("/admin/models")
    admin.find('[data-admin-page="models"][data-loaded]')
    assert not admin.all(row_of(admin, "models-table", "model", model_name))


def test_admin_edits_a_provider_and_a_model_with_errors_by_the_field(
    browser: Browser, site: Site, model: FakeOpenAIServer
) -> None:
    """Bad input is said next to its field; an edit keeps the write-only key unless told."""
    suffix = secrets.token_hex(3)
    provider_name = f"e2e-edit-{suffix}"
    browser.sign_in(site.admin_email, site.admin_password)
    browser.open("/admin/providers")
    browser.find('[data-admin-page="providers"][data-loaded]')
    browser.fill("#provider-name", "Not A Name")
    browser.fill("#provider-base-url", model.base_url)
    browser.find("#provider-submit").click()
    assert browser.find("#provider-name-error").text
    assert browser.find("#provider-name").get_attribute("aria-invalid") == "true"
    browser.fill("#provider-name", provider_name)
    browser.fill("#provider-headers", "no colon here")
    browser.find("#provider-submit").click()
    assert "Name: value" in browser.find("#provider-headers-error").text
    browser.fill("#provider-headers", "")
    browser.fill("#provider-api-key", "e2e-edit-key-abcd")
    browser.find("#provider-submit").click()
    row_css = row_of(browser, "providers-table", "provider", provider_name)
    browser.find(row_css)

    # Edit: a new timeout; the key field left empty keeps the key.
    browser.find(row_css).find_element(By.CSS_SELECTOR, "button[data-action=edit]").click()
    assert browser.find("#provider-form-heading").text == f"Edit the provider {provider_name}"
    assert browser.find("#provider-api-key").get_attribute("value") == ""
    assert "set ••••abcd" in browser.find("#provider-api-key-state").text
    browser.fill("#provider-timeout", "30")
    browser.find("#provider-submit").click()
    browser.wait(lambda d: "30 s" in browser.find(row_css).text)
    assert "set ••••abcd" in browser.find(row_css).text
    # Edit again and remove the key.
    browser.find(row_css).find_element(By.CSS_SELECTOR, "button[data-action=edit]").click()
    browser.find("#provider-api-key-clear").click()
    browser.find("#provider-submit").click()
    browser.wait(lambda d: "not set" in browser.find(row_css).text)

    # A model on it, edited to fall back to another.
    browser.open("/admin/models")
    browser.find('[data-admin-page="models"][data-loaded]')
    for name in (f"e2e-edit-a-{suffix}", f"e2e-edit-b-{suffix}"):
        Select(browser.find("#model-provider")).select_by_value(provider_name)
        browser.fill("#model-name", name)
        browser.fill("#model-upstream-id", MODEL)
        browser.find("#model-submit").click()
        browser.find(row_of(browser, "models-table", "model", name))
    first = row_of(browser, "models-table", "model", f"e2e-edit-a-{suffix}")
    browser.find(first).find_element(By.CSS_SELECTOR, "button[data-action=edit]").click()
    browser.fill("#model-temperature", "3")
    browser.find("#model-submit").click()
    assert browser.find("#model-temperature-error").text
    browser.fill("#model-temperature", "0.5")
    Select(browser.find("#model-fallback")).select_by_value(f"e2e-edit-b-{suffix}")
    browser.find("#model-submit").click()
    browser.wait(lambda d: f"e2e-edit-b-{suffix}" in browser.find(first).text)
    browser.screenshot("admin-models-edited")

    # Deleting the provider takes both models.
    browser.open("/admin/providers")
    browser.find(row_css).find_element(By.CSS_SELECTOR, "button[data-action=delete]").click()
    browser.wait(ec.alert_is_present()).accept()
    browser.wait(lambda d: not browser.all(row_css))


def test_user_creates_an_api_key_sees_it_once_and_revokes_it(browser: Browser, user: str) -> None:
    """A personal API key is shown once at creation, then only its prefix; revoking asks first."""
    browser.sign_in(user)
    browser.open("/account/profile")
    browser.wait(lambda d: browser.find("#profile-email").text == user)
    browser.fill("#api_key_name", "e2e laptop")
    expires = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    set_value(browser, "#api_key_expires", expires)
    browser.find("#api-key-form button[type=submit]").click()

    def shown_key(_driver: object) -> str | None:
        value = browser.find("#new-api-key-value").get_attribute("value") or ""
        return value if value.startswith("cbk_") else None

    key = browser.wait(shown_key)
    assert "shown only once" in browser.find("#new-api-key").text
    assert browser.find("#new-api-key-copy").is_displayed()
    row = browser.wait(
        lambda d: next(
            (r for r in browser.all("#api-keys-table tbody tr") if "e2e laptop" in r.text), None
        )
    )
    cells = row.find_elements(By.CSS_SELECTOR, "td")
    assert cells[1].text == f"{key[:12]}…"
    assert cells[3].text == "never"  # not used yet
    assert (
        cells[4].find_element(By.CSS_SELECTOR, "time").get_attribute("datetime").startswith(expires)
    )
    browser.screenshot("account-api-key-created")

    # Done, or any reload: the key is gone from the page for good; the list shows the prefix.
    browser.find("#new-api-key-done").click()
    browser.wait(lambda d: not browser.all("#new-api-key:not([hidden])"))
    assert browser.driver.find_element(By.ID, "new-api-key-value").get_attribute("value") == ""
    assert key not in browser.driver.page_source
    browser.driver.refresh()
    row_css = "#api-keys-table tbody tr[data-key-id]"
    browser.wait(lambda d: any("e2e laptop" in r.text for r in browser.all(row_css)))
    assert key not in browser.driver.page_source

    row = next(r for r in browser.all(row_css) if "e2e laptop" in r.text)
    row.find_element(By.CSS_SELECTOR, "button[data-action=revoke]").click()
    alert = browser.wait(ec.alert_is_present())
    assert "e2e laptop" in alert.text
    alert.accept()
    browser.wait(lambda d: not any("e2e laptop" in r.text for r in browser.all(row_css)))
    browser.screenshot("account-api-key-revoked")


def test_admin_revokes_a_users_api_key(
    browser_factory: Callable[[], Browser], site: Site, user: str
) -> None:
    """Admins see every user's keys (owner and prefix, never the key) and can revoke any."""
    owner = browser_factory()
    owner.sign_in(user)
    owner.open("/account/profile")
    owner.fill("#api_key_name", "e2e ci")
    owner.find("#api-key-form button[type=submit]").click()
    key = owner.wait(lambda d: owner.find("#new-api-key-value").get_attribute("value") or None)
    row_css = "#api-keys-table tbody tr[data-key-id]"
    owner.wait(lambda d: any("e2e ci" in r.text for r in owner.all(row_css)))

    admin = browser_factory()
    admin.sign_in(site.admin_email, site.admin_password)
    admin.open("/admin/api-keys")
    admin.find('[data-admin-page="api_keys"][data-loaded]')
    admin_rows = "#admin-api-keys-table tbody tr[data-key-id]"
    row = admin.wait(lambda d: next((r for r in admin.all(admin_rows) if user in r.text), None))
    assert "e2e ci" in row.text
    assert f"{key[:12]}…" in row.text
    assert key not in admin.driver.page_source
    admin.screenshot("admin-api-keys")
    row.find_element(By.CSS_SELECTOR, "button[data-action=revoke]").click()
    alert = admin.wait(ec.alert_is_present())
    assert user in alert.text
    alert.accept()
    admin.wait(lambda d: not any(user in r.text for r in admin.all(admin_rows)))

    # The owner's list no longer has it.
    owner.driver.refresh()
    owner.wait(lambda d: browser_has_no_keys(owner))


def test_admin_sets_a_users_daily_token_quota(browser: Browser, site: Site, user: str) -> None:
    """The users table shows each user's daily token quota; Change sets it, empty resets it."""
    browser.sign_in(site.admin_email, site.admin_password)
    browser.open("/admin/users")
    browser.find('[data-admin-page="users"][data-loaded]')
    browser.fill("#users-query", user)
    browser.find("#users-query").send_keys(Keys.ENTER)

    def quota_of_user(_driver: object) -> str | None:
        rows = browser.all("#users-table tbody tr")
        # Only the search's answer: the full list (with more rows) is replaced by it.
        if len(rows) != 1 or user not in rows[0].text:
            return None
        return rows[0].find_element(By.CSS_SELECTOR, ".quota").text

    assert browser.wait(quota_of_user) == "global"
    for typed, shown in (("5000", {"5,000", "5000", "5.000"}), ("", {"global"})):
        browser.find("#users-table tbody button[data-action=quota]").click()
        prompt = browser.wait(ec.alert_is_present())
        assert user in prompt.text
        # A prompt's answer replaces its default (the current quota).
        prompt.send_keys(typed or " ")
        prompt.accept()
        browser.wait(lambda d, shown=shown: browser.wait(quota_of_user) in shown)
    browser.screenshot("admin-users-quota")


def browser_has_no_keys(browser: Browser) -> bool:
    """Whether the account page's API key list has loaded and is empty."""
    rows = browser.all("#api-keys-table tbody tr")
    return len(rows) == 1 and rows[0].text == "No API keys."


def test_issue_14_admin_pages_refuse_a_user(browser: Browser, user: str) -> None:
    """A user who is not an admin gets the refusal on the new admin pages, and no form."""
    browser.sign_in(user)
    for page, form in (
        ("providers", "#provider-form"),
        ("models", "#model-form"),
        ("api-keys", "#api-keys-filter"),
    ):
        browser.open(f"/admin/{page}")
        browser.find("[data-refused]")
        assert "for admins" in browser.find("#admin-notice").text
        assert not browser.all(form)
