#!/usr/bin/env python3
"""The console and account pages in a real browser: Debian's Chromium,
driven by Selenium, against the gateway binary serving its own pages on
http://localhost:<port> (its public URL, as passkeys need).

The account page: sign in with a password, revoke another session (its
token then fails on /auth/me), a validation error shown next to the field
the API names, a profile change, two-factor set up from the secret on the
page (the QR code drawn there), a passkey added with Chrome's virtual
authenticator and renamed, an API key created (shown once, working on
/verify) and revoked (then refused), sign out (the session is revoked),
sign in with the password and a backup code the page showed, sign in with
the new passkey, remove it. The
console: an admin signs in (two-factor with a backup code), sees the
overview show the API's figures (a refused sign-in made first), creates a
project (an invalid id first, its error next to the field), changes a
setting (a refused value first), finds a user by address, sees their
sessions, keys and passkeys, and disables them (their token then fails on /verify), reads that action in the audit
log, deletes the project after typing its id; a user who is no admin is
turned away. On every page: nothing is loaded from outside the gateway,
the console shows no script error or policy violation, and nothing
overflows at 375 px or 1440 px. Screenshots of the whole account page and
the console's overview (README's) go to the output directory, and one of
the failure if a check fails.

Usage: tests/browser/pages.py GATEWAY_BINARY [OUTPUT_DIR]
"""
import base64
import json
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pyotp
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from common import authenticator, browser_session, call, expect, free_port, running_gateway

PASSWORD = "a browser password"
ADMIN = "root@pages.test"


def session_of(token):
    """The `sid` claim of an access token (the test reads its own tokens)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


def verify(gateway, credential):
    """`/verify`'s status and identity headers for a credential."""
    request = urllib.request.Request(f"{gateway}/api/v1/verify", headers={"authorization": f"Bearer {credential}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def wait(driver, condition, what, seconds=20):
    try:
        # A card drawn again between finding an element and reading it leaves it stale: look again.
        waiting = WebDriverWait(driver, seconds, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException])
        return waiting.until(lambda d: condition(d))
    except Exception as error:
        raise AssertionError(f"timed out waiting for {what}") from error


def form_named(driver, name):
    return wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, f"form[aria-label='{name}']"), f"the form {name}")


def input_labelled(form, label):
    """The control a label names (labels are how a user finds a field)."""
    tag = form.find_element(By.XPATH, f".//label[normalize-space()='{label}']")
    return form.find_element(By.ID, tag.get_attribute("for"))


def fill(form, values):
    for label, value in values.items():
        control = input_labelled(form, label)
        control.clear()
        control.send_keys(value)


def submit(form):
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def error_next_to(driver, form, label):
    """The error text under the field, once the API's answer placed it there."""
    control = input_labelled(form, label)
    error = driver.find_element(By.ID, control.get_attribute("aria-describedby"))
    text = wait(driver, lambda d: error.text.strip(), f"an error next to {label}")
    return text, control.get_attribute("aria-invalid")


def refused_then_accepted(driver, form, label, refused, accepted, what):
    """A value the form refuses, its reason next to the field, then one it takes."""
    fill(form, {label: refused})
    submit(form)
    text, invalid = error_next_to(driver, form, label)
    expect(invalid == "true", f"{what}: {text!r}")
    fill(form, {label: accepted})
    submit(form)


def heading(driver, text):
    return wait(driver, lambda d: any(h.text == text for h in d.find_elements(By.TAG_NAME, "h1")), f"the heading {text}")


def status_of(driver, card, text):
    """Waits until the card's status line says `text`."""
    selector = f"section[aria-labelledby='{card}'] > .status"
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, selector).text == text, f"{text!r} in {card}")


def rows(driver, card):
    return driver.find_elements(By.CSS_SELECTOR, f"section[aria-labelledby='{card}'] table tbody tr")


def sign_in(driver, email, password):
    form = form_named(driver, "Sign in with a password")
    fill(form, {"Email": email, "Password": password})
    submit(form)


def page_checks(driver, origin, page):
    """Nothing from outside the gateway, no script error, no overflow."""
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [r for r in resources if not r.startswith(origin + "/")]
    expect(not outside, f"{page} loads nothing from outside the gateway ({len(resources)} resources)", outside)
    # A refused API call is logged as a failed load; script errors and policy violations are the failures.
    problems = [e["message"] for e in driver.get_log("browser")
                if e["level"] == "SEVERE" and "Failed to load resource: the server responded" not in e["message"]]
    expect(not problems, f"{page}: no script error or Content-Security-Policy violation", problems)
    for width in (375, 1440):
        driver.set_window_size(width, 900)
        overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        expect(overflow <= 0, f"{page} fits {width} px without sideways scrolling", overflow)


def screenshot(driver, path, whole=False):
    """The page from its top, at desk width: the first screen, or the whole page (up to 4,000 px)."""
    driver.set_window_size(1440, 900)
    if whole:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1440, min(height + 140, 4000))
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(path))
    driver.set_window_size(1440, 900)


def account_journey(driver, origin, gateway, out_dir):
    status, registered = call("POST", f"{gateway}/api/v1/auth/register",
                              {"email": ADMIN, "password": PASSWORD, "name": "Ada"})
    expect(status == 201, "the first account (a superadmin) is registered", registered)
    other = registered["token"]

    driver.get(origin + "/account/")
    sign_in(driver, ADMIN, PASSWORD)
    heading(driver, "Hello, Ada")
    expect(True, "the account page signs in with a password")

    listed = wait(driver, lambda d: rows(d, "sessions-title"), "the sessions table")
    expect(len(listed) == 2, "both sessions are listed", len(listed))
    driver.find_element(By.CSS_SELECTOR, f"button[data-session='{session_of(other)}']").click()
    status_of(driver, "sessions-title", "Session revoked.")
    expect(len(rows(driver, "sessions-title")) == 1, "the revoked session leaves the list")
    status, _ = call("GET", f"{gateway}/api/v1/auth/me", token=other)
    expect(status == 401, "the revoked session's token stops working", status)

    password = form_named(driver, "Change password")
    fill(password, {"Current password": PASSWORD, "New password": "short"})
    submit(password)
    text, invalid = error_next_to(driver, password, "New password")
    expect(invalid == "true", f"the API's complaint sits next to the new password: {text!r}")

    profile = form_named(driver, "Profile")
    fill(profile, {"Name": "Ada Lovelace"})
    submit(profile)
    wait(driver, lambda d: profile.find_element(By.CSS_SELECTOR, ".status").text == "Profile saved.", "the saved profile")
    status, fresh = call("POST", f"{gateway}/api/v1/auth/login", {"email": ADMIN, "password": PASSWORD})
    status, me = call("GET", f"{gateway}/api/v1/auth/me", token=fresh["token"])
    expect(me["name"] == "Ada Lovelace", "the profile change is stored", me)

    backup = two_factor(driver, gateway, fresh["token"])
    passkeys_and_keys(driver, gateway, fresh["token"])
    page_checks(driver, origin, "the account page")

    driver.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()
    form_named(driver, "Sign in with a password")
    status, listed = call("GET", f"{gateway}/api/v1/auth/sessions", token=fresh["token"])
    expect(status == 200 and len(listed["sessions"]) == 1, "signing out revoked the page's session", listed)

    sign_in(driver, ADMIN, PASSWORD)
    challenge = form_named(driver, "Two-factor code")
    fill(challenge, {"Code": backup[0]})
    submit(challenge)
    heading(driver, "Hello, Ada Lovelace")
    expect(True, "with two-factor on, signing in asks for a code, and a backup code shown on the page passes")
    wait(driver, lambda d: rows(d, "sessions-title") and d.find_elements(By.CSS_SELECTOR, "button[data-remove]"),
         "the account page drawn whole")
    screenshot(driver, out_dir / "account.png", whole=True)
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()

    wait(driver, lambda d: d.find_element(By.XPATH, "//button[normalize-space()='Passkey']"), "the sign-in panel").click()
    submit(form_named(driver, "Sign in with a passkey"))
    heading(driver, "Hello, Ada Lovelace")
    expect(True, "the passkey made on the page signs in, usernameless")
    passkey = wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "button[data-remove]"), "the passkey's row")
    passkey.click()
    status_of(driver, "passkeys-title", "Passkey Work laptop removed.")
    status, listed = call("GET", f"{gateway}/api/v1/auth/passkey/list", token=fresh["token"])
    expect(listed["passkeys"] == [], "the passkey is removed", listed)
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()
    form_named(driver, "Sign in with a password")
    return fresh["token"], backup[1]


def two_factor(driver, gateway, token):
    """Two-factor set up from the page: the secret read off it (beside the
    QR code drawn in the page), the app's code typed in, the backup codes
    shown once. Returns them."""
    driver.find_element(By.XPATH, "//button[normalize-space()='Set up two-factor']").click()
    secret = wait(driver, lambda d: d.find_element(By.ID, "totp-secret").text, "the two-factor secret")
    qr = driver.find_element(By.CSS_SELECTOR, "img.qr")
    drawn = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", qr)
    expect(qr.get_attribute("src").startswith("data:image/") and drawn > 0, "the QR code is drawn in the page", drawn)
    confirm = form_named(driver, "Confirm two-factor")
    fill(confirm, {"Code from your app": pyotp.TOTP(secret).now()})
    submit(confirm)
    status_of(driver, "twofa-title", "Two-factor is on.")
    codes = [c.text for c in wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#backup-codes code"), "backup codes")]
    status, state = call("GET", f"{gateway}/api/v1/auth/2fa/status", token=token)
    expect(state == {"enabled": True, "backup_codes_remaining": len(codes)} and len(codes) == 10,
           "two-factor is on, with the backup codes the page showed", state)
    return codes


def passkeys_and_keys(driver, gateway, token):
    """A passkey added with the virtual authenticator and renamed; an API
    key made (its full value shown once), used on /verify, and revoked."""
    authenticator(driver)
    add = form_named(driver, "Add a passkey")
    fill(add, {"Passkey name": "Test laptop"})
    submit(add)
    status_of(driver, "passkeys-title", "Passkey Test laptop added.")
    driver.find_element(By.CSS_SELECTOR, "button[data-rename]").click()
    rename = form_named(driver, "Rename Test laptop")
    fill(rename, {"New name": "Work laptop"})
    submit(rename)
    status_of(driver, "passkeys-title", "Passkey renamed.")
    status, listed = call("GET", f"{gateway}/api/v1/auth/passkey/list", token=token)
    expect([p["name"] for p in listed["passkeys"]] == ["Work laptop"], "the passkey is added and renamed", listed)

    create = form_named(driver, "New API key")
    fill(create, {"Key name": "deploy", "Scopes (separated by spaces)": "read write"})
    Select(input_labelled(create, "Expires after")).select_by_visible_text("30 days")
    submit(create)
    key = wait(driver, lambda d: d.find_element(By.ID, "new-key").text, "the new key, shown once")
    status, headers = verify(gateway, key)
    expect(status == 200 and headers.get("x-auth-scopes") == "read write", "the shown key works on /verify", headers)
    status, keys = call("GET", f"{gateway}/api/v1/auth/api-keys", token=token)
    made = keys["api_keys"][0]
    expect(made["expires_at"] is not None and key not in json.dumps(keys), "listed with its expiry, never in full", keys)
    driver.find_element(By.CSS_SELECTOR, f"button[data-key='{made['id']}']").click()
    status_of(driver, "keys-title", "API key deploy revoked.")
    expect(not driver.find_elements(By.ID, "new-key"), "the full key is gone from the page")
    status, _ = verify(gateway, key)
    expect(status == 401, "the revoked key stops working on /verify", status)


def console_journey(driver, origin, gateway, admin_token, backup, out_dir):
    status, _ = call("POST", f"{gateway}/api/v1/auth/login", {"email": ADMIN, "password": "not the password"})
    expect(status == 401, "a wrong password is refused (the overview counts it)", status)
    driver.get(origin + "/console/")
    sign_in(driver, ADMIN, PASSWORD)
    challenge = form_named(driver, "Two-factor code")
    fill(challenge, {"Code": backup})
    submit(challenge)
    overview_shows_the_apis_figures(driver, gateway, admin_token)
    screenshot(driver, out_dir / "console.png")
    driver.find_element(By.LINK_TEXT, "Projects").click()
    heading(driver, "Projects")
    wait(driver, lambda d: any(c.text == "default" for c in d.find_elements(By.CSS_SELECTOR, "table code")),
         "the default project in the list")
    expect(True, "an admin signs in to the console and sees the projects")

    create = form_named(driver, "New project")
    fill(create, {"Name": "Mobile", "Id (optional: made from the name)": "Not An Id!"})
    submit(create)
    text, invalid = error_next_to(driver, create, "Id (optional: made from the name)")
    expect(invalid == "true", f"an invalid id is refused next to its field: {text!r}")
    fill(create, {"Id (optional: made from the name)": "mobile"})
    submit(create)
    created = "section[aria-labelledby='create-title'] .status"
    wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, created).text == "Project mobile created.",
         "the project to be created")
    status, project = call("GET", f"{gateway}/api/v1/admin/projects/mobile", token=admin_token)
    expect(status == 200 and project["name"] == "Mobile", "the project exists in the API", project)
    wait(driver, lambda d: any(c.text == "mobile" for c in d.find_elements(By.CSS_SELECTOR, "table code")),
         "the new project in the list")

    manage_project(driver, gateway, admin_token)
    page_checks(driver, origin, "the console")
    driver.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()

    status, _ = call("POST", f"{gateway}/api/v1/auth/register",
                     {"email": "user@pages.test", "password": PASSWORD, "name": "Bob"})
    expect(status == 201, "a second account (a user) is registered", status)
    sign_in(driver, "user@pages.test", PASSWORD)
    heading(driver, "Not an administrator")
    expect(not driver.find_elements(By.CSS_SELECTOR, "form[aria-label='New project']"),
           "a user who is no admin gets no console")


def overview_shows_the_apis_figures(driver, gateway, admin_token):
    """The console opens on the overview: the default project's figures as
    the API gives them (a failed sign-in was made first, so none is zero)."""
    heading(driver, "Overview")
    status, figures = call("GET", f"{gateway}/api/v1/admin/overview?project=default", token=admin_token)
    expect(status == 200 and figures["failed_logins_last_hour"] >= 1 and figures["logins_last_hour"] >= 1,
           "the API counts the sign-ins and the failed one", figures)
    shown = {"Accounts": "accounts", "Sign-ins": "logins_last_hour", "Failed sign-ins": "failed_logins_last_hour",
             "Active sessions": "active_sessions"}

    def on_page(d):
        return {name: d.find_element(By.CSS_SELECTOR, f"[data-figure='{name}'] .number").text for name in shown}
    # Nothing signs in between the page's read and the test's.
    page = wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "[data-figure] .number")) == 4 and on_page(d),
                "the overview's four figures")
    for name, key in shown.items():
        expect(page[name] == str(figures[key]), f"the overview shows {name} as the API counts them", (page, figures))


def manage_project(driver, gateway, admin_token):
    """A setting changed (a refused value first), a user found by address
    and disabled (their token stops on /verify), the admin's action read in
    the audit log, and the project deleted after its id is typed."""
    driver.find_element(By.LINK_TEXT, "mobile").click()
    heading(driver, "Project mobile")
    settings = form_named(driver, "Project settings")
    refused_then_accepted(driver, settings, "access ttl", "10", "900", "a refused setting is explained next to its field")
    wait(driver, lambda d: settings.find_element(By.CSS_SELECTOR, ".status").text == "Settings saved.", "saved settings")
    status, project = call("GET", f"{gateway}/api/v1/admin/projects/mobile", token=admin_token)
    expect(project["settings"]["access_ttl"] == 900, "the setting is changed in the API", project["settings"])

    status, carol = call("POST", f"{gateway}/api/v1/projects/mobile/auth/register",
                         {"email": "carol@mobile.test", "password": PASSWORD, "name": "Carol"})
    expect(status == 201, "a user of the project signs up", carol)
    expect(verify(gateway, carol["token"])[0] == 200, "their token passes /verify")
    driver.find_element(By.LINK_TEXT, "Users of this project").click()
    search = form_named(driver, "Find a user")
    fill(search, {"Email": "Carol@Mobile.test"})
    submit(search)
    wait(driver, lambda d: [r.text for r in rows(d, "users-title")] and "carol@mobile.test" in rows(d, "users-title")[0].text
         and len(rows(d, "users-title")) == 1, "the user found by address")
    driver.find_element(By.CSS_SELECTOR, f"button[data-user='{carol['user']['id']}']").click()
    sessions = "[data-holding='sessions'] tbody tr"
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, sessions)) == 1, "the user's one session in the detail")
    wait(driver, lambda d: "none" in d.find_element(By.CSS_SELECTOR, "[data-holding='passkeys']").text, "no passkeys")
    expect(True, "the user's detail lists their session, keys and passkeys")
    driver.find_element(By.XPATH, "//button[normalize-space()='Disable user']").click()
    status_of(driver, "users-title", "carol@mobile.test is disabled: every session ended.")
    status, _ = verify(gateway, carol["token"])
    expect(status == 401, "the disabled user's token stops working on /verify", status)

    driver.find_element(By.LINK_TEXT, "Audit log").click()
    filters = form_named(driver, "Filter the audit log")
    Select(input_labelled(filters, "Kind")).select_by_visible_text("user_changed_by_admin")
    submit(filters)
    wait(driver, lambda d: any("user_changed_by_admin" in r.text for r in rows(d, "audit-title")), "the admin's action")
    expect(True, "the console shows the admin's action in the audit log")

    driver.get(driver.current_url.split("#")[0] + "#project/mobile")
    heading(driver, "Project mobile")
    delete = form_named(driver, "Delete project")
    refused_then_accepted(driver, delete, "Type mobile to confirm", "mobil", "mobile",
                          "deletion waits for the id typed exactly")
    heading(driver, "Projects")
    status, _ = call("GET", f"{gateway}/api/v1/admin/projects/mobile", token=admin_token)
    expect(status == 404, "the typed deletion removed the project", status)


def main():
    binary = sys.argv[1]
    out_dir = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="browser-test-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    origin = f"http://localhost:{port}"
    gateway_url = f"http://127.0.0.1:{port}"
    with running_gateway(binary, port, origin), browser_session(out_dir, "pages") as driver:
        driver.set_window_size(1440, 900)
        admin_token, backup = account_journey(driver, origin, gateway_url, out_dir)
        console_journey(driver, origin, gateway_url, admin_token, backup, out_dir)
    print(f"the pages in a real browser: all checks passed (screenshots in {out_dir})")


if __name__ == "__main__":
    main()
