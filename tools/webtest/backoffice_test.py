#!/usr/bin/env python3
"""Drives the back office in headless Debian chromium (Selenium + chromium-driver).

Given a running tallyd with --http, an ops key, an admin key and a service key, and a
ledger holding partner `acme` (named `<script>…`), account `cash` with more than one
statement page and one unmatched reconciliation item: signs in, opens the partner, pages
the statement, resolves the item and sees it in the log, checks that a POST without the
CSRF token is refused and that a service key cannot sign in. Screenshots go to --artifacts.
Exit 0 when every step passed; 1 naming the first that did not.
"""
import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def fail(msg):
    print("backoffice_test: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    for k in ("ops", "admin", "service"):
        ap.add_argument("--%s-key" % k, required=True)
        ap.add_argument("--%s-secret" % k, required=True)
    ap.add_argument("--artifacts", required=True)
    a = ap.parse_args()
    os.makedirs(a.artifacts, exist_ok=True)

    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,1600", "--no-first-run", "--disable-extensions"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(60)
    step = [0]

    def shot(name):
        step[0] += 1
        driver.save_screenshot(os.path.join(a.artifacts, "%02d-%s.png" % (step[0], name)))

    def sign_in(key, secret):
        driver.get(a.url + "/signin")
        driver.find_element(By.ID, "key").send_keys(key)
        driver.find_element(By.ID, "secret").send_keys(secret)
        driver.find_element(By.ID, "signin").click()

    def sign_out():
        driver.find_element(By.ID, "signout").click()

    try:
        # A service key is refused, on the page.
        sign_in(a.service_key, a.service_secret)
        shot("service-key-refused")
        if "SERVICE_KEY_REFUSED" not in driver.page_source:
            fail("a service key was not refused: " + driver.current_url)

        # Sign in as ops, open the partner: its markup name renders as text.
        sign_in(a.ops_key, a.ops_secret)
        if not driver.current_url.endswith("/partners"):
            fail("sign-in did not land on /partners: " + driver.current_url)
        shot("partners")
        cookie = driver.get_cookie("tally_session")
        if not cookie or not cookie.get("httpOnly") or cookie.get("sameSite") != "Strict":
            fail("session cookie flags: %r" % (cookie,))
        link = driver.find_element(By.CSS_SELECTOR, "#partners a")
        if link.text != "acme":
            fail("first partner is %r" % link.text)
        link.click()
        shot("partner")
        title = driver.find_element(By.TAG_NAME, "h1").text
        if "<script>alert(1)</script>" not in title:
            fail("the partner's name is not shown as text: %r" % title)
        if "&lt;script&gt;" not in driver.page_source:
            fail("the partner's name is not escaped in the page source")

        # The account page and its statement, paged.
        driver.find_element(By.LINK_TEXT, "cash").click()
        shot("account")
        if not driver.find_elements(By.CSS_SELECTOR, "svg.chart polyline"):
            fail("no balance chart on the account page")
        first = driver.find_elements(By.CSS_SELECTOR, "#statement tr td:first-child")[0].text
        driver.find_element(By.ID, "next").click()
        shot("statement-page-2")
        second = driver.find_elements(By.CSS_SELECTOR, "#statement tr td:first-child")[0].text
        if int(second) <= int(first):
            fail("the next statement page starts at seq %s after %s" % (second, first))

        # A POST without the CSRF token, with the session's cookie: refused, nothing changed.
        data = urllib.parse.urlencode({"account": "cash", "item": "1", "reason": "x"}).encode()
        req = urllib.request.Request(a.url + "/recon/resolve", data=data, method="POST")
        req.add_header("Cookie", "tally_session=" + cookie["value"])
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            urllib.request.urlopen(req, timeout=30)
            fail("a POST without the CSRF token was accepted")
        except urllib.error.HTTPError as e:
            if e.code != 403 or e.headers.get("X-Tally-Error") != "CSRF_FAILED":
                fail("a CSRF-less POST answered %d %s" % (e.code, e.headers.get("X-Tally-Error")))

        # Resolve the unmatched item.
        driver.find_element(By.ID, "recon").click()
        driver.get(a.url + "/recon?account=cash&state=unmatched")
        shot("recon-unmatched")
        row = driver.find_element(By.ID, "item-1")
        row.find_element(By.NAME, "reason").send_keys("bank fee, booked by hand")
        row.find_element(By.CSS_SELECTOR, "form.resolve button").click()
        shot("recon-resolved")
        row = driver.find_element(By.ID, "item-1")
        if row.find_element(By.CLASS_NAME, "state").text != "resolved":
            fail("item 1 is not resolved after the form")
        if "bank fee, booked by hand" not in row.text:
            fail("the resolution's reason is not shown: %r" % row.text)
        sign_out()

        # The resolution is a log event (the admin reads the log; ops may not).
        sign_in(a.admin_key, a.admin_secret)
        driver.get(a.url + "/log")
        seen = []
        for _ in range(100):
            seen += [t.text for t in driver.find_elements(By.CSS_SELECTOR, "#log td.type")]
            nxt = driver.find_elements(By.ID, "next")
            if not nxt:
                break
            nxt[0].click()
        shot("log")
        if not any("resolved" in t for t in seen):
            fail("no reconciliation resolution in the log: %r" % seen[-5:])
        driver.get(a.url + "/audit")
        shot("audit")
        if not driver.find_element(By.ID, "vkey").text:
            fail("no verifier key on the audit page")
        sign_out()
    finally:
        driver.quit()
    print("backoffice_test: ok (%d screenshots in %s)" % (step[0], a.artifacts))


if __name__ == "__main__":
    main()
