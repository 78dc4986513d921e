"""The Airflow UI in headless Chromium (Debian's chromium and chromedriver, driven by Selenium; no
browser is downloaded): log in through the login form, open each DAG's trigger form, find every
Param in its form section with its title and description, see a wrongly typed value refused, and
trigger a run from the form that then shows in the grid.

Screenshots go to the server's temporary folder; with SYNTH_SAVE_SCREENSHOTS=1 the ones the docs
show (DOC_SCREENSHOTS) go to docs/img/."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.integration.airflow_server import ROOT
from tests.integration.conftest import DAG_IDS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT_S = 120  # the React UI on 2 busy cores: some API calls behind a page took 20 s here
MARKDOWN_QA_TASKS = ("prepare", "facts", "generate", "ground", "dedup", "render", "export")


# The screenshots the docs show; the others (every DAG's form) only go to the temporary folder.
DOC_SCREENSHOTS = ("trigger-form-mind.png", "trigger-refused-markdown_qa.png", "grid-markdown_qa.png")


@pytest.fixture(scope="module")
def screenshot(airflow):
    """``screenshot(driver, name)``: saved under the server's folder, and the documented ones under
    docs/img/ when SYNTH_SAVE_SCREENSHOTS=1."""
    tmp = airflow.base / "screenshots"
    tmp.mkdir(parents=True, exist_ok=True)
    docs = ROOT / "docs" / "img" if os.environ.get("SYNTH_SAVE_SCREENSHOTS") == "1" else None

    def save(driver, name: str) -> Path:
        folder = docs if docs is not None and name in DOC_SCREENSHOTS else tmp
        folder.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(folder / name)), name
        return folder / name

    return save


@pytest.fixture(scope="module")
def browser(airflow):
    """Chromium logged in to the api-server through its login form, as a user does."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{missing} not installed: `make system-deps` installs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "1"  # Selenium Manager must not download a driver or a browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1400,1100",
                f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-', dir=airflow.base)}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(WAIT_S)
        _log_in(driver, airflow)
        yield driver
    finally:
        driver.quit()
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous


def _wait(driver, condition, timeout_s: float = WAIT_S):
    """Wait for ``condition(driver)`` to be truthy. React re-renders replace DOM nodes under a held
    reference, so conditions find their elements afresh and a stale reference just means "again"."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def _visible(driver, xpath: str):
    """The first displayed element matching ``xpath`` (looked up anew each time), or None."""
    return next((e for e in driver.find_elements(By.XPATH, xpath) if e.is_displayed()), None)


def _attribute(driver, xpath: str, name: str) -> str | None:
    element = _visible(driver, xpath)
    return None if element is None else element.get_attribute(name)


def _click(driver, xpath: str, timeout_s: float = 60) -> None:
    """Click the element at ``xpath`` once it is there and nothing covers it (accordion sections
    animate open and shut), finding it again after a re-render."""
    from selenium.common.exceptions import ElementClickInterceptedException, ElementNotInteractableException

    def attempt(d):
        element = _visible(d, xpath)
        if element is None:
            return False
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        try:
            element.click()
        except (ElementClickInterceptedException, ElementNotInteractableException):
            return False
        return True

    _wait(driver, attempt, timeout_s)


def _type(driver, xpath: str, text: str) -> None:
    """Replace the value of the input at ``xpath`` by ``text``, as a user selects all and types."""
    _click(driver, xpath)
    element = _wait(driver, lambda d: _visible(d, xpath))
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(text)
    _wait(driver, lambda d: _attribute(d, xpath, "value") == text, 30)


def _log_in(driver, airflow) -> None:
    driver.get(f"{airflow.url}/")
    _wait(driver, lambda d: "/auth/login" in d.current_url)  # an anonymous visitor is sent to the form
    _type(driver, "//input[@name='username']", "admin")
    _type(driver, "//input[@name='password']", airflow.password)
    _click(driver, "//button[normalize-space()='Sign in']")
    _wait(driver, lambda d: "/auth/login" not in d.current_url)


def _dialog_xpath(dag_id: str) -> str:
    return f"//*[@role='dialog'][.//*[normalize-space()='Trigger Dag - {dag_id}']]"


def _open_trigger_form(driver, airflow, dag_id: str) -> str:
    """Open the DAG's page and its trigger form; returns the form's XPath."""
    driver.get(f"{airflow.url}/dags/{dag_id}")
    _click(driver, "//button[@aria-label='Trigger Dag']", WAIT_S)
    _wait(driver, lambda d: _visible(d, _dialog_xpath(dag_id)))
    return _dialog_xpath(dag_id)


def _open_section(driver, dialog: str, section: str) -> None:
    """Expand one section of the form (the UI keeps one open at a time)."""
    trigger = f"{dialog}//button[@data-part='item-trigger'][normalize-space()='{section}']"
    if _wait(driver, lambda d: _attribute(d, trigger, "aria-expanded")) != "true":
        _click(driver, trigger)
    _wait(driver, lambda d: _attribute(d, trigger, "aria-expanded") == "true")


def _field_xpath(dialog: str, name: str) -> str:
    """The form field of Param ``name``: its input is named, or its widget identified, element_<name>."""
    ids = [f"element_{name}", f"switch:element_{name}", f"number-input:element_{name}"]
    test = " or ".join([f"@name='element_{name}'"] + [f"@id='{i}'" for i in ids])
    return f"{dialog}//*[{test}]/ancestor::*[@data-scope='field' and @data-part='root'][1]"


def _normal(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_trigger_form_shows_every_param_with_its_description_and_refuses_a_bad_value(
        airflow, browser, screenshot, dag_id):
    params = airflow.api("GET", f"/api/v2/dags/{dag_id}/details").json()["params"]
    sections: dict[str, list[str]] = {}
    for name, param in params.items():
        sections.setdefault(param["schema"]["section"], []).append(name)
    dialog = _open_trigger_form(browser, airflow, dag_id)

    def shown(name: str) -> tuple[str, str] | None:
        field = _visible(browser, _field_xpath(dialog, name))
        if field is None:
            return None
        label = field.find_element(By.CSS_SELECTOR, "[data-part='label']").text
        helper = " ".join(e.text for e in field.find_elements(By.CSS_SELECTOR, "[data-part='helper-text']"))
        return _normal(label), _normal(helper)

    seen = []
    for section, names in sections.items():
        _open_section(browser, dialog, section)
        for name in names:
            label, helper = _wait(browser, lambda _: shown(name), 30)
            assert label.startswith(params[name]["schema"]["title"]), (name, label)
            assert helper == _normal(params[name]["description"] or ""), (name, helper)
            seen.append(name)
        if section == "Input":
            screenshot(browser, f"trigger-form-{dag_id}.png")
    assert sorted(seen) == sorted(params)

    # A float where the Param's schema says integer: the form sends it, Airflow refuses it by name.
    runs_before = len(airflow.dag_runs(dag_id, run_type=["manual"]))
    _open_section(browser, dialog, "Output")
    # "15", then the dot put between the digits: typed left to right, the field passes through
    # "1.", which it may store as the number 1 and show as "1" (it keeps Number(text)), and the
    # run would start with seed 15. CI once waited in vain for the refusal on 2 DAGs of 8; this is
    # the likely cause, and the message below says what happened instead if it happens again.
    seed = f"{dialog}//input[@name='element_seed']"
    _type(browser, seed, "15")
    _wait(browser, lambda d: _visible(d, seed)).send_keys(Keys.LEFT, ".")
    _wait(browser, lambda d: _attribute(d, seed, "value") == "1.5", 30)
    _click(browser, f"{dialog}//button[normalize-space()='Trigger']")
    refusal = f"{dialog}//*[starts-with(normalize-space(), 'Invalid input for param seed')]"
    try:
        error = _wait(browser, lambda d: _visible(d, refusal))
    except TimeoutException:
        runs = airflow.dag_runs(dag_id, run_type=["manual"])
        screenshot(browser, f"trigger-not-refused-{dag_id}.png")
        seeds = [(r.get("conf") or {}).get("seed") for r in runs]
        raise AssertionError(f"no refusal shown; page {browser.current_url}, {len(runs) - runs_before} new "
                             f"manual run(s); seeds of the manual runs: {seeds}") from None
    assert "1.5 is not of type 'integer'" in error.text
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", error)
    screenshot(browser, f"trigger-refused-{dag_id}.png")
    assert _visible(browser, dialog) is not None  # the form stays open for a correction
    assert len(airflow.dag_runs(dag_id, run_type=["manual"])) == runs_before  # and no run was made


def test_a_run_triggered_from_the_form_appears_in_the_grid(airflow, browser, screenshot):
    folder = airflow.base / "inputs" / "ui-one-doc"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "synth_tasks/include/sample_data/markdown_qa/docs/ch03-04-comments.md", folder)
    airflow.unpause("markdown_qa")

    dialog = _open_trigger_form(browser, airflow, "markdown_qa")
    _open_section(browser, dialog, "Input")
    _type(browser, f"{dialog}//input[@name='element_input_path']", str(folder))
    _open_section(browser, dialog, "Method")
    switch = f"{dialog}//*[@id='switch:element_no_llm']"
    _click(browser, switch)
    _wait(browser, lambda d: _attribute(d, switch, "data-state") == "checked", 30)
    _click(browser, f"{dialog}//button[normalize-space()='Trigger']")

    # The UI opens the new run's page.
    _wait(browser, lambda d: "/dags/markdown_qa/runs/" in d.current_url)
    run_id = unquote(browser.current_url.split("/runs/", 1)[1].split("/", 1)[0])
    run = airflow.wait_for_run("markdown_qa", run_id, timeout_s=420)
    assert run["state"] == "success" and run["run_type"] == "manual"
    assert run["conf"]["input_path"] == str(folder) and run["conf"]["no_llm"] is True

    browser.get(f"{airflow.url}/dags/markdown_qa/runs/{quote(run_id, safe='')}")
    for task_id in MARKDOWN_QA_TASKS:  # one grid cell per task of this run
        _wait(browser, lambda d: d.find_elements(By.XPATH, f"//a[@data-testid='grid-{run_id}-{task_id}']"))
    assert browser.find_elements(By.XPATH, f"//*[@data-run-id='{run_id}']")
    _wait(browser, lambda d: _visible(d, "//*[normalize-space()='Success']"))
    screenshot(browser, "grid-markdown_qa.png")
