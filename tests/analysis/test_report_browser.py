"""The report in a real headless browser: Chromium (Debian's package) driven through its
ChromeDriver. The page must load with no console errors, draw every plot, fetch nothing, and
show hostile text as text.

Skipped, loudly, only when no Chromium (or no ChromeDriver) is installed; `.ci/run` installs
both and sets LSHPROF_REQUIRE_BROWSER=1, which turns that skip into a failure, so CI always
runs it. Set LSHPROF_CHROMIUM / LSHPROF_CHROMEDRIVER to use other builds.
"""

import json
import os
import shutil
import sys
import time
import warnings

import pytest

from lshprof.analysis.report import write_report

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
         # a closed network: no background connections, no update checks
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-quic", "--no-first-run", "--window-size=1300,900"]


def _find(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env]
    for n in names:
        path = shutil.which(n)
        if path:
            return path
    return None


CHROMIUM = _find("LSHPROF_CHROMIUM", "chromium", "chromium-browser", "google-chrome")
DRIVER = _find("LSHPROF_CHROMEDRIVER", "chromedriver")


def _skip_loudly(why: str):
    if os.environ.get("LSHPROF_REQUIRE_BROWSER") == "1":      # set by .ci/run
        pytest.fail(f"{why}, and LSHPROF_REQUIRE_BROWSER=1 says this run must check the "
                    "report in a browser", pytrace=False)
    msg = (f"BROWSER TEST SKIPPED: {why}. The report was not checked in a browser. Install "
           "Debian's chromium and chromium-driver (apt-get install chromium chromium-driver), "
           "as .ci/run does.")
    print(f"\n*** {msg}", file=sys.stderr)
    warnings.warn(msg, pytest.PytestWarning)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        _skip_loudly("no Chromium found on PATH")
    if DRIVER is None:
        _skip_loudly("Chromium is installed but ChromeDriver is not")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip_loudly("selenium is not installed (pip install -e '.[test]')")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    # browser: the console; performance: DevTools events, to see every request made
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # paths given: selenium's own driver manager (which downloads) never runs
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def pages(tmp_path_factory, ci_run_two_seeds, ci_run):
    """Reports of copies of the shared ci runs (tests/conftest.py), named ci-a and ci-b."""
    base = tmp_path_factory.mktemp("browser")
    a, b = base / "ci-a", base / "ci-b"
    shutil.copytree(ci_run_two_seeds, a)  # lshprof run ci -q --seeds 0 1 --no-report
    shutil.copytree(ci_run, b)            # lshprof run ci -q
    evil = base / "evil"
    shutil.copytree(b, evil)
    meta = json.loads((evil / "run.json").read_text())
    meta["scenario"]["name"] = "<script>alert(1)</script>"
    meta["scenario"]["description"] = "<img src=x onerror=alert(2)>"
    (evil / "run.json").write_text(json.dumps(meta))
    return {"two": write_report([a, b], base / "two.html"),
            "one": write_report([a], base / "one.html"),
            "beside": write_report([a], base / "js" / "beside.html", plotlyjs="beside"),
            "evil": write_report([evil], base / "evil.html")}


def load(driver, path, expected_plots: int):
    """Open ``path``, wait for the plots, and return the console messages."""
    driver.get_log("browser")                                   # drop older messages
    driver.get_log("performance")
    driver.get(path.as_uri())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        n = driver.execute_script(
            "return document.querySelectorAll('.js-plotly-plot .main-svg').length")
        if n >= expected_plots:
            break
        time.sleep(0.2)
    return driver.get_log("browser")


def plot_counts(driver) -> list[int]:
    """Per plot on the page: how many traces plotly drew into it."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".map(p => p.querySelectorAll('g.trace').length)")


def requests(driver) -> list[str]:
    """Every URL the page asked for since it was opened (DevTools network events)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def test_two_run_report_renders_every_plot(browser, pages):
    log = load(browser, pages["two"], 8)
    severe = [e for e in log if e["level"] == "SEVERE"]
    assert severe == [], severe
    counts = plot_counts(browser)
    assert len(counts) == 8 and all(c > 0 for c in counts), counts
    ids = browser.execute_script(
        "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => p.id)")
    assert ids == [f"plot-{i}" for i in range(1, 9)]
    assert requests(browser) == [pages["two"].as_uri()]         # the page, and nothing else
    assert browser.execute_script("return document.querySelectorAll('.missing').length") == 0
    # the claims table is there, one row per claim and run
    assert browser.execute_script(
        "return document.querySelectorAll('table.claims tr[data-claim]').length") == 12


def test_one_run_report_and_its_not_measured_box(browser, pages):
    log = load(browser, pages["one"], 7)
    assert [e for e in log if e["level"] == "SEVERE"] == []
    counts = plot_counts(browser)
    assert len(counts) == 7 and all(c > 0 for c in counts), counts
    missing = browser.execute_script(
        "return Array.from(document.querySelectorAll('.missing')).map(m => m.innerText)")
    assert len(missing) == 1 and missing[0].startswith("not measured: one run given")


def test_sortable_table(browser, pages):
    load(browser, pages["one"], 7)
    col = browser.execute_script(
        "const t = document.querySelector('table.sortable');"
        "const i = Array.from(t.tHead.rows[0].cells).findIndex(c => c.innerText.startsWith("
        "'test accuracy')); t.tHead.rows[0].cells[i].click();"
        "return Array.from(t.tBodies[0].rows).map(r => parseFloat(r.cells[i].dataset.v));")
    assert len(col) == 6 and col == sorted(col)


def test_plotly_beside_the_page(browser, pages):
    log = load(browser, pages["beside"], 7)
    assert [e for e in log if e["level"] == "SEVERE"] == []
    assert len(plot_counts(browser)) == 7
    fetched = requests(browser)
    js = next(pages["beside"].parent.glob("plotly-*.min.js"))
    assert fetched == [pages["beside"].as_uri(), js.as_uri()]


def test_hostile_text_is_shown_as_text(browser, pages):
    from selenium.common.exceptions import NoAlertPresentException

    log = load(browser, pages["evil"], 7)
    assert [e for e in log if e["level"] == "SEVERE"] == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    text = browser.execute_script("return document.body.innerText")
    assert "<script>alert(1)</script>" in text and "<img src=x onerror=alert(2)>" in text
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
