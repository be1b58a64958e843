"""What the browser tests share: a free loopback port, JSON calls to the
gateway, the gateway binary started on loopback, and Debian's Chromium
under Selenium (headless, a throwaway profile, the page's console kept),
and Chrome's virtual authenticator for passkeys."""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if body is not None:
        request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def start_gateway(binary, port, public_url, data):
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PORTCULLIS_")}
    env = dict(inherited, PORTCULLIS_LISTEN=f"127.0.0.1:{port}", PORTCULLIS_DATA_DIR=data,
               PORTCULLIS_PUBLIC_URL=public_url, PORTCULLIS_RATE_LIMIT="off",
               PORTCULLIS_HASH_MEMORY_KIB="1024", PORTCULLIS_HASH_ITERATIONS="1", PORTCULLIS_LOG_LEVEL="warn")
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                sys.exit("the gateway did not start")
            time.sleep(0.05)


def browser(profile):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            sys.exit(f"{path} is missing: the test command installs chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def run_in_page(driver, function, *args):
    """Awaits `function(...args)` in the page; its result, or {"error": ...}."""
    script = (f"const done = arguments[arguments.length - 1];"
              f"{function}(...Array.from(arguments).slice(0, -1))"
              f".then(done, e => done({{error: String(e && e.stack || e)}}));")
    return driver.execute_async_script(script, *args)


def expect(condition, what, detail=None):
    if not condition:
        raise AssertionError(f"{what}: {json.dumps(detail, indent=1) if detail is not None else ''}")
    print(f"ok: {what}")


@contextlib.contextmanager
def running_gateway(binary, port, public_url):
    """The gateway binary on 127.0.0.1:`port` with a fresh data directory,
    stopped and its directory removed afterwards."""
    data = tempfile.mkdtemp(prefix="browser-gateway-")
    gateway = start_gateway(binary, port, public_url, data)
    try:
        yield gateway
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def browser_session(out_dir, name):
    """A browser with a throwaway profile; a failure inside leaves a
    screenshot, `<name>-failure.png`, in `out_dir`."""
    profile = tempfile.mkdtemp(prefix="browser-profile-")
    driver = None
    try:
        driver = browser(profile)
        yield driver
    except Exception:
        if driver is not None:
            shot = out_dir / f"{name}-failure.png"
            driver.save_screenshot(str(shot))
            print(f"screenshot: {shot}", file=sys.stderr)
        raise
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def authenticator(driver):
    """Chrome's virtual authenticator: a platform passkey that verifies its user."""
    options = VirtualAuthenticatorOptions()
    options.protocol = VirtualAuthenticatorOptions.Protocol.CTAP2
    options.transport = VirtualAuthenticatorOptions.Transport.INTERNAL
    options.has_resident_key = True
    options.has_user_verification = True
    options.is_user_verified = True
    options.is_user_consenting = True
    driver.add_virtual_authenticator(options)
