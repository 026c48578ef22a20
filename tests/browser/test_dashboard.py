"""The dashboard end to end in headless Chromium against a real server:
sign-in, volumes and their sizes, a file browser over data written
through a real FUSE mount, download and upload compared byte for byte,
delete, the trash icon freeing space, tokens, and what must be refused
(a wrong token, another workspace's volume, script in a file name, a form
without its CSRF token)."""

import http.client
import json
import os
import re
import socket
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from html import unescape as html_unescape
from pathlib import Path

from conftest import SVOL, eventually, shot

PAYLOAD = "<img src=x onerror=alert(document.domain)>.txt"


def sign_in(page, server, token=None):
    page.goto(f"{server.url}/apps")
    assert page.url.endswith("/signin")
    page.fill("#token", token or server.token)
    page.click("button[type=submit]")


class Mount:
    def __init__(self, server, volume: str) -> None:
        self.server = server
        self.path = Path(tempfile.mkdtemp(prefix="svol-mnt-"))
        server.cli("mount", volume, str(self.path), "-d")

    def close(self) -> None:
        self.server.cli("umount", str(self.path), check=False)


def test_sign_in_browse_download_upload_delete(server, page, tmp_path):
    # A wrong token is refused and gets no cookie.
    sign_in(page, server, token="sv-this-is-not-a-token")
    assert page.url.endswith("/signin")
    assert "refused" in page.inner_text("#error")
    assert not page.context.cookies()
    shot(page, "signin-refused")

    server.cli("volume", "create", "datasets")
    mnt = Mount(server, "datasets")
    try:
        data = os.urandom(6 * 1024 * 1024 + 77)  # two blocks
        (mnt.path / "train" / "shards").mkdir(parents=True)
        (mnt.path / "train" / "shards" / "part-0.bin").write_bytes(data)
        (mnt.path / "train" / PAYLOAD).write_bytes(b"harmless")
        (mnt.path / "train" / "gone.txt").write_bytes(b"delete me")
        os.sync()

        sign_in(page, server)
        assert page.url.endswith("/apps")
        cookie = page.context.cookies()[0]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert server.token not in page.content()
        shot(page, "apps")

        page.click("header >> text=Volumes")
        row = page.locator("tr", has_text="datasets")
        eventually("the volume shows its size", lambda: (page.reload() or True) and
                   int(row.locator("td.size").get_attribute("data-bytes")) >= len(data), limit=20)
        shot(page, "volumes")

        row.locator("a", has_text="datasets").click()
        page.locator("a.dir", has_text="train/").click()
        assert page.locator("nav.crumbs").inner_text().endswith("train")
        # The payload is a name shown as text: no element made, no script run.
        assert page.locator(f"tr[data-name='{PAYLOAD}']").count() == 1
        assert page.locator("img[src=x]").count() == 0
        shot(page, "files-train")
        page.locator("a.dir", has_text="shards/").click()
        shot(page, "files-shards")
        with page.expect_download() as dl:
            page.locator("a.file", has_text="part-0.bin").click()
        got = Path(dl.value.path()).read_bytes()
        assert got == data

        # Upload into shards/, then read it through the mount.
        up = tmp_path / "uploaded.bin"
        up_data = os.urandom(300_000)
        up.write_bytes(up_data)
        page.set_input_files("#upload", str(up))
        page.click("#upload-button")
        assert page.locator("tr[data-name='uploaded.bin']").count() == 1
        eventually("the upload is visible through the mount",
                   lambda: (mnt.path / "train" / "shards" / "uploaded.bin").exists())
        assert (mnt.path / "train" / "shards" / "uploaded.bin").read_bytes() == up_data

        # Delete a file behind its confirmation page.
        page.click("nav.crumbs >> text=train")
        page.click("tr[data-name='gone.txt'] >> a.delete")
        assert "will be deleted" in page.inner_text("#what")
        shot(page, "delete-confirm")
        page.click("#confirm-delete")
        assert page.locator("tr[data-name='gone.txt']").count() == 0
        eventually("the file is gone from the mount", lambda: not (mnt.path / "train" / "gone.txt").exists())
        assert page.dialogs == []  # no alert() ever ran
    finally:
        mnt.close()


def test_another_workspace_is_out_of_reach(server, page):
    server.cli("workspace", "create", "other")
    other = server.cli("token", "create", "--workspace", "other").split()[-1]
    vol = server.cli("volume", "create", "secret", token=other).split()[-1]
    sign_in(page, server)
    for path in (f"/volumes/{vol}/files", f"/volumes/{vol}/download?path=x", f"/volumes/{vol}/delete?path=x"):
        resp = page.goto(f"{server.url}{path}")
        assert resp.status == 404, path
    shot(page, "foreign-volume-404")
    page.goto(f"{server.url}/volumes")
    assert "secret" not in page.inner_text("#volumes")


def test_forms_need_their_csrf_token(server, page):
    sign_in(page, server)
    cookie = page.context.cookies()[0]
    vol = server.cli("volume", "create", "keep").split()[-1]
    app = [a for a in server.cli("app", "list").splitlines() if vol in a or "keep" in a]
    assert app
    req = urllib.request.Request(
        f"{server.url}/volumes/{vol}/delete", method="POST",
        data=urllib.parse.urlencode({"csrf": "forged", "path": "x"}).encode(),
        headers={"Cookie": f"{cookie['name']}={cookie['value']}",
                 "Content-Type": "application/x-www-form-urlencoded"})
    try:
        urllib.request.urlopen(req)
        raise AssertionError("a forged form was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 403


def test_the_trash_icon_stops_a_volumes_app_and_frees_its_space(server, page):
    server.cli("volume", "create", "checkpoints")
    mnt = Mount(server, "checkpoints")
    try:
        (mnt.path / "ckpt.bin").write_bytes(os.urandom(12 << 20))
        os.sync()
    finally:
        mnt.close()
    before = server.block_bytes()
    assert before >= 12 << 20
    sign_in(page, server)
    row = page.locator("tr", has_text="checkpoints").first
    row.locator("a.trash").click()
    what = page.inner_text("#what")
    assert "1 volume, 1 file, 12.0 MiB" in what
    assert "checkpoints" in page.inner_text("main")
    shot(page, "stop-confirm")
    page.click("#confirm-stop")
    assert page.url.endswith("/apps")
    shot(page, "apps-after-stop")
    assert "checkpoints" not in server.cli("volume", "list")
    eventually("the blocks are freed", lambda: server.block_bytes() <= before - (12 << 20), limit=60)


def test_tokens_are_shown_once_and_can_be_revoked(server, page):
    sign_in(page, server)
    page.click("header >> text=Tokens")
    page.fill("#label", "ci")
    page.click("#create-token")
    secret = page.inner_text("#new-secret").strip()
    shot(page, "tokens-created")
    assert server.cli("volume", "list", token=secret) is not None  # it works
    page.goto(f"{server.url}/tokens")
    assert secret not in page.content()  # never again
    row = page.locator("tr", has_text="ci").first
    row.locator("button", has_text="Revoke").click()
    assert "revoked" in page.locator("tr", has_text="ci").first.inner_text()
    out = subprocess.run([str(SVOL), "volume", "list"],
                         env=dict(os.environ, SVOL_SERVER=server.url, SVOL_TOKEN=secret),
                         capture_output=True, text=True)
    assert out.returncode != 0
    # Signing out ends the session: the cookie no longer opens a page.
    page.click("#signout")
    assert page.url.endswith("/signin")
    page.goto(f"{server.url}/tokens")
    assert page.url.endswith("/signin")


def test_a_big_directory_is_paged_and_every_name_shown_once(server, page):
    server.cli("volume", "create", "many")
    mnt = Mount(server, "many")
    try:
        names = {f"f{i:04}" for i in range(450)}
        for n in names:
            (mnt.path / n).write_bytes(b"")
        os.sync()
        sign_in(page, server)
        vol_id = json.loads(server.cli("volume", "info", "many", "--json"))["id"]
        page.goto(f"{server.url}/volumes/{vol_id}/files")
        seen = []
        pages = 0
        while True:
            pages += 1
            rows = page.locator("#files tr[data-name]")
            assert rows.count() <= 200  # never one giant page
            seen += [rows.nth(i).get_attribute("data-name") for i in range(rows.count())]
            nxt = page.locator("#next-page")
            if nxt.count() == 0:
                break
            nxt.click()
        assert pages == 3
        assert sorted(seen) == sorted(names)  # each exactly once
        shot(page, "files-last-page")
    finally:
        mnt.close()


def test_live_clients_and_bytes_stored_after_dedup(server, page):
    server.cli("volume", "create", "shared")
    a, b = Mount(server, "shared"), Mount(server, "shared")
    run = None
    try:
        block = os.urandom(1 << 20)
        for n in ("one.bin", "two.bin", "three.bin"):  # one block, three files
            (a.path / n).write_bytes(block)
        (a.path / "small.txt").write_bytes(b"x" * 1000)  # kept inline
        os.sync()
        # A `svol run` holds a lease for the app it makes.
        env = dict(os.environ, SVOL_CONFIG=str(server.config))
        run = subprocess.Popen([str(SVOL), "run", "-v", "/mnt/svol-data=shared",
                                "--", "sleep", "600"], env=env, stderr=subprocess.DEVNULL)
        sign_in(page, server)
        host = socket.gethostname()
        app_id = json.loads(server.cli("volume", "info", "shared", "--json"))["app"]
        app_row = page.locator(f"#apps tr[data-app='{app_id}']")

        def mounts_listed():
            page.reload()
            return app_row.locator(".client").count() == 2
        eventually("both mounts are listed as live clients", mounts_listed)
        text = app_row.locator("td.clients").inner_text()
        assert f"mount {a.path}" in text and f"mount {b.path}" in text and host in text
        # Its app is named after the command; its client says what it runs.
        eventually("the run is listed under its app", lambda: (page.reload() or True) and
                   "run sleep 600" in page.locator("#apps tr", has_text="run sleep 600").first
                   .locator("td.clients").inner_text())
        shot(page, "apps-live-clients")

        page.click("header >> text=Volumes")
        row = page.locator("#volumes tr", has_text="shared")
        assert int(row.locator("td.size").get_attribute("data-bytes")) == 3 * (1 << 20) + 1000
        assert int(row.locator("td.stored").get_attribute("data-bytes")) == (1 << 20) + 1000
        shot(page, "volumes-stored")
        info = json.loads(server.cli("volume", "info", "shared", "--json"))
        assert (info["bytes"], info["stored_bytes"]) == (3 * (1 << 20) + 1000, (1 << 20) + 1000)

        # The stop confirmation names who would lose the volume.
        page.goto(f"{server.url}/apps")
        app_row.locator("a.trash").click()
        assert "2 clients are using it" in page.inner_text("#clients")
        assert "3.0 MiB (1.0 MiB stored after dedup)" in page.inner_text("#what")
        shot(page, "stop-confirm-clients")
    finally:
        if run is not None:
            run.terminate()
            run.wait(timeout=30)
        a.close()
        b.close()
    # Unmounted: the leases are given back and the clients leave the list.
    page.goto(f"{server.url}/apps")
    eventually("unmounted clients leave the list", lambda: (page.reload() or True) and
               app_row.locator(".client").count() == 0)


def test_the_admin_view_is_for_admin_tokens_only(server, page, browser):
    server.cli("workspace", "create", "team-b")
    other = server.cli("token", "create", "--workspace", "team-b").split()[-1]
    server.cli("volume", "create", "b-data", token=other)
    env = dict(os.environ, SVOL_CONFIG=str(server.config), SVOL_TOKEN=other)
    mnt_path = Path(tempfile.mkdtemp(prefix="svol-mnt-"))
    subprocess.run([str(SVOL), "mount", "b-data", str(mnt_path), "-d"], env=env, check=True, timeout=60)
    try:
        (mnt_path / "f.bin").write_bytes(os.urandom(100_000))
        os.sync()
        sign_in(page, server)  # the server's first token is an admin's
        page.click("#nav-admin")
        shot(page, "admin")
        row = page.locator("#workspaces tr[data-workspace='team-b']")
        eventually("team-b's file is counted", lambda: (page.reload() or True) and
                   int(row.locator("td.size").get_attribute("data-bytes")) == 100_000)
        assert page.locator("#workspaces tr[data-workspace='main']").count() == 1
        clients = page.inner_text("#clients")
        assert "b-data" in clients and f"mount {mnt_path}" in clients

        # A workspace's own token sees no admin link, and the page is not there.
        ctx = browser.new_context()
        pg = ctx.new_page()
        sign_in(pg, server, token=other)
        assert pg.url.endswith("/apps")
        assert pg.locator("#nav-admin").count() == 0
        assert "team-b" in pg.inner_text("#me")
        assert pg.goto(f"{server.url}/admin").status == 404
        shot(pg, "admin-refused")
        ctx.close()
    finally:
        subprocess.run([str(SVOL), "umount", str(mnt_path)], env=env, timeout=60)


def test_a_directory_of_100000_names_is_paged(server, page):
    server.cli("volume", "create", "huge")
    mnt = Mount(server, "huge")
    n = 100_000
    try:
        d = mnt.path / "d"
        d.mkdir()
        for i in range(n):
            os.close(os.open(d / f"n{i:06}", os.O_CREAT | os.O_WRONLY, 0o644))
        sign_in(page, server)
        vol_id = json.loads(server.cli("volume", "info", "huge", "--json"))["id"]
        page.goto(f"{server.url}/volumes/{vol_id}/files?path=d")
        assert page.locator("#files tr[data-name]").count() == 200
        shot(page, "files-100000-first-page")
        # Every page, walked over HTTP with the session cookie: 200 names
        # each, each name once, and each page a small document.
        cookie = page.context.cookies()[0]
        seen = set()
        url = f"{server.url}/volumes/{vol_id}/files?path=d"
        pages = 0
        while url:
            req = urllib.request.Request(url, headers={"Cookie": f"{cookie['name']}={cookie['value']}"})
            html = urllib.request.urlopen(req, timeout=60).read().decode()
            pages += 1
            names = re.findall(r'data-name="(n\d{6})"', html)
            assert 0 < len(names) <= 200 and len(html) < 200_000, html[:3000]
            assert not seen.intersection(names)
            seen.update(names)
            m = re.search(r'id="next-page" href="([^"]+)"', html)
            url = f"{server.url}{html_unescape(m.group(1))}" if m else None
        assert pages == n // 200 and len(seen) == n
        # Deleting it asks first, counting only so far.
        page.goto(f"{server.url}/volumes/{vol_id}/delete?path=d")
        assert "more than 1000 entries" in page.inner_text("#what")
    finally:
        mnt.close()


def test_the_dashboard_under_tls(tls_server, browser):
    server = tls_server
    assert server.url.startswith("https://")
    # Plain HTTP to the TLS port gets no page.
    try:
        urllib.request.urlopen(f"http://{server.addr}/signin", timeout=10)
        raise AssertionError("plain HTTP was answered")
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
        pass
    # The test's browser does not know the test CA, so it is told to go on.
    ctx = browser.new_context(ignore_https_errors=True)
    pg = ctx.new_page()
    server.cli("volume", "create", "secure-vol")
    sign_in(pg, server)
    assert pg.url == f"{server.url}/apps"
    cookie = pg.context.cookies()[0]
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    pg.click("header >> text=Volumes")
    assert "secure-vol" in pg.inner_text("#volumes")
    shot(pg, "volumes-tls")
    ctx.close()


def test_stopping_a_volumes_app_puts_it_in_the_trash(page, tmp_path):
    from conftest import Server
    server = Server(tmp_path, retention="24h")
    try:
        server.cli("volume", "create", "precious")
        vol_id = json.loads(server.cli("volume", "info", "precious", "--json"))["id"]
        sign_in(page, server)
        page.locator("tr", has_text="precious").first.locator("a.trash").click()
        what = page.inner_text("#what")
        assert "trash for 24 h" in what and "cannot be undone" not in what
        shot(page, "stop-confirm-trash")
        page.click("#confirm-stop")
        trashed = json.loads(server.cli("trash", "list", "--json"))
        assert [t["id"] for t in trashed] == [vol_id]
        server.cli("trash", "restore", vol_id)
        assert "precious" in server.cli("volume", "list")
    finally:
        server.stop()
