"""The local app (``takeback app``) through HTTP: FastAPI's TestClient on real sample photos.

Every suspect is a benign edit made in code (:func:`tests.helpers.doctored_copy`).
The browser end-to-end tests are in ``test_app_browser.py``.
"""

from __future__ import annotations

import doctest
import io
import json
import os
import re
import signal
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from takeback.app import AppConfig, create_app
from takeback.app import uploads as uploads_module
from takeback.app.server import CONTENT_SECURITY_POLICY, TOKEN_HEADER
from takeback.app.uploads import safe_name
from takeback.bank.exchange import read_entries
from takeback.evidence import verify_package
from takeback.fingerprint.pdq import fingerprint_file
from takeback.imageio import ImageLimits
from takeback.provenance.c2pa import sidecar_path, verify_photo

from .helpers import doctored_copy, rgb

with warnings.catch_warnings():
    # starlette's TestClient asks for httpx2 (not installed); httpx works the same here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

TOKEN = "test-token"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class App:
    client: TestClient
    config: AppConfig
    headers: dict[str, str]

    def post_files(self, path: str, data: dict[str, str] | None = None, **files: Any) -> Any:
        return self.client.post(path, data=data or {}, files=files, headers=self.headers)

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers)


def _make_app(tmp_path: Path, limits: ImageLimits | None = None) -> Iterator[App]:
    config = AppConfig.from_env(home=tmp_path / "home", limits=limits or ImageLimits(), environ={})
    with TestClient(create_app(config, token=TOKEN), base_url="http://127.0.0.1:8765") as client:
        yield App(client, config, {TOKEN_HEADER: TOKEN})


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    # Private folders go under tmp_path, so a test can check that they are emptied.
    private = tmp_path / "private"
    private.mkdir()
    monkeypatch.setattr(uploads_module, "_private_root", lambda: str(private))
    yield from _make_app(tmp_path)


@pytest.fixture(scope="module")
def fake(photos: dict[str, Path]) -> bytes:
    """A benign doctored copy of astronaut.png: 30% replaced by coffee.png, JPEG."""
    data, _ = doctored_copy(
        np.asarray(rgb(photos["astronaut.png"])),
        np.asarray(rgb(photos["coffee.png"])),
        replaced=0.3,
    )
    return data


def _photo(photos: dict[str, Path], name: str) -> tuple[str, bytes, str]:
    return (name, photos[name].read_bytes(), "image/png")


def _register(app: App, photos: dict[str, Path], name: str, **options: str) -> dict[str, Any]:
    r = app.post_files("/api/register", options, photo=_photo(photos, name))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _no_private_leftovers(tmp_path: Path) -> None:
    assert list((tmp_path / "private").iterdir()) == []


# -- the page -------------------------------------------------------------------------


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()
        self.label_for: list[str] = []
        self.inputs: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        for key in ("src", "href"):
            if a.get(key):
                self.refs.append((tag, key, str(a[key])))
        if tag == "label" and a.get("for"):
            self.label_for.append(str(a["for"]))
        if tag in ("input", "select", "textarea"):
            self.inputs.append((tag, a))


def test_page_is_local_and_strict(app: App) -> None:
    r = app.client.get("/")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    html = r.text
    assert f'<meta name="takeback-token" content="{TOKEN}">' in html
    assert "Everything stays on this computer" in html
    assert "<script>" not in html and "style=" not in html and "<style" not in html
    refs = _Refs()
    refs.feed(html)
    for tag, key, url in refs.refs:
        if tag == "a":
            # links to the hotlines open the person's browser; nothing is loaded from them
            assert url.startswith(("#", "https://")), url
            continue
        assert url.startswith("/static/"), f"{tag} {key}={url} is not served locally"
        served = app.client.get(url)
        assert served.status_code == 200, url
        assert served.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    for name in ("app.js", "app.css"):
        text = (ROOT / "src/takeback/app/static" / name).read_text()
        assert not re.search(r"https?://|//cdn|@import|url\(", text), name
    # every form control has a label (label/for), every label points at a control
    for tag, attrs in refs.inputs:
        assert attrs.get("id") in refs.label_for, f"{tag} {attrs.get('id')} has no <label for>"
    assert set(refs.label_for) <= refs.ids
    assert "webkitdirectory" in html and 'type="range"' in html and 'aria-live="polite"' in html


def test_page_carries_the_hotlines_of_found_a_fake(app: App) -> None:
    html = app.client.get("/").text
    doc = (ROOT / "docs/found-a-fake.md").read_text()
    addresses = set(re.findall(r"\b[a-z]+(?:\.[a-z]+)*\.(?:org|uk)\b", doc, flags=re.I))
    assert {"report.cybertip.org", "takeitdown.ncmec.org", "report.iwf.org.uk"} <= addresses
    for address in addresses:
        assert address in html, address
    assert "under 18" in html and "StopNCII.org" in html and "A lawyer" in html


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"host": "evil.example:8765"}, 421),  # DNS rebinding
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"origin": "https://evil.example"}, 403),
        ({TOKEN_HEADER: "wrong"}, 403),
    ],
)
def test_only_its_own_page_is_served(app: App, headers: dict[str, str], status: int) -> None:
    r = app.client.get("/api/status", headers={**app.headers, **headers})
    assert r.status_code == status
    assert r.json()["error"]["code"] == "forbidden"
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_api_needs_the_token(app: App) -> None:
    assert app.client.get("/api/status").status_code == 403
    assert app.get("/api/status").status_code == 200
    same = {**app.headers, "origin": "http://127.0.0.1:8765", "sec-fetch-site": "same-origin"}
    assert app.client.get("/api/status", headers=same).status_code == 200
    assert app.client.get("/docs").status_code == 404  # no interactive docs from a CDN
    assert app.client.get("/openapi.json").status_code == 404


# -- step 1: register -----------------------------------------------------------------


def test_fingerprint_stores_nothing(app: App, photos: dict[str, Path]) -> None:
    r = app.post_files("/api/fingerprint", photo=_photo(photos, "chelsea.png"))
    assert r.status_code == 200, r.text
    body = r.json()
    fp = fingerprint_file(photos["chelsea.png"])
    assert body["pdq"] == str(fp.pdq) and body["sha256"] == fp.sha256 and body["md5"] == fp.md5
    assert body["quality"] == fp.quality and body["registered_as"] is None
    assert not app.config.bank_dir.exists()


def test_register_sign_log_and_pdq_only(app: App, photos: dict[str, Path], tmp_path: Path) -> None:
    signed = _register(app, photos, "astronaut.png", sign="yes", log="yes", signer_name="Alex")
    assert signed["label"] == "astronaut.png" and signed["log_index"] == 0
    assert signed["signed"]["new"] and signed["signed"]["keys_created"]
    assert "Alex" in signed["signed"]["signer"]
    assert "never the photo" in signed["stored"]

    private = _register(app, photos, "coffee.png", pdq_only="yes", sign="yes", log="yes")
    sha = private["sha256"]
    assert private["label"] == f"private photo {sha[:8]}" and private["signed"] is None
    assert private["log_index"] == 1

    again = _register(app, photos, "astronaut.png", sign="yes", log="yes")
    assert again["duplicate_of"] == signed["id"] and again["log_index"] is None
    assert again["signed"]["new"] is False

    # The manifest holds no picture, and verifies as a sidecar of the photo.
    manifest = app.get(f"/api/credentials/{signed['sha256']}")
    assert manifest.status_code == 200
    assert b"\xff\xd8\xff" not in manifest.content and b"\x89PNG" not in manifest.content
    copy = tmp_path / "astronaut.png"
    copy.write_bytes(photos["astronaut.png"].read_bytes())
    sidecar_path(copy).write_bytes(manifest.content)
    ca = app.config.keys_dir / "ca.pem"
    assert verify_photo(copy, trust_anchors=ca).status.value == "trusted"
    assert app.get(f"/api/credentials/{sha}").status_code == 400  # PDQ only: never signed

    status = app.get("/api/status").json()
    assert status["entries"] == 2 and status["keys"]
    labels = {e["label"]: e for e in status["listed"]}
    assert labels["astronaut.png"]["signed"] and not labels[f"private photo {sha[:8]}"]["signed"]
    # Nothing of the photos was kept: no file in TakeBack's home holds their bytes.
    for name in ("astronaut.png", "coffee.png"):
        data = photos[name].read_bytes()
        for path in app.config.home.rglob("*"):
            if path.is_file():
                assert data[1000:1064] not in path.read_bytes(), path
    _no_private_leftovers(tmp_path)


def test_remember_and_forget_originals(app: App, photos: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "me" / "holiday"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(photos["astronaut.png"].read_bytes())
    wanted = [
        {"sha256": fingerprint_file(photos[n]).sha256, "size": photos[n].stat().st_size}
        for n in ("astronaut.png", "coffee.png")
    ]
    r = app.client.post(
        "/api/originals",
        json={"folder": str(tmp_path / "me"), "photos": wanted},
        headers=app.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["found"] == [wanted[0]["sha256"]] and body["missing"] == [wanted[1]["sha256"]]
    saved = json.loads(app.config.originals_file.read_text())
    assert saved["originals"][0]["path"] == str(folder / "a.png")
    assert app.config.originals_file.stat().st_mode & 0o777 == 0o600

    bad = app.client.post(
        "/api/originals",
        json={"folder": str(tmp_path / "nope"), "photos": wanted},
        headers=app.headers,
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "file_unreadable"
    assert bad.json()["error"]["field"] == "folder"

    gone = app.client.delete("/api/originals", headers=app.headers)
    assert gone.json() == {"forgotten": 1}
    assert not app.config.originals_file.exists()


def test_export_formats_round_trip(app: App, photos: dict[str, Path], tmp_path: Path) -> None:
    missing = app.get("/api/export?format=jsonl")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "bank_missing"
    _register(app, photos, "astronaut.png")
    _register(app, photos, "chelsea.png", pdq_only="yes")
    for fmt in ("jsonl", "te-csv", "pdq"):
        r = app.get(f"/api/export?format={fmt}")
        assert r.status_code == 200 and r.headers["x-takeback-count"] == "2"
        assert "attachment" in r.headers["content-disposition"]
        path = tmp_path / f"export.{fmt}"
        path.write_bytes(r.content)
        report = read_entries(path, fmt=fmt)
        assert {str(e.pdq) for e in report.entries} == {
            str(fingerprint_file(photos[n]).pdq) for n in ("astronaut.png", "chelsea.png")
        }
    bad = app.get("/api/export?format=xml")
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "format"


# -- step 2: check -----------------------------------------------------------------------


def test_check_with_the_original(
    app: App, photos: dict[str, Path], fake: bytes, tmp_path: Path
) -> None:
    r = app.post_files(
        "/api/check",
        {"adult": "yes"},
        suspect=("fake.jpg", fake, "image/jpeg"),
        original=_photo(photos, "astronaut.png"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "derived" and body["original_how"] == "given"
    assert 15 < body["altered_percent"] < 50 and body["regions"] >= 1
    assert body["suspect"]["name"] == "fake.jpg" and body["original"]["name"] == "astronaut.png"
    images = body["images"]
    assert images["redaction"] == "region"
    for key in ("side_by_side", "overlay", "heatmap"):
        assert images[key].startswith("data:image/jpeg;base64,")
    kinds = [m["kind"] for m in body["marks"]]
    assert kinds == ["c2pa", "generator", "source_type", "watermark"]
    assert all(m["meaning"].count(".") == 1 for m in body["marks"])  # one sentence each
    assert body["proves"] and body["does_not_prove"]
    _no_private_leftovers(tmp_path)
    assert not app.config.bank_dir.exists()  # checking stores nothing


def test_check_finds_the_original_through_the_bank(
    app: App, photos: dict[str, Path], tmp_path: Path
) -> None:
    # A re-encoded repost matches the registered fingerprint, but the bank has no photo.
    repost, _ = doctored_copy(np.asarray(rgb(photos["chelsea.png"])), None, quality=80)
    registered = _register(app, photos, "chelsea.png")
    r = app.post_files("/api/check", {"adult": "yes"}, suspect=("repost.jpg", repost, "image/jpeg"))
    body = r.json()
    assert body["verdict"] == "inconclusive" and body["needs_original"]
    assert body["original_how"] == "matched_unknown_file"
    assert (
        body["match"]["id"] == registered["id"] and "choose your original" in body["original_text"]
    )
    assert body["images"]["redaction"] == "whole"

    # Once the person lets TakeBack remember where the photo is, it is found.
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "chelsea.png").write_bytes(photos["chelsea.png"].read_bytes())
    app.client.post(
        "/api/originals",
        json={
            "folder": str(folder),
            "photos": [{"sha256": registered["sha256"], "size": registered["size"]}],
        },
        headers=app.headers,
    )
    body = app.post_files(
        "/api/check", {"adult": "yes"}, suspect=("repost.jpg", repost, "image/jpeg")
    ).json()
    assert body["original_how"] == "bank" and body["verdict"] == "identical"
    assert body["original"]["sha256"] == registered["sha256"]
    _no_private_leftovers(tmp_path)


def test_check_needs_the_adult_confirmation(app: App, fake: bytes) -> None:
    r = app.post_files("/api/check", {}, suspect=("fake.jpg", fake, "image/jpeg"))
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["field"] == "adult" and "child-protection hotline" in error["message"]
    missing = app.post_files(
        "/api/check", {"adult": "yes"}, original=("me.jpg", fake, "image/jpeg")
    )
    assert missing.status_code == 400 and missing.json()["error"]["field"] == "suspect"


def _bad_files(photos: dict[str, Path]) -> dict[str, tuple[bytes, str]]:
    jpeg = photos["rocket.jpg"].read_bytes()
    return {
        "not_an_image": (b"this is a text file, not a picture\n" * 10, "notes.jpg"),
        "corrupt_image": (jpeg[: len(jpeg) // 3], "cut.jpg"),
        "image_too_small": (_tiny_png(), "tiny.png"),
    }


def _tiny_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 100, 50)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("code", ["not_an_image", "corrupt_image", "image_too_small"])
@pytest.mark.parametrize("field", ["suspect", "original"])
def test_bad_files_are_named_next_to_their_field(
    app: App, photos: dict[str, Path], fake: bytes, tmp_path: Path, code: str, field: str
) -> None:
    data, name = _bad_files(photos)[code]
    files = {"suspect": ("fake.jpg", fake, "image/jpeg"), field: (name, data, "image/jpeg")}
    r = app.post_files("/api/check", {"adult": "yes"}, **files)
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"].startswith(name)  # the file as the person named it ...
    assert "takeback-app-" not in error["message"] and str(tmp_path) not in error["message"]
    _no_private_leftovers(tmp_path)


def test_register_reports_bad_files(app: App, photos: dict[str, Path]) -> None:
    for code, (data, name) in _bad_files(photos).items():
        r = app.post_files("/api/register", {}, photo=(name, data, "image/jpeg"))
        assert r.status_code == 400
        assert r.json()["error"] == {**r.json()["error"], "code": code, "field": "photo"}


def test_too_large_files(tmp_path: Path, photos: dict[str, Path]) -> None:
    for app in _make_app(tmp_path, ImageLimits(max_file_bytes=200_000)):
        big = photos["astronaut.png"].read_bytes()  # 791,555 bytes
        assert len(big) > 200_000
        small = photos["camera.png"].read_bytes()
        assert len(small) < 200_000
        # Within the request's budget, the file itself is over the limit.
        r = app.post_files(
            "/api/check",
            {"adult": "yes"},
            suspect=("camera.png", small, "image/png"),
            original=("astronaut.png", big[:300_000], "image/png"),
        )
        assert r.status_code == 413
        error = r.json()["error"]
        assert error["code"] == "image_too_large" and error["field"] == "original"
        assert error["message"].startswith("astronaut.png is 300,000 bytes; the limit is 200,000")
        # Over the whole request's budget: refused while reading.
        r = app.post_files(
            "/api/check", {"adult": "yes"}, suspect=("huge.png", big * 2, "image/png")
        )
        assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large"


def test_safe_names() -> None:
    assert safe_name("../../etc/passwd") == "passwd"
    assert safe_name("a\x00b\nc.jpg") == "abc.jpg"
    assert safe_name("...") == "image"
    assert len(safe_name("x" * 500 + ".jpeg")) <= 120


# -- step 3: evidence ---------------------------------------------------------------


def test_package_zip_and_pdf(
    app: App, photos: dict[str, Path], fake: bytes, tmp_path: Path
) -> None:
    _register(app, photos, "astronaut.png", sign="yes", log="yes")
    fields = {
        "adult": "yes",
        "seen_url": "https://example.org/post/17",
        "seen_at": "2026-05-01T21:30+02:00",
        "account": "@someone",
        "requested_by": "Alex Doe",
        "notes": "seen in a group chat",
    }
    r = app.post_files(
        "/api/package",
        fields,
        suspect=("fake.jpg", fake, "image/jpeg"),
        original=_photo(photos, "astronaut.png"),
        screenshot=_photo(photos, "coffee.png"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "derived" and re.fullmatch(r"[0-9a-f]{64}", body["sha256"])
    archive = app.client.get(body["zip"]["url"])
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    out = tmp_path / "unzipped"
    zipfile.ZipFile(io.BytesIO(archive.content)).extractall(out)
    package = out / body["name"]
    check = verify_package(package)
    assert check.ok, check.problems
    assert check.sha256 == body["sha256"]
    report = json.loads((package / "report.json").read_text())
    assert report["case"]["seen"] == {
        "url": "https://example.org/post/17",
        "at": "2026-05-01T19:30:00Z",
        "account": "@someone",
    }
    assert (
        report["case"]["requested_by"] == "Alex Doe"
        and report["case"]["screenshot"] == "coffee.png"
    )
    assert report["provenance"]["c2pa"]["status"] == "trusted"
    assert report["provenance"]["log"]["verified"] is True
    assert (package / "evidence" / "suspect.jpg").read_bytes() == fake
    assert report["tool"]["invocation"]["command"] == "takeback app"
    pdf = app.client.get(body["pdf"]["url"])
    assert pdf.content.startswith(b"%PDF-") and pdf.content == (package / "report.pdf").read_bytes()
    _no_private_leftovers(tmp_path)

    # The package lives in memory only, and can be forgotten at once.
    forgotten = app.client.delete(f"/api/package/{body['token']}", headers=app.headers)
    assert forgotten.json() == {"forgotten": True}
    assert app.client.get(body["zip"]["url"]).status_code == 404
    assert app.client.get("/download/nothing/here.zip").status_code == 404


def test_package_field_errors(app: App, fake: bytes) -> None:
    r = app.post_files(
        "/api/package",
        {"adult": "yes", "seen_at": "last tuesday"},
        suspect=("fake.jpg", fake, "image/jpeg"),
    )
    assert r.status_code == 400 and r.json()["error"]["field"] == "seen_at"
    r = app.post_files(
        "/api/package",
        {"adult": "yes", "notes": "x" * 10_001},
        suspect=("fake.jpg", fake, "image/jpeg"),
    )
    assert r.status_code == 400 and r.json()["error"]["field"] == "notes"
    r = app.post_files(
        "/api/package",
        {"adult": "yes"},
        suspect=("fake.jpg", fake, "image/jpeg"),
        screenshot=("shot.png", b"not a picture", "image/png"),
    )
    assert r.json()["error"] == {**r.json()["error"], "field": "screenshot", "code": "not_an_image"}


# -- the command --------------------------------------------------------------------


def test_app_command_serves_until_interrupted(tmp_path: Path) -> None:
    script = (
        "import typer\n"
        "from takeback.cli_app import register\n"
        "app = typer.Typer()\n"
        "app.callback()(lambda: None)\n"
        "register(app)\n"
        "app()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKEBACK_")}
    env["TAKEBACK_HOME"] = str(tmp_path / "home")
    with subprocess.Popen(
        [sys.executable, "-c", script, "app", "--no-browser"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            match = re.fullmatch(r"TakeBack is running at (http://127\.0\.0\.1:\d+/)\n", line)
            assert match, line
            page = httpx.get(match.group(1), timeout=10)  # the socket listens before the line
            assert page.status_code == 200 and "TakeBack" in page.text
            proc.send_signal(signal.SIGINT)
            _, errors = proc.communicate(timeout=20)
            assert proc.returncode == 0, errors
            assert "Everything stays on this computer" in errors
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


@pytest.mark.parametrize("name", ["config", "uploads", "originals", "work", "run"])
def test_docstring_examples(name: str) -> None:
    import importlib

    module = importlib.import_module(f"takeback.app.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
