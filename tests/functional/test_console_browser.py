"""The web console in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, through Selenium): log in, create a bucket, upload through the file
input and watch the progress reach 100%, preview, share with a second project and see
it there, make it public and fetch the link anonymously, make an S3 key and use it with
boto3, delete everything; names with HTML in them render as text in the DOM.

Without Chromium these tests skip, unless ``LAMPI_REQUIRE_BROWSER=1`` (set by .ci/run),
which makes a missing browser a failure. Screenshots go to the test's temporary
directory, or to ``LAMPI_CONSOLE_SCREENSHOTS`` if set.
"""

from __future__ import annotations

import os
import shutil
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import swiftclient

from tests.functional.conftest import LampiServer, free_port
from tests.functional.console_helpers import rc_password
from tests.functional.swift_helpers import new_account

WAIT = 90  # seconds: a busy machine is slow


def _missing(why: str) -> None:
    if os.environ.get("LAMPI_REQUIRE_BROWSER") == "1":
        pytest.fail(f"LAMPI_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install '.[test]')")
    binary = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    chromedriver = shutil.which("chromedriver")
    if binary is None or chromedriver is None:
        _missing("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(chromedriver), options=opts)
    drv.set_page_load_timeout(WAIT)
    try:
        yield drv
    finally:
        drv.quit()


@pytest.fixture(scope="module")
def bsrv(tmp_path_factory: pytest.TempPathFactory, driver: Any) -> Iterator[LampiServer]:
    srv = LampiServer(data_dir=tmp_path_factory.mktemp("console-browser") / "data", port=free_port(),
                      console_port=free_port())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("LAMPI_CONSOLE_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def png(width: int = 96, height: int = 64) -> bytes:
    """A small RGB gradient PNG."""
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in (x * 255 // width, y * 255 // height, 160))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


class Page:
    """The browser on the console of a server."""

    def __init__(self, drv: Any, srv: LampiServer, shots: Path) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.srv, self.shots, self.By, self.EC = drv, srv, shots, By, EC
        # a page being replaced under a check: look again
        self.wait = WebDriverWait(drv, WAIT, ignored_exceptions=(StaleElementReferenceException,))
        self.base = f"http://127.0.0.1:{srv.console_port}"

    def go(self, path: str) -> None:
        self.d.get(self.base + path)

    def css(self, sel: str) -> Any:
        return self.wait.until(self.EC.presence_of_element_located((self.By.CSS_SELECTOR, sel)))

    def all(self, sel: str) -> list[Any]:
        return self.d.find_elements(self.By.CSS_SELECTOR, sel)

    def submit(self, form_sel: str, **fields: str) -> None:
        form = self.css(form_sel)
        for name, value in fields.items():
            el = form.find_element(self.By.NAME, name)
            if el.tag_name == "select":
                from selenium.webdriver.support.ui import Select

                Select(el).select_by_value(value)
            else:
                el.clear()
                el.send_keys(value)
        self.click_and_load(form.find_element(self.By.CSS_SELECTOR, "button[type=submit]"))

    def click_and_load(self, el: Any) -> None:
        """Click something that loads a new page, and wait until the new page has loaded.

        The old page is marked with a window property, which the new document doesn't
        have. (Watching the old page's element go stale instead races chromedriver: while
        the page is replaced, it can answer "Node with given id does not belong to the
        document", an error WebDriverWait does not take for staleness.)"""
        from selenium.common.exceptions import WebDriverException

        self.d.execute_script("window.__lampiOldPage = true;")
        el.click()

        def loaded(d: Any) -> bool:
            try:
                return bool(d.execute_script(
                    "return !window.__lampiOldPage && document.readyState === 'complete';"))
            except WebDriverException:  # mid-navigation: ask again
                return False

        self.wait.until(loaded)

    def login(self, user: str, password: str) -> None:
        self.d.delete_all_cookies()
        self.go("/login")
        self.submit("#login-form", user=user, password=password)

    def logout(self) -> None:
        self.submit("header form")

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.d.save_screenshot(str(path))
        return path


def test_console_in_chromium(driver: Any, bsrv: LampiServer, shots: Path, tmp_path: Path) -> None:
    import boto3

    p = Page(driver, bsrv, shots)
    rc = bsrv.openrc()
    conn = swiftclient.Connection(authurl=bsrv.auth_url, user="admin", key=rc["OS_PASSWORD"], auth_version="3",
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": "admin"}, retries=0)
    bucket = "demo-" + uuid.uuid4().hex[:8]

    # log in, create a bucket
    p.login("admin", rc_password(bsrv))
    assert p.d.current_url.endswith("/buckets")
    p.submit("#create-bucket", bucket=bucket)
    assert p.css("h1").text == bucket

    # upload two files through the file input; each progress bar reaches 100%
    image = tmp_path / "photo.png"
    image.write_bytes(png())
    table = tmp_path / "results.csv"
    table.write_text("sample,value\nalpha,1\nbeta,2\n")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    p.css("#file-input").send_keys("\n".join(str(f) for f in (image, table, big)))
    p.wait.until(lambda d: len(p.all("#uploads li.done")) == 3)
    statuses = [el.text for el in p.all("#uploads .upload-status")]
    assert statuses == ["100% done"] * 3
    assert [int(el.get_attribute("value")) for el in p.all("#uploads progress")] == [100, 100, 100]
    assert p.css("#overall-text").text == "100%"
    p.shot("console-upload")
    assert sorted(o["name"] for o in conn.get_container(bucket)[1]) == ["big.bin", "photo.png", "results.csv"]
    assert conn.get_object(bucket, "big.bin")[1] == big.read_bytes()

    # drag and drop: a file dropped on the zone uploads the same way
    p.d.execute_script("""
        const dt = new DataTransfer();
        dt.items.add(new File(["dropped in"], "dropped.txt", {type: "text/plain"}));
        document.getElementById("dropzone").dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true}));
    """)
    p.wait.until(lambda d: len(p.all("#uploads li.done")) == 4)
    assert conn.get_object(bucket, "dropped.txt")[1] == b"dropped in"
    conn.delete_object(bucket, "dropped.txt")

    # the listing, and previews: the image shows, the CSV is a table
    p.css("#refresh-listing").click()
    p.wait.until(lambda d: len(p.all("#objects .object-link")) == 3)
    p.shot("console-bucket")
    p.click_and_load(p.d.find_element(p.By.LINK_TEXT, "photo.png"))
    img = p.css("#preview-image")
    p.wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) == 96)
    p.shot("console-preview")
    p.go(f"/object?bucket={bucket}&name=results.csv")
    cells = [c.text for c in p.all("#preview-table th, #preview-table td")]
    assert cells == ["sample", "value", "alpha", "1", "beta", "2"]

    # share with a second project (View); its user sees it under "Shared with you"
    other = new_account(bsrv)
    p.go(f"/bucket?bucket={bucket}")
    p.submit("#share-form", project=other.project_id, access="view")
    assert other.project_id in p.css("#access-h").find_element(p.By.XPATH, "..").text
    p.logout()
    p.login(other.user, other.password)
    shared = p.css("#shared-with-me")
    assert bucket in shared.text
    p.click_and_load(shared.find_element(p.By.LINK_TEXT, bucket))
    p.wait.until(lambda d: len(p.all("#objects .object-link")) == 3)
    assert not p.all("#delete-bucket")  # not the owner: no owner's controls
    p.shot("console-shared")
    p.logout()

    # make it public; the link works for anyone
    p.login("admin", rc_password(bsrv))
    p.go(f"/bucket?bucket={bucket}")
    p.submit("#public-form")
    link = p.css("#public-link").get_attribute("href")
    assert link == f"{bsrv.url}/{bucket}/"
    anon = requests.get(link + "photo.png", timeout=60)
    assert anon.status_code == 200 and anon.content == image.read_bytes()
    assert "<Key>results.csv</Key>" in requests.get(link, timeout=60).text
    p.go("/buckets")
    row = p.d.find_element(p.By.LINK_TEXT, bucket).find_element(p.By.XPATH, "../..")
    assert "public" in row.text and "shared" in row.text and "3" in row.text
    p.shot("console-buckets")

    # an S3 key, the secret shown once, used with boto3
    p.go("/keys")
    p.submit("#create-key-form")
    access, secret = p.css("#new-access").text, p.css("#new-secret").text
    s3 = boto3.client("s3", endpoint_url=bsrv.url, aws_access_key_id=access, aws_secret_access_key=secret,
                      region_name="us-east-1")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["big.bin", "photo.png", "results.csv"]
    assert s3.get_object(Bucket=bucket, Key="results.csv")["Body"].read() == table.read_bytes()
    p.go("/keys")
    assert access in p.css("#keys").text and secret not in p.d.page_source  # shown once only

    # delete everything: objects (multi-select, confirmed), the bucket (its count), the key
    p.go(f"/bucket?bucket={bucket}")
    for box in p.all("#objects input[type=checkbox]")[:2]:
        box.click()
    p.css("#delete-selected").click()
    p.wait.until(p.EC.alert_is_present())
    alert = p.d.switch_to.alert
    assert alert.text == "Delete 2 object(s)?"
    alert.accept()
    p.wait.until(lambda d: len(p.all("#objects .object-link")) == 1)
    assert "1 object(s)" in p.css("#bucket-summary").text
    p.submit("#delete-bucket-form", confirm="1")
    assert p.d.current_url.endswith("/buckets") and bucket not in p.css("#buckets").text
    with pytest.raises(swiftclient.ClientException):
        conn.head_container(bucket)
    p.go("/keys")
    p.submit("#keys form")
    assert access not in p.css("#keys").text
    with pytest.raises(Exception):
        s3.list_buckets()


XSS = "<img src=x onerror=alert(1)>"


def test_sharing_levels_shared_with_you_and_revoke(driver: Any, bsrv: LampiServer, shots: Path) -> None:
    """View, then Collaborate, with another project by its id; the grantee sees the
    bucket and its level; the owner revokes the share from its row."""
    p = Page(driver, bsrv, shots)
    bucket = "levels-" + uuid.uuid4().hex[:8]
    other = new_account(bsrv)
    p.login("admin", rc_password(bsrv))
    p.submit("#create-bucket", bucket=bucket)
    p.submit("#share-form", project=other.project_id, access="view")
    row = p.css("#grants").find_element(p.By.XPATH, f".//tr[td[text()='{other.project_id}']]")
    assert row.find_element(p.By.CSS_SELECTOR, ".level").text == "View"
    p.submit("#share-form", project=other.project_id, access="collaborate")
    row = p.css("#grants").find_element(p.By.XPATH, f".//tr[td[text()='{other.project_id}']]")
    assert row.find_element(p.By.CSS_SELECTOR, ".level").text == "Collaborate"
    assert len(p.all("#grants tbody tr")) == 1
    p.shot("console-sharing")
    p.logout()
    p.login(other.user, other.password)
    row = p.css("#shared-with-me").find_element(p.By.XPATH, f".//tr[td/a[text()='{bucket}']]")
    assert "Collaborate" in row.text and bucket + "_segments" not in p.css("#shared-with-me").text
    p.logout()
    p.login("admin", rc_password(bsrv))
    p.go(f"/bucket?bucket={bucket}")
    revoke = p.css("#grants button.revoke")
    assert revoke.get_attribute("aria-label") == f"Revoke the share with project {other.project_id}"
    p.click_and_load(revoke)
    assert "Not shared with any project." in p.css("#grants").text
    p.logout()
    p.login(other.user, other.password)
    assert bucket not in p.css("#shared-with-me").text
    p.logout()


def test_bucket_tags_at_create_and_edit(driver: Any, bsrv: LampiServer, shots: Path) -> None:
    p = Page(driver, bsrv, shots)
    bucket = "tags-" + uuid.uuid4().hex[:8]
    p.login("admin", rc_password(bsrv))
    p.submit("#create-bucket", bucket=bucket, tags="project=alpha\nstage=raw")
    p.click_and_load(p.css("#tags-link"))
    p.wait.until(lambda d: len(p.all("#tags .tag-key")) == 2)
    assert [(k.text, v.text) for k, v in zip(p.all("#tags .tag-key"), p.all("#tags .tag-value"))] == \
        [("project", "alpha"), ("stage", "raw")]
    assert p.css("#tags-text").get_attribute("value") == "project=alpha\nstage=raw"
    p.submit("#tags-form", tags="project=beta")
    p.wait.until(lambda d: [k.text for k in p.all("#tags .tag-value")] == ["beta"])
    p.shot("console-tags")
    p.logout()


def test_admin_pages_in_chromium(driver: Any, bsrv: LampiServer, shots: Path) -> None:
    """The admin makes a project and a user in the browser; the user logs in with
    swiftclient. A member of another project sees no admin link and gets 403."""
    import swiftclient

    p = Page(driver, bsrv, shots)
    tag = uuid.uuid4().hex[:8]
    pname, uname, pw = f"bp{tag}", f"bu{tag}", f"pw-{tag}-b"
    p.login("admin", rc_password(bsrv))
    p.click_and_load(p.css("#admin-link"))
    p.css("#admin-create-project")
    p.submit("#admin-create-project", name=pname, description="from Chromium")
    row = p.css("#admin-projects").find_element(p.By.XPATH, f".//tr[td[text()='{pname}']]")
    pid = row.find_element(p.By.CSS_SELECTOR, ".project-id").text
    from selenium.webdriver.support.ui import Select

    form = p.css("#admin-create-user")
    Select(form.find_element(p.By.NAME, "project")).select_by_visible_text(pname)
    p.submit("#admin-create-user", name=uname, password=pw, password2=pw, role="member")
    row = p.css("#admin-users").find_element(p.By.XPATH, f".//tr[td[text()='{uname}']]")
    assert f"member on {pname}" in row.text
    p.shot("console-admin")
    p.logout()
    conn = swiftclient.Connection(authurl=bsrv.auth_url, user=uname, key=pw, auth_version="3", retries=0,
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": pname})
    conn.put_container("from-admin-page")
    assert conn.get_auth()[0].endswith(f"AUTH_{pid}")
    p.login(uname, pw)
    assert not p.all("#admin-link")
    p.go("/admin")
    assert "Only lampi's administrators" in p.css("#problem").text
    p.logout()


def test_segmented_upload_fails_a_part_and_resumes(driver: Any, tmp_path: Path, shots: Path) -> None:
    """A 3.5 MiB file with 1 MiB segments goes in 4 parts; the third is refused (a count
    quota on the segments container), the row offers Resume; once the quota is gone,
    Resume (by keyboard) sends only the two missing parts; boto3 reads the object whole."""
    import hashlib

    import boto3
    import swiftclient
    from selenium.webdriver.common.keys import Keys

    srv = LampiServer(data_dir=tmp_path / "data", port=free_port(), console_port=free_port(),
                      extra_args=["--console-segment-size", str(1024 * 1024)])
    srv.start()
    try:
        p = Page(driver, srv, shots)
        rc = srv.openrc()
        conn = swiftclient.Connection(authurl=srv.auth_url, user="admin", key=rc["OS_PASSWORD"], auth_version="3",
                                      os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                                  "project_name": "admin"}, retries=0)
        bucket = "seg-" + uuid.uuid4().hex[:8]
        p.login("admin", rc["OS_PASSWORD"])
        p.submit("#create-bucket", bucket=bucket)
        conn.put_container(bucket + "_segments", headers={"X-Container-Meta-Quota-Count": "2"})
        big = tmp_path / "big.bin"
        data = os.urandom(3 * 1024 * 1024 + 512 * 1024)
        big.write_bytes(data)
        p.css("#file-input").send_keys(str(big))
        p.wait.until(lambda d: len(p.all("#uploads li.failed")) == 1)
        li = p.css("#uploads li.failed")
        assert "failed (413)" in li.text and li.get_attribute("data-sent-parts") == "2"
        p.shot("console-upload-failed-part")
        conn.post_container(bucket + "_segments", headers={"X-Container-Meta-Quota-Count": ""})
        resume = li.find_element(p.By.CSS_SELECTOR, "button.resume")
        assert resume.get_attribute("aria-label") == "Resume the upload of big.bin"
        resume.send_keys(Keys.ENTER)
        p.wait.until(lambda d: len(p.all("#uploads li.done")) == 1)
        li = p.css("#uploads li.done")
        assert "100% done (4 segments)" in li.text
        assert li.get_attribute("data-sent-parts") == "4"  # 2 before, the 2 missing after: none twice
        token = requests.post(srv.url + "/v3/auth/tokens", timeout=60, json={"auth": {"identity": {
            "methods": ["password"], "password": {"user": {"name": "admin", "password": rc["OS_PASSWORD"],
                                                           "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}})
        tok, info = token.headers["X-Subject-Token"], token.json()["token"]
        cred = requests.post(f"{srv.url}/v3/users/{info['user']['id']}/credentials/OS-EC2", timeout=60,
                             headers={"X-Auth-Token": tok}, json={"tenant_id": info["project"]["id"]}).json()
        s3 = boto3.client("s3", endpoint_url=srv.url, aws_access_key_id=cred["credential"]["access"],
                          aws_secret_access_key=cred["credential"]["secret"], region_name="us-east-1")
        body = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
        assert len(conn.get_container(bucket + "_segments")[1]) == 4
        p.logout()
    finally:
        srv.stop()


def test_html_in_names_and_metadata_is_text_in_the_dom(driver: Any, bsrv: LampiServer, shots: Path) -> None:
    p = Page(driver, bsrv, shots)
    rc = bsrv.openrc()
    conn = swiftclient.Connection(authurl=bsrv.auth_url, user="admin", key=rc["OS_PASSWORD"], auth_version="3",
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": "admin"}, retries=0)
    bucket = "xss-" + uuid.uuid4().hex[:8]
    conn.put_container(bucket)
    conn.put_object(bucket, XSS, b"<script>window.pwned=1</script>", content_type="text/plain",
                    headers={"X-Object-Meta-Note": XSS})
    conn.put_object(bucket, f"{XSS}/inner.txt", b"x", content_type="text/plain")
    p.login("admin", rc_password(bsrv))
    p.go(f"/bucket?bucket={bucket}")
    links = [a.text for a in p.all("#objects a")]
    assert XSS in links and f"{XSS}/" in links  # the object and the pseudo-folder, as text
    assert not p.all("#objects img") and not p.all("img[src=x]")
    p.click_and_load(p.d.find_element(p.By.LINK_TEXT, XSS))
    assert p.css("#object-name").text == XSS
    assert p.css("#preview-text").text == "<script>window.pwned=1</script>"
    assert XSS in p.css("#metadata").text
    assert not p.all("img") and p.d.execute_script("return window.pwned === undefined")
    # an alert would have been left open (selenium raises on the next command if so)
    assert p.d.title.startswith(XSS)


def test_readable_on_a_narrow_screen_and_by_keyboard(driver: Any, bsrv: LampiServer, shots: Path) -> None:
    p = Page(driver, bsrv, shots)
    p.login("admin", rc_password(bsrv))
    bucket = "narrow-" + uuid.uuid4().hex[:8]
    p.submit("#create-bucket", bucket=bucket)
    try:
        driver.set_window_size(380, 800)
        for path in ("/buckets", f"/bucket?bucket={bucket}", "/keys", "/usage"):
            p.go(path)
            p.css("main")
            # nothing wider than the screen: no sideways scrolling of the page itself
            assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1"), path
        p.shot("console-narrow")
        # every form field has a label (or an aria-label) for screen readers
        p.go(f"/bucket?bucket={bucket}")
        unlabelled = driver.execute_script("""
            return [...document.querySelectorAll('input:not([type=hidden]), select')].filter(
                el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.outerHTML);
        """)
        assert unlabelled == []
        # the first Tab reaches the skip link, which leads to the content
        from selenium.webdriver.common.keys import Keys

        driver.find_element(p.By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert driver.switch_to.active_element.get_attribute("class") == "skip"
    finally:
        driver.set_window_size(1280, 900)
        p.go(f"/bucket?bucket={bucket}")
        p.submit("#delete-bucket-form", confirm="0")


def test_refused_upload_shows_as_failed(driver: Any, bsrv: LampiServer, shots: Path, tmp_path: Path) -> None:
    p = Page(driver, bsrv, shots)
    rc = bsrv.openrc()
    conn = swiftclient.Connection(authurl=bsrv.auth_url, user="admin", key=rc["OS_PASSWORD"], auth_version="3",
                                  os_options={"user_domain_name": "Default", "project_domain_name": "Default",
                                              "project_name": "admin"}, retries=0)
    bucket = "ro-" + uuid.uuid4().hex[:8]
    conn.put_container(bucket)
    reader = "r" + uuid.uuid4().hex[:8]
    bsrv.cli("user", "create", reader, "--password", "pw-reader-3", "--project", "admin", "--role", "reader")
    p.login(reader, "pw-reader-3")
    p.go(f"/bucket?bucket={bucket}")
    f = tmp_path / "nope.txt"
    f.write_text("no")
    p.css("#file-input").send_keys(str(f))
    p.wait.until(lambda d: len(p.all("#uploads li.failed")) == 1)
    assert p.css("#uploads .upload-status").text == "failed (403)"
    assert conn.get_container(bucket)[1] == []
    conn.delete_container(bucket)
