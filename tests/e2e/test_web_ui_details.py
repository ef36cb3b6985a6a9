"""Details of the web UI found in headless Chromium (issue 11): Regenerate after a reload, the view
following a streamed reply, the admin pages' forms, tables and figures, wait times in words."""

from __future__ import annotations

import itertools
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select

from tests.e2e.conftest import MODEL, Browser, Site
from tests.fakes.openai_server import FakeOpenAIServer, reply_text
from webapp.models import WEBHOOK_EVENTS

# How far from the bottom of the messages the view may be and still count as at the bottom.
BOTTOM_SLACK_PX = 4

# Where the messages list is scrolled: {top, height, client} (px).
_SCROLL = (
    "const m = document.getElementById('messages');"
    " return {top: m.scrollTop, height: m.scrollHeight, client: m.clientHeight};"
)


def distance_from_bottom(browser: Browser) -> float:
    """Return how many pixels of the messages list are below the visible part."""
    scroll = browser.driver.execute_script(_SCROLL)
    return scroll["height"] - scroll["top"] - scroll["client"]


def has_regenerate(browser: Browser) -> bool:
    """Whether the last reply on the page offers Regenerate."""
    replies = browser.all(".message-assistant")
    return bool(replies) and bool(replies[-1].find_elements(By.CSS_SELECTOR, ".regenerate"))


def test_regenerate_is_offered_after_reloading_and_reopening(
    browser: Browser, user: str, model: FakeOpenAIServer
) -> None:
    """The last reply of a conversation offers Regenerate however the conversation was opened."""
    browser.sign_in(user)
    browser.send("First question")
    browser.wait_finished()
    assert has_regenerate(browser)
    conversation_id = browser.path().removeprefix("/?c=")

    browser.driver.refresh()
    browser.wait(lambda d: browser.all(".message-assistant"))
    browser.wait(lambda d: has_regenerate(browser))

    # Away to a new conversation and back through the sidebar.
    browser.find("#new-conversation").click()
    browser.wait(lambda d: not browser.all(".message"))
    # The sidebar re-renders as the new conversation appears: click again if the link was replaced.
    link = f'.conversation-link[data-id="{conversation_id}"]'
    browser.wait(lambda d: browser.find(link).click() or True)
    browser.wait(lambda d: browser.all(".message-assistant"))
    browser.wait(lambda d: has_regenerate(browser))
    # Only the last reply offers it, and it works.
    model.configure(MODEL, tokens=4, token_delay=0.0)
    browser.wait(
        lambda d: (
            browser.all(".message-assistant")[-1]
            .find_element(By.CSS_SELECTOR, ".regenerate")
            .click()
            or True
        )
    )
    browser.wait(
        lambda d: (
            browser.all(".message-assistant")
            and browser.all(".message-assistant")[-1].get_attribute("data-status") == "complete"
            and browser.reply_text(browser.all(".message-assistant")[-1]) == reply_text(MODEL, 4)
        )
    )
    assert len(browser.all(".message-assistant")) == 1


def test_the_view_follows_a_streamed_reply_unless_scrolled_up(
    browser: Browser, user: str, model: FakeOpenAIServer
) -> None:
    """A reply longer than the screen stays in view to its end; scrolling up stops the following."""
    browser.driver.set_window_size(900, 600)
    browser.sign_in(user)
    model.configure(MODEL, tokens=500, token_delay=0.03)
    reply = browser.send("Write a long answer.")

    # Followed while it is written: once it is taller than the view, still at its bottom.
    def tall_while_streaming(_driver: object) -> bool:
        scroll = browser.driver.execute_script(_SCROLL)
        return scroll["height"] > scroll["client"] * 1.2

    browser.wait(tall_while_streaming)
    assert reply.get_attribute("data-status") == "streaming", "write a longer reply: it ended"
    assert distance_from_bottom(browser) <= BOTTOM_SLACK_PX, "the reply is written below the fold"
    browser.wait_finished(timeout=60)
    assert reply.get_attribute("data-status") == "complete"
    scroll = browser.driver.execute_script(_SCROLL)
    assert scroll["height"] > scroll["client"] * 1.5, (
        f"the reply must be taller than the view: {scroll}"
    )
    browser.wait(lambda d: distance_from_bottom(browser) <= BOTTOM_SLACK_PX)
    # The end of the reply (its footer with Regenerate) is on screen.
    footer = reply.find_element(By.CSS_SELECTOR, ".regenerate")
    assert browser.driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        " const box = document.getElementById('messages').getBoundingClientRect();"
        " return r.top >= box.top && r.bottom <= box.bottom;",
        footer,
    ), "the finished reply's end is below the fold"
    browser.screenshot("chat-long-reply-followed")

    # Scrolled up to read while the next reply is written: the view stays where the user put it.
    model.configure(MODEL, tokens=400, token_delay=0.02)
    second = browser.send("And another one.")
    browser.wait(lambda d: len(browser.reply_text(second).split()) >= 20)
    browser.driver.execute_script("document.getElementById('messages').scrollTop = 0")
    browser.wait_finished(timeout=60)
    assert browser.driver.execute_script(_SCROLL)["top"] <= BOTTOM_SLACK_PX
    # Back at the bottom, the view follows again.
    browser.driver.execute_script(
        "const m = document.getElementById('messages'); m.scrollTop = m.scrollHeight"
    )
    model.configure(MODEL, tokens=400, token_delay=0.01)
    browser.send("A third one.")
    browser.wait_finished(timeout=60)
    browser.wait(lambda d: distance_from_bottom(browser) <= BOTTOM_SLACK_PX)


def test_wait_times_are_said_in_words(browser: Browser, user: str) -> None:
    """A rate limit's Retry-After is said as people say it ("about 52 minutes"), by one helper."""
    browser.sign_in(user)
    said = browser.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        " import('/static/js/ui.js').then(({limitMessage}) => done(Object.fromEntries("
        "   [1, 45, 3100, 7200, 200000, 0].map((s) => [s, limitMessage({retryAfter: s})]))),"
        " (error) => done({error: String(error)}));"
    )
    assert "error" not in said, said
    assert said["3100"] == "Too many requests: please wait about 52 minutes and try again."
    assert said["1"] == "Too many requests: please wait 1 second and try again."
    assert said["45"] == "Too many requests: please wait 45 seconds and try again."
    assert said["7200"] == "Too many requests: please wait about 2 hours and try again."
    assert said["200000"] == "Too many requests: please wait about 2 days and try again."
    assert said["0"] == "Too many requests: please wait a few seconds and try again."


ADMIN_PAGES = ("", "users", "audit", "webhooks", "status")


def test_admin_pages_show_a_non_admin_only_the_refusal(browser: Browser, user: str) -> None:
    """A signed-in non-admin sees that the pages are for admins, and no empty controls."""
    browser.sign_in(user)
    for page in ADMIN_PAGES:
        browser.open(f"/admin/{page}")
        browser.wait(lambda d: "for admins" in browser.find("#admin-notice").text)
        leftovers = browser.driver.execute_script(
            "return [...document.querySelectorAll("
            "  '#main input, #main select, #main button, #main table, #main form, #main svg,"
            "   #main .cards, #main pre, .admin-nav')]"
            " .filter((e) => e.getClientRects().length > 0).map((e) => e.outerHTML.slice(0, 80));"
        )
        assert leftovers == [], f"/admin/{page} shows controls to a non-admin: {leftovers}"
    browser.screenshot("admin-refused")


def x_axis_labels(browser: Browser) -> list[list[dict[str, Any]]]:
    """Return each chart's day labels (under the x axis) with their boxes on screen."""
    return browser.driver.execute_script(
        "return [...document.querySelectorAll('#usage-charts svg.chart')].map((chart) =>"
        " [...chart.querySelectorAll('text[text-anchor=middle]')].map((t) => {"
        "   const r = t.getBoundingClientRect();"
        "   return {text: t.textContent, left: r.left, right: r.right};"
        " }));"
    )


def test_dashboard_figures_are_explained_and_chart_labels_do_not_overlap(
    browser: Browser, site: Site
) -> None:
    """Every figure says what it counts, no two share a name; the days under a chart are legible."""
    browser.sign_in(site.admin_email, site.admin_password)
    browser.open("/admin/")
    browser.find('[data-admin-page="dashboard"][data-loaded]')
    cards = browser.wait(lambda d: browser.all("#usage-charts .card") and browser.all(".card"))
    labels = [card.find_element(By.CSS_SELECTOR, ".card-label").text for card in cards]
    assert len(labels) == len(set(labels)), f"two figures share a name: {labels}"
    for card in cards:
        hint = card.find_elements(By.CSS_SELECTOR, ".card-hint")
        label = card.find_element(By.CSS_SELECTOR, ".card-label").text
        assert hint, f"the figure {label!r} does not say what it counts"
        assert hint[0].text.strip(), f"the figure {label!r} does not say what it counts"
    quota = next(card for card in cards if card.get_attribute("data-figure") == "quota_tokens")
    assert "quota" in quota.find_element(By.CSS_SELECTOR, ".card-hint").text.lower()

    select = Select(browser.find("#usage-days"))
    for period in ("7", "30", "90"):
        select.select_by_value(period)
        days = int(period)
        browser.wait(
            lambda d, days=days: (
                len(browser.all("#usage-charts svg.chart")) == 2
                and len(
                    browser.all("#usage-charts svg.chart")[0].find_elements(
                        By.CSS_SELECTOR, "rect.bar"
                    )
                )
                == days
            )
        )
        for chart in x_axis_labels(browser):
            assert len(chart) >= 2, chart
            ordered = sorted(chart, key=lambda label: label["left"])
            for before, after in itertools.pairwise(ordered):
                assert before["right"] <= after["left"], (
                    f"day labels overlap ({period} days): {before} {after}"
                )
    browser.screenshot("admin-dashboard-explained")


def test_users_search_without_match_and_actions_on_one_line(
    browser: Browser, site: Site, user: str
) -> None:
    """A search that finds nobody says so; a user's action buttons stay on one line."""
    browser.sign_in(site.admin_email, site.admin_password)
    browser.open("/admin/users")
    browser.find('[data-admin-page="users"][data-loaded]')
    browser.fill("#users-query", "nobody-has-this-address")
    browser.find("#users-query").send_keys(Keys.ENTER)
    browser.wait(lambda d: "No user matches" in browser.find("#users-table tbody").text)
    assert "nobody-has-this-address" in browser.find("#users-table tbody").text

    browser.fill("#users-query", user)
    browser.find("#users-query").send_keys(Keys.ENTER)
    row = browser.wait(
        lambda d: next((r for r in browser.all("#users-table tbody tr") if user in r.text), None)
    )
    buttons = row.find_elements(By.CSS_SELECTOR, "td.actions button")
    assert len(buttons) == 4, [b.text for b in buttons]
    tops = {round(b.rect["y"]) for b in buttons}
    assert len(tops) == 1, f"the action buttons wrap onto {len(tops)} lines"
    browser.screenshot("admin-users-one-line")


def test_webhooks_form_offers_the_events_and_says_what_is_wrong(
    browser: Browser, site: Site
) -> None:
    """The events are choices from the API's list; no event and a host not found are said clearly.

    Then the audit log's filters find the new webhook's event, shown whole and on one line.
    """
    browser.sign_in(site.admin_email, site.admin_password)
    browser.open("/admin/webhooks")
    browser.find('[data-admin-page="webhooks"][data-loaded]')
    boxes = browser.all('#webhook-form input[type=checkbox][name="events"]')
    assert [box.get_attribute("value") for box in boxes] == list(WEBHOOK_EVENTS)
    assert browser.all('#webhook-form input[type=text][name="events"]') == []

    for box in boxes:
        if box.is_selected():
            box.click()
    browser.fill("#webhook-url", "https://93.184.216.34/hook")
    browser.find("#webhook-form button[type=submit]").click()
    error = browser.form_error()
    assert "at least one event" in error, error
    assert "required" not in error

    boxes[0].click()
    browser.fill("#webhook-url", "https://no-such-host.invalid/hook")
    browser.find("#webhook-form button[type=submit]").click()
    error = browser.wait(lambda d: browser.find("#webhook-url-error").text)
    assert "no-such-host.invalid was not found" in error, error
    assert "Errno" not in error, error
    assert "Name or service" not in error, error
    browser.screenshot("admin-webhook-host-not-found")

    # A long path with nowhere to break a line: its audit details are far wider than the column.
    url = "https://93.184.216.34/hooks/" + "x" * 240
    browser.fill("#webhook-url", url)
    browser.find("#webhook-form button[type=submit]").click()
    browser.wait(lambda d: "Webhook added" in browser.find("#webhook-form .form-ok").text)
    row = browser.wait(
        lambda d: next((r for r in browser.all("#webhooks-table tbody tr") if url in r.text), None)
    )
    assert WEBHOOK_EVENTS[0] in row.text

    browser.open("/admin/audit")
    browser.find('[data-admin-page="audit"][data-loaded]')
    # The action field suggests the known actions (and accepts any other, like this one).
    suggested = [o.get_attribute("value") for o in browser.all("#audit-actions option")]
    assert "admin.user_disabled" in suggested
    assert "auth.*" in suggested
    browser.fill("#audit-action", "admin.webhook_created")
    browser.fill("#audit-target-type", "webhook")
    browser.find("#audit-filter button[type=submit]").click()

    def filtered(_driver: object) -> list[Any] | None:
        rows = browser.all("#audit-table tbody tr")
        if rows and all("admin.webhook_created" in r.text for r in rows) and url in rows[0].text:
            return rows
        return None

    rows = browser.wait(filtered)
    layout = browser.driver.execute_script(
        "const row = arguments[0];"
        " const when = row.cells[0]; const details = row.cells[4];"
        " const range = document.createRange(); range.selectNodeContents(when);"
        " const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;"
        " const wrap = row.closest('.table-wrap');"
        " return {whenLines: lines, text: details.textContent,"
        "         overflow: wrap.scrollWidth - wrap.clientWidth,"
        "         detailsRight: details.getBoundingClientRect().right,"
        "         wrapRight: wrap.getBoundingClientRect().right};",
        rows[0],
    )
    assert layout["whenLines"] == 1, f"'When' wraps onto {layout['whenLines']} lines"
    assert url in layout["text"].replace("\n", "").replace(" ", "")
    # Nothing to scroll sideways to: the details are shown whole.
    assert layout["overflow"] <= 1, f"the table is cut off on the right: {layout}"
    assert layout["detailsRight"] <= layout["wrapRight"] + 1, f"details run off the table: {layout}"
    browser.screenshot("admin-audit-filtered")

    # Cleaning up: a webhook nobody receives would be retried through the later tests.
    browser.open("/admin/webhooks")
    row = browser.wait(
        lambda d: next((r for r in browser.all("#webhooks-table tbody tr") if url in r.text), None)
    )
    next(b for b in row.find_elements(By.TAG_NAME, "button") if b.text == "Delete").click()
    browser.wait(ec.alert_is_present()).accept()
    browser.wait(lambda d: all(url not in r.text for r in browser.all("#webhooks-table tbody tr")))
