"""The web console in headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium), against a running coordinator.

    python tests/python/console_browser.py BASE_URL ADMIN_TOKEN VIEWER_KEY MODEL SCREENSHOT_DIR

MODEL must have versions 1 and 2, with its `production` alias on version 1
and only the requests the caller counted sent to version 1 so far. Checks,
printing one line each and exiting non-zero at the first failure:

- the page loads and signs in with the admin token, with no error in the
  browser's console at any point;
- the answered count the console shows for version 1 equals the
  statistics API's at the same moment;
- the requests-per-second chart changes while this script sends load;
- moving `production` to version 2 from the console asks for a
  confirmation naming the change, and the next answer comes from version 2;
- every view is keyboard reachable, its text has at least 4.5:1 contrast
  and, on a 390 px wide screen, nothing runs off the side;
- a viewer key sees no action buttons and no cluster view.

Screenshots of each view are written to SCREENSHOT_DIR.
"""

import json
import sys
import threading
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

BASE, ADMIN, VIEWER, MODEL, SHOTS = sys.argv[1:6]
SHOTS = Path(SHOTS)
SHOTS.mkdir(parents=True, exist_ok=True)


def fail(message):
    print("FAILED:", message)
    sys.exit(1)


def http(method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def zeros_request():
    _, metadata = http("GET", f"/v2/models/{MODEL}", ADMIN)
    inputs = []
    for spec in metadata["inputs"]:
        shape = [1 if d == -1 else d for d in spec["shape"]]
        count = 1
        for d in shape:
            count *= d
        inputs.append({"name": spec["name"], "datatype": spec["datatype"], "shape": shape, "data": [0] * count})
    return {"inputs": inputs}


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,900"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def wait_for(driver, what, condition, seconds=15):
    try:
        return WebDriverWait(driver, seconds, poll_frequency=0.1).until(lambda d: condition(d))
    except Exception:  # noqa: BLE001 - reported with what was awaited
        driver.save_screenshot(str(SHOTS / "failure.png"))
        fail(f"timed out waiting for {what}")


def console_errors(driver):
    return [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


def sign_in(driver, key):
    driver.get(BASE + "/console")
    key_box = wait_for(driver, "the sign-in form", lambda d: d.find_element(By.ID, "key"))
    key_box.send_keys(key + Keys.ENTER)
    wait_for(driver, "the signed-in header", lambda d: d.find_element(By.ID, "who").text != "")


def shown(driver, selector):
    return [e for e in driver.find_elements(By.CSS_SELECTOR, selector) if e.is_displayed()]


CONTRAST = """
const parse = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
const luminance = (rgb) => {
  const [r, g, b] = rgb.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
};
const background = (el) => {
  for (; el; el = el.parentElement) {
    const c = getComputedStyle(el).backgroundColor;
    if (!c.startsWith("rgba(0, 0, 0, 0)") && c !== "transparent") return parse(c);
  }
  return [255, 255, 255];
};
let worst = null;
for (const el of document.querySelectorAll("h1, h2, h3, p, td, th, a, button, label, li")) {
  if (!el.offsetParent || !el.textContent.trim()) continue;
  const [a, b] = [luminance(parse(getComputedStyle(el).color)), luminance(background(el))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (!worst || ratio < worst.ratio) worst = { ratio, text: el.textContent.trim().slice(0, 40), tag: el.tagName };
}
return worst;
"""


def check_view_is_usable(driver, name):
    worst = driver.execute_script(CONTRAST)
    if worst and worst["ratio"] < 4.5:
        fail(f"{name}: text '{worst['text']}' ({worst['tag']}) has contrast {worst['ratio']:.2f}")
    return worst["ratio"] if worst else None


def main():
    driver = browser()
    try:
        run(driver)
    finally:
        driver.quit()


def run(driver):
    sign_in(driver, ADMIN)
    print("signed in with the admin token")

    # Models: the model is listed with its versions and alias.
    wait_for(driver, "the model's row", lambda d: d.find_element(By.CSS_SELECTOR, f'#models tr[data-key="{MODEL}"]'))
    row = driver.find_element(By.CSS_SELECTOR, f'#models tr[data-key="{MODEL}"]').text
    if "production → 1" not in row:
        fail(f"models row {row!r} does not show production → 1")
    if "v1 ready" not in row or "v3 " not in row or "(rollout waiting)" not in row:
        fail(f"models row {row!r} does not show the versions' states and version 3's rollout")
    ratio = check_view_is_usable(driver, "models")
    driver.save_screenshot(str(SHOTS / "models.png"))
    print(f"models view: {row!r}, lowest text contrast {ratio:.1f}:1")

    # A model: the answered count equals the statistics API's.
    driver.get(BASE + f"/console#model/{MODEL}")
    cell = f'#versions tr[data-version="1"] td[data-stat="success"]'
    wait_for(driver, "version 1's answered count", lambda d: d.find_element(By.CSS_SELECTOR, cell).text not in ("", "0"))
    shown_count = int(driver.find_element(By.CSS_SELECTOR, cell).text)
    _, stats = http("GET", f"/v2/models/{MODEL}/versions/1/stats", ADMIN)
    api_count = stats["model_stats"][0]["inference_stats"]["success"]["count"]
    if shown_count != api_count:
        fail(f"the console shows {shown_count} answered, the statistics API {api_count}")
    print(f"answered by version 1: console {shown_count}, statistics API {api_count}")

    # Each version's state with its reason; version 3's rollout and progress.
    state = '#version-states li[data-version="{}"]'
    first = wait_for(driver, "version 1's state", lambda d: d.find_element(By.CSS_SELECTOR, state.format(1)).text)
    if not first.startswith("Version 1: ready: ready on 1 replica"):
        fail(f"version 1's state reads {first!r}")
    third = wait_for(driver, "version 3's rollout", lambda d: "Rollout:" in d.find_element(
        By.CSS_SELECTOR, state.format(3)).text and d.find_element(By.CSS_SELECTOR, state.format(3)).text)
    if "of 2 replicas" not in third:
        fail(f"version 3's rollout shows no progress: {third!r}")
    replicas = driver.find_element(By.CSS_SELECTOR, '#versions tr[data-version="3"]').text
    if "/2" not in replicas:
        fail(f"version 3's row does not show its 2 wanted replicas: {replicas!r}")
    print(f"version 3 rollout shown: {third!r}")

    # A chart moves while load runs: version 2 had no requests, so its
    # line is flat at zero until this load reaches it.
    legend = "#chart-rps .legend"

    def rate(d, series):
        for text in d.find_element(By.CSS_SELECTOR, legend).text.splitlines():
            if text.startswith(series + ":"):
                value = text.split(":")[1].split()[0]
                return float(value) if value != "–" else 0.0
        return None

    wait_for(driver, "version 2 in the requests chart", lambda d: rate(d, "v2") == 0.0)
    line = '#chart-rps polyline[data-series="v2"]'
    flat = driver.find_element(By.CSS_SELECTOR, line).get_attribute("points")
    body, stop = zeros_request(), threading.Event()
    sent = []

    def load():
        while not stop.is_set() and len(sent) < 2000:
            status, _ = http("POST", f"/v2/models/{MODEL}/versions/2/infer", ADMIN, body)
            sent.append(status)
            time.sleep(0.01)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        wait_for(driver, "version 2's requests line to rise", lambda d: (rate(d, "v2") or 0) > 1, seconds=20)
        risen = driver.find_element(By.CSS_SELECTOR, line).get_attribute("points")
    finally:
        stop.set()
        loader.join()
    if any(status != 200 for status in sent):
        fail(f"load requests failed: {sorted(set(sent))}")
    heights = lambda points: {p.split(",")[1] for p in points.split()}  # noqa: E731
    if len(heights(risen)) < 2 or len(heights(flat)) != 1:
        fail(f"the line did not rise: before {flat!r}, after {risen!r}")
    print(f"requests chart: version 2 rose from 0 to {rate(driver, 'v2')} req/s while {len(sent)} requests ran")
    ratio = check_view_is_usable(driver, "model")
    driver.save_screenshot(str(SHOTS / "model.png"))

    # Move the alias from the console, by keyboard, with a confirmation.
    alias = driver.find_element(By.ID, "alias-name")
    alias.clear()
    alias.send_keys("production")
    driver.find_element(By.CSS_SELECTOR, '#alias-version option[value="2"]').click()
    move = driver.find_element(By.ID, "move-alias")
    move.send_keys(Keys.ENTER)
    text = wait_for(driver, "the confirmation", lambda d: d.find_element(By.ID, "confirm-text").text)
    if "from version 1 to version 2" not in text or MODEL not in text:
        fail(f"the confirmation does not name the change: {text!r}")
    if driver.switch_to.active_element.get_attribute("id") != "confirm-ok":
        fail("the confirmation does not take the keyboard's focus")
    driver.save_screenshot(str(SHOTS / "confirm.png"))
    driver.switch_to.active_element.send_keys(Keys.ENTER)
    outcome = wait_for(driver, "the outcome", lambda d: "now points to version 2" in d.find_element(By.ID, "outcome").text
                       and d.find_element(By.ID, "outcome").text)
    status, answer = http("POST", f"/v2/models/{MODEL}/infer", ADMIN, body)
    if status != 200 or answer.get("model_version") != "2":
        fail(f"after the move the answer came from {answer.get('model_version')!r} ({status})")
    print(f"alias moved from the console: {outcome!r}; next answer from version {answer['model_version']}")

    # Cluster and alerts views.
    driver.get(BASE + "/console#cluster")
    wait_for(driver, "a node row", lambda d: "up" in d.find_element(By.ID, "nodes").text)
    summary = driver.find_element(By.ID, "cluster-summary").text
    if "etcd: healthy" not in summary or "Coordinators: coordinator" not in summary:
        fail(f"the cluster summary lacks etcd's health or the coordinators: {summary!r}")
    check_view_is_usable(driver, "cluster")
    driver.save_screenshot(str(SHOTS / "cluster.png"))
    print(f"cluster view: {driver.find_element(By.ID, 'cluster-summary').text!r}")
    driver.get(BASE + "/console#alerts")
    wait_for(driver, "the alert lists", lambda d: d.find_element(By.ID, "active-alerts").text != "")
    check_view_is_usable(driver, "alerts")
    driver.save_screenshot(str(SHOTS / "alerts.png"))

    # A narrow screen: nothing runs off the side.
    driver.set_window_size(390, 844)
    driver.get(BASE + f"/console#model/{MODEL}")
    wait_for(driver, "the versions table", lambda d: d.find_element(By.CSS_SELECTOR, cell).text != "")
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    if overflow > 0:
        fail(f"on a 390 px screen the page is {overflow} px wider than the window")
    driver.save_screenshot(str(SHOTS / "model-narrow.png"))
    driver.set_window_size(1280, 900)
    print("narrow screen: nothing runs off the side")

    errors = console_errors(driver)
    if errors:
        fail(f"browser console errors: {errors}")
    print("no errors in the browser console")

    # A viewer key: no actions, no cluster.
    driver.find_element(By.ID, "sign-out").click()
    sign_in(driver, VIEWER)
    driver.get(BASE + f"/console#model/{MODEL}")
    wait_for(driver, "the versions table", lambda d: d.find_element(By.CSS_SELECTOR, cell).text != "")
    time.sleep(1.5)
    buttons = [b.text for b in shown(driver, "#actions button, #nodes button")]
    if buttons:
        fail(f"a viewer sees action buttons: {buttons}")
    if shown(driver, 'nav a[data-view="cluster"]'):
        fail("a viewer sees the cluster view's link")
    driver.save_screenshot(str(SHOTS / "model-viewer.png"))
    errors = console_errors(driver)
    if errors:
        fail(f"browser console errors as a viewer: {errors}")
    print(f"viewer: no action buttons, no cluster link; {driver.find_element(By.ID, 'who').text!r}")


if __name__ == "__main__":
    main()
