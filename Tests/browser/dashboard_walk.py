#!/usr/bin/env python3
"""Walks keiji's web dashboard in a real headless Chromium (selenium + chromedriver), for DashboardBrowserTests.

Usage: dashboard_walk.py URL TOKEN_FILE TASK SCREENSHOT_DIR

Logs in with the dashboard token (TOKEN_FILE), waits for TASK on the overview, opens its page, waits for a new run to appear
(live update, or a reload if none comes), clicks Disable, waits for the page to say so, opens the system page by its link, logs out and finds the
session's pages gone, and saves a PNG of the overview, the task page and the system page. Every wait is on a condition with a generous timeout; nothing is
timed. Exit status 0 when every step passed; otherwise the step that failed is printed and the status is 1.
"""
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 60
# live.js swaps the live sections while the test looks at them: an element found a moment ago may be gone.
REPLACED = (StaleElementReferenceException, NoSuchElementException)


def step(message):
    print("dashboard_walk: " + message, flush=True)


def runs_count(driver):
    try:
        return int(driver.find_element(By.ID, "runs").get_attribute("data-count"))
    except (StaleElementReferenceException, WebDriverException, ValueError, TypeError):
        return -1


def main():
    url, token_file, task, shots = sys.argv[1:5]
    token = open(token_file).read().strip()
    os.makedirs(shots, exist_ok=True)
    # Chromium leaves its singleton directories in $TMPDIR; keep them inside the folder the test removes.
    os.environ["TMPDIR"] = os.path.join(shots, "tmp")
    os.makedirs(os.environ["TMPDIR"], exist_ok=True)
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800", "--disable-gpu"):
        options.add_argument(argument)
    if os.path.exists("/usr/bin/chromium"):
        options.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
    driver.set_window_size(1280, 800)
    try:
        wait = WebDriverWait(driver, WAIT, ignored_exceptions=REPLACED)
        step("opening " + url + " (expecting the login page)")
        driver.get(url + "/")
        wait.until(EC.presence_of_element_located((By.ID, "token")))
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.ID, "login").click()

        step("overview: waiting for task " + task)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, 'tr[data-task="%s"]' % task)))
        # Wait until the task has runs to chart, so the screenshot shows some.
        row = 'tr[data-task="%s"]' % task
        wait.until(lambda d: "no runs yet" not in d.find_element(By.CSS_SELECTOR, row).get_attribute("innerHTML"))
        driver.save_screenshot(os.path.join(shots, "overview.png"))

        step("opening the task page")

        def click_task_link(d):
            d.find_element(By.LINK_TEXT, task).click()
            return True

        wait.until(click_task_link)
        wait.until(EC.presence_of_element_located((By.ID, "runs")))
        before = wait.until(lambda d: runs_count(d) if runs_count(d) >= 0 else False)
        last = wait.until(lambda d: d.find_element(By.ID, "runs").get_attribute("data-last-run") or False)
        step("task page shows %d runs (last %s); waiting for a new one" % (before, last))

        def new_run(d):
            try:
                return d.find_element(By.ID, "runs").get_attribute("data-last-run") != last
            except (StaleElementReferenceException, WebDriverException):
                return False

        def live_or_reload(condition, live, missing, reloaded):
            """Waits 30 s for `condition` by live update, else reloads once and waits again; says which way."""
            try:
                WebDriverWait(driver, 30, ignored_exceptions=REPLACED).until(condition)
                step(live)
            except TimeoutException:
                step(missing)
                driver.refresh()
                wait.until(condition)
                step(reloaded)

        live_or_reload(new_run, "a new run appeared by live update", "no live update within 30 s; reloading",
                       "a new run appeared after a reload")
        # A few runs for the chart in the screenshot (the task runs every 2 s).
        wait.until(lambda d: runs_count(d) >= 4)
        driver.save_screenshot(os.path.join(shots, "task.png"))

        step("clicking Disable")
        driver.find_element(By.ID, "action-disable").click()
        # The page after the click may show the run still going ("running" wins over "disabled" until it ends);
        # the live update turns it to "disabled", a reload does too if none came.
        disabled = lambda d: d.find_element(By.ID, "task-state").text == "disabled"
        live_or_reload(disabled, "the page says disabled", "not shown as disabled within 30 s; reloading",
                       "the page says disabled after a reload")

        step("opening the system page (by its link: the session is in the path, /s/<id>/)")
        if "/s/" not in driver.current_url:
            raise AssertionError("the page is not under the session's path: " + driver.current_url)
        driver.find_element(By.LINK_TEXT, "System").click()
        wait.until(EC.presence_of_element_located((By.XPATH, "//h2[text()='Last recovery']")))
        driver.save_screenshot(os.path.join(shots, "system.png"))
        session_url = driver.current_url

        step("logging out")
        driver.find_element(By.ID, "logout").click()
        wait.until(EC.presence_of_element_located((By.ID, "token")))
        driver.get(session_url)
        wait.until(EC.presence_of_element_located((By.ID, "token")))
        step("the session's pages lead to the login after the logout")
        step("screenshots in " + shots)
        return 0
    except Exception as error:  # the step printed last is the one that failed
        step("FAILED: %r" % (error,))
        try:
            driver.save_screenshot(os.path.join(shots, "failure.png"))
            step("page at failure: " + driver.current_url + "\n" + driver.page_source[:4000])
        except WebDriverException:
            pass
        return 1
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
