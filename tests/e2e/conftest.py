"""Browser tests of the web UI: Debian's headless Chromium, driven by Selenium, against a
deployed system (nginx, HTTPS, the three services).

Environment:

- ``E2E_BASE_URL`` (required): the deployed site, e.g. ``https://10.231.0.11``; its
  certificate may be self-signed.
- ``E2E_ADMIN_EMAIL`` / ``E2E_ADMIN_PASSWORD``: an admin account (default: the demo values of
  ``inventories/local``).
- ``E2E_MODEL_SERVER``: ``address:port`` where these tests serve the OpenAI-compatible test
  model (``tests/fakes/openai_server.py``) that the deployment answers with (see
  ``tests/e2e/deploy-vars.yml``). Without it, the tests that need a slow reply are skipped.
- ``E2E_ARTIFACTS``: where screenshots go (default ``tests/e2e/screenshots``).
- ``E2E_CHROMIUM`` / ``E2E_CHROMEDRIVER``: the browser and driver (Debian's by default).
- ``E2E_REQUIRED=1`` (set by the deployment test and ``tools/up.sh --e2e``): a skipped test, or
  a run in which no test ran, fails the session: a browser suite that could not run proves
  nothing and must not pass the deployment test.

Script execution is detected, not assumed away: every page gets, before its own scripts, a hook
recording Content-Security-Policy violations (a script the renderer let through would be one)
and the hostile payloads the tests send would set ``window.__xss`` or change the title.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.fakes.openai_server import FakeOpenAIServer
from tests.waiting import EVENT_TIMEOUT

PASSWORD = "e2e correct horse battery"
MODEL = "e2e-model"
"""The model name the e2e deployment asks for (tests/e2e/deploy-vars.yml)."""

# Runs in every page before its own scripts: records CSP violations and dialogs, so a test can
# tell whether any script from a message ran, or was even attempted.
_HOOK = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sample);
});
"""

# No browser or driver is ever downloaded: Selenium Manager stays offline.
os.environ.setdefault("SE_OFFLINE", "true")


@dataclass(frozen=True)
class Site:
    """The deployed system under test."""

    base_url: str
    admin_email: str
    admin_password: str

    def url(self, path: str) -> str:
        """Return the absolute URL of a path."""
        return self.base_url.rstrip("/") + path

    def api(self) -> requests.Session:
        """Return an HTTP session for setting up data through the API (self-signed TLS)."""
        session = requests.Session()
        session.verify = False
        return session

    def register(self, email: str, password: str = PASSWORD) -> None:
        """Create an account through the API."""
        with warnings.catch_warnings():
            # The test host's certificate is self-signed, as the browser is told too.
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            response = self.api().post(
                self.url("/api/v1/auth/register"),
                json={"email": email, "password": password},
                # Per request: requests lets REQUESTS_CA_BUNDLE override a session's verify.
                verify=False,
            )
        assert response.status_code == 201, response.text


@pytest.fixture(scope="session")
def site() -> Site:
    """The deployed site, from the environment."""
    base_url = os.environ.get("E2E_BASE_URL")
    if not base_url:
        pytest.skip("E2E_BASE_URL is not set: the browser tests need a deployed system")
    return Site(
        base_url=base_url,
        admin_email=os.environ.get("E2E_ADMIN_EMAIL", "admin@example.com"),
        admin_password=os.environ.get("E2E_ADMIN_PASSWORD", "chatbot-demo-admin"),
    )


@pytest.fixture(scope="session")
def model_server() -> Iterator[FakeOpenAIServer | None]:
    """The test model server the deployment answers with, or None when not configured."""
    address = os.environ.get("E2E_MODEL_SERVER")
    if not address:
        yield None
        return
    host, _, port = address.rpartition(":")
    with FakeOpenAIServer(host=host, port=int(port)) as server:
        yield server


@pytest.fixture(autouse=True)
def _quick_model(model_server: FakeOpenAIServer | None) -> None:
    """Start every test with the test model answering quickly and well."""
    if model_server is not None:
        model_server.configure(MODEL, mode="normal", tokens=8, token_delay=0.0)


@pytest.fixture
def model(model_server: FakeOpenAIServer | None) -> FakeOpenAIServer:
    """The test model server; skips the test when there is none."""
    if model_server is None:
        pytest.skip("E2E_MODEL_SERVER is not set: this test needs the test model server")
    return model_server


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The directory screenshots are saved in."""
    default = Path(__file__).resolve().parent / "screenshots"
    path = Path(os.environ.get("E2E_ARTIFACTS", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


class Browser:
    """One headless Chromium with a fresh profile, and the steps the tests take in it."""

    def __init__(self, site: Site, artifacts: Path, profile: Path) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--ignore-certificate-errors",
            "--window-size=1280,900",
            f"--user-data-dir={profile}",
        ):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(
            executable_path=os.environ.get("E2E_CHROMEDRIVER", "/usr/bin/chromedriver")
        )
        self.driver = webdriver.Chrome(options=options, service=service)
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _HOOK})
        self.site = site
        self.artifacts = artifacts
        self.console: list[dict[str, Any]] = []

    def close(self) -> None:
        """Quit the browser."""
        self.driver.quit()

    # -- navigation and waiting -----------------------------------------------------------

    def open(self, path: str) -> None:
        """Load a page of the site."""
        self.driver.get(self.site.url(path))

    def wait(self, condition: Callable[[Any], Any], timeout: float = EVENT_TIMEOUT) -> Any:
        """Wait until ``condition(driver)`` is truthy and return its value."""
        return WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.05,
            # Elements come and go as the page re-renders; look again rather than fail.
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        ).until(condition)

    def find(self, css: str) -> WebElement:
        """Wait for a visible element and return it."""
        return self.wait(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def all(self, css: str) -> list[WebElement]:
        """Return the elements matching a selector now."""
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def path(self) -> str:
        """Return the current path and query."""
        return self.driver.execute_script("return location.pathname + location.search")

    def wait_for_path(self, prefix: str) -> str:
        """Wait until the page's path starts with ``prefix``."""
        return self.wait(lambda d: self.path() if self.path().startswith(prefix) else None)

    def screenshot(self, name: str) -> Path:
        """Save a screenshot of the page as ``<artifacts>/<name>.png``."""
        path = self.artifacts / f"{name}.png"
        assert self.driver.save_screenshot(str(path)), f"screenshot {path} failed"
        return path

    # -- account steps --------------------------------------------------------------------

    def fill(self, css: str, value: str) -> None:
        """Replace the value of an input."""
        field = self.find(css)
        field.clear()
        field.send_keys(value)

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        """Sign in through the form and wait for the chat page."""
        self.open("/account/login")
        self.fill("#email", email)
        self.fill("#password", password)
        self.find("#login-form button[type=submit]").click()
        self.wait(lambda d: self.path() == "/" or self.path().startswith("/?"))
        self.find("#account-menu")

    def form_error(self) -> str:
        """Wait for an error message on a form (next to a field or under it); return it."""
        return self.wait(
            lambda d: " ".join(
                e.text for e in self.all("[data-error-for]") if e.is_displayed() and e.text
            )
        )

    # -- chat steps -----------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        """Write a message in the box and press Send."""
        box = self.find("#message-input")
        # Typed through the DOM, not send_keys: payloads hold characters send_keys would type
        # as key chords; an input event keeps the page's state as typing would.
        self.driver.execute_script(
            "arguments[0].value = arguments[1];"
            " arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
            box,
            text,
        )
        self.find("#send-button").click()

    def send(self, text: str) -> WebElement:
        """Send a message and return the element of the reply being written."""
        known = {e.get_attribute("data-id") for e in self.all(".message-assistant")}
        self.send_text(text)
        return self.wait(
            lambda d: next(
                (
                    e
                    for e in self.all(".message-assistant")
                    if e.get_attribute("data-id") not in known
                ),
                None,
            )
        )

    def reply_text(self, reply: WebElement) -> str:
        """Return the visible text of a reply's body."""
        return reply.find_element(By.CSS_SELECTOR, ".message-body").text

    def wait_finished(self, timeout: float = EVENT_TIMEOUT) -> WebElement:
        """Wait until the last reply has finished and return it."""

        def finished(_driver: Any) -> WebElement | None:
            replies = self.all(".message-assistant")
            if replies and replies[-1].get_attribute("data-status") != "streaming":
                return replies[-1]
            return None

        return self.wait(finished, timeout)

    # -- checks ---------------------------------------------------------------------------

    def no_dialog(self) -> None:
        """Assert that no alert, confirm or prompt is open (a payload would open one)."""
        try:
            alert = self.driver.switch_to.alert
        except NoAlertPresentException:
            return
        text = alert.text
        alert.dismiss()
        pytest.fail(f"a dialog opened: {text!r}")

    def read_console(self) -> list[dict[str, Any]]:
        """Return the browser's console messages since the last call (kept in ``console``)."""
        entries = self.driver.get_log("browser")
        self.console.extend(entries)
        return entries

    def storage(self) -> dict[str, dict[str, str]]:
        """Return everything in localStorage and sessionStorage."""
        return self.driver.execute_script(
            "const dump = (s) => Object.fromEntries(Object.keys(s).map((k) => [k, s.getItem(k)]));"
            " return {local: dump(localStorage), session: dump(sessionStorage)};"
        )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, for the screenshot of a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


class _RequiredRun:
    """With ``E2E_REQUIRED=1``: fail the session if any test was skipped or none passed."""

    def __init__(self) -> None:
        self.passed = 0
        self.skipped: list[str] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            self.skipped.append(f"{report.nodeid}: {reason}")
        elif report.passed and report.when == "call":
            self.passed += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        problems = list(self.skipped)
        if not self.passed:
            problems.append("no browser test ran and passed")
        if not problems or exitstatus not in (
            pytest.ExitCode.OK,
            pytest.ExitCode.NO_TESTS_COLLECTED,
        ):
            return
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_sep("=", "E2E_REQUIRED=1: the browser suite did not fully run", red=True)
            for problem in problems:
                reporter.write_line(f"  {problem}")


def pytest_configure(config: pytest.Config) -> None:
    """Register the E2E_REQUIRED check (see the module's docstring)."""
    if os.environ.get("E2E_REQUIRED") == "1":
        config.pluginmanager.register(_RequiredRun(), "e2e-required")


@pytest.fixture
def browser_factory(
    site: Site, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], Browser]]:
    """Start browsers with fresh profiles; all are closed after the test.

    When the test failed, each browser's last page is saved as ``FAILED-<test>-<n>.png``.
    """
    started: list[tuple[Browser, tempfile.TemporaryDirectory[str]]] = []

    def start() -> Browser:
        profile = tempfile.TemporaryDirectory(prefix="e2e-chromium-")
        browser = Browser(site, artifacts, Path(profile.name))
        started.append((browser, profile))
        return browser

    yield start
    report = getattr(request.node, "report_call", None)
    for index, (browser, profile) in enumerate(started):
        if report is not None and report.failed:
            name = re.sub(r"[^\w.-]+", "-", request.node.name)
            browser.screenshot(f"FAILED-{name}-{index}")
        browser.close()
        profile.cleanup()


@pytest.fixture
def browser(browser_factory: Callable[[], Browser]) -> Browser:
    """One browser with a fresh profile."""
    return browser_factory()


@pytest.fixture
def new_email() -> Callable[[str], str]:
    """Return unique email addresses, so runs never collide with earlier ones."""

    def make(prefix: str) -> str:
        return f"{prefix}-{int(time.time())}-{secrets.token_hex(3)}@example.com"

    return make


@pytest.fixture
def user(site: Site, new_email: Callable[[str], str]) -> str:
    """A fresh account (registered through the API); returns its email."""
    email = new_email("e2e")
    site.register(email)
    return email
