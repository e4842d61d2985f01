"""The local app end to end, in headless Debian Chromium driven by Playwright.

The real server (uvicorn on a free port of 127.0.0.1) serves the real page;
the tests register real sample photos, check a benign doctored copy made in
code, download the evidence package and verify it, feed bad files, use the page
with the keyboard only and on a phone-sized window.

Screenshots of each step are saved in pytest's temporary folder; with
``TAKEBACK_APP_SCREENSHOTS=docs/img`` they are also copied there (that is how
``docs/img/app-*.png`` are made).
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from takeback.app import AppConfig, LocalServer, create_app
from takeback.bank.exchange import read_entries
from takeback.evidence import verify_package
from takeback.imageio import ImageLimits

from .helpers import doctored_copy, rgb

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Files over this size are refused (small, so a "too large" file is cheap to make).
MAX_FILE_BYTES = 1_500_000
WAIT_MS = 30_000

sync_api.expect.set_options(timeout=WAIT_MS)  # an examination takes seconds on a busy machine

assert CHROMIUM.exists(), "Debian chromium is not installed: run install.sh"


@dataclass
class Site:
    server: LocalServer
    config: AppConfig
    home: Path
    files: dict[str, Path]
    shots: Path


@pytest.fixture(scope="module")
def site(photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("app-browser")
    home = root / "home"  # the person's home folder: "Pictures/me" is typed relative to it
    mine = home / "Pictures" / "me"
    mine.mkdir(parents=True)
    for name in ("astronaut.png", "coffee.png"):
        shutil.copy(photos[name], mine / name)
    (mine / "notes.txt").write_text("not a photo\n")
    work = root / "downloads"
    work.mkdir()
    fake, _ = doctored_copy(
        np.asarray(rgb(photos["astronaut.png"])),
        np.asarray(rgb(photos["coffee.png"])),
        replaced=0.3,
    )
    jpeg = photos["rocket.jpg"].read_bytes()
    files = {
        "mine": mine,
        "astronaut": mine / "astronaut.png",
        "chelsea": photos["chelsea.png"],
        "fake": _write(work / "fake.jpg", fake),
        "text": _write(work / "notes.jpg", b"this is a text file, not a picture\n" * 20),
        "truncated": _write(work / "cut.jpg", jpeg[: len(jpeg) // 3]),
        "big": _write(work / "big.jpg", b"\xff\xd8\xff" + bytes(MAX_FILE_BYTES + 1000)),
        "work": work,
    }
    config = AppConfig.from_env(
        home=root / "takeback",
        limits=ImageLimits(max_file_bytes=MAX_FILE_BYTES),
        environ={},
    )
    shots = tmp_path_factory.mktemp("screenshots")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        with LocalServer(create_app(config)) as server:
            yield Site(server, config, home, files, shots)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh page on the app; fails the test on console errors (CSP refusals too)."""
    context = browser.new_context(viewport={"width": 1000, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if _is_problem(m) else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.set_default_timeout(WAIT_MS)
    page.goto(site.server.url)
    yield page
    context.close()
    assert problems == [], problems


def _is_problem(message: Any) -> bool:
    # The page reports input errors the server answers with 4xx next to the input;
    # Chromium logs each such answer too. Anything else (a CSP refusal, a script
    # error, a 5xx) is a problem.
    expected = "Failed to load resource: the server responded with a status of 4"
    return bool(message.type == "error" and not message.text.startswith(expected))


def _shot(site: Site, target: Any, name: str) -> Path:
    path = site.shots / f"app-{name}.png"
    target.screenshot(path=str(path))
    copy_to = os.environ.get("TAKEBACK_APP_SCREENSHOTS")
    if copy_to:
        # 256 colours keep the committed pictures small and still readable.
        Path(copy_to).mkdir(parents=True, exist_ok=True)
        with Image.open(path) as image:
            small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
            small.save(Path(copy_to) / path.name, optimize=True)
    return path


def _download(page: Any, selector: str, folder: Path) -> Path:
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    path = folder / download.suggested_filename
    download.save_as(str(path))
    return path


def test_register_check_and_package(page: Any, site: Site, tmp_path: Path) -> None:
    expect = sync_api.expect
    expect(page.locator("#local-note")).to_contain_text("Everything stays on this computer")

    # 1. Register a folder of photos: fingerprints with progress, one photo PDQ only.
    page.set_input_files("#folder-input", str(site.files["mine"]))
    expect(page.locator("#fingerprint-status")).to_contain_text(
        "Fingerprints computed for 2 of 2 photos"
    )
    expect(page.locator("#photos-body tr")).to_have_count(2)
    page.get_by_label("PDQ only for coffee.png").check()
    page.check("#opt-sign")
    page.check("#opt-remember")
    page.fill("#remember-folder", "Pictures/me")
    page.click("#register-button")
    expect(page.locator("#register-status")).to_contain_text("Registered 2 of 2 photos")
    astronaut = page.locator("#photos-body tr", has_text="astronaut.png")
    expect(astronaut).to_contain_text("place remembered")
    expect(astronaut.get_by_role("button", name="Download its Content Credentials")).to_be_visible()
    coffee = page.locator("#photos-body tr", has_text="coffee.png")
    expect(coffee).to_contain_text("registered as #")
    expect(coffee.get_by_role("button")).to_have_count(0)  # PDQ only: never signed
    expect(page.locator("#bank-summary")).to_contain_text("2 photos are registered")
    _shot(site, page.locator("#register"), "register")

    page.select_option("#export-format", "te-csv")
    exported = _download(page, "#export-button", tmp_path)
    assert exported.name == "takeback-fingerprints.csv"
    labels = {e.label for e in read_entries(exported).entries}
    assert "astronaut.png" in labels and any(x.startswith("private photo ") for x in labels)

    # 2. Check the doctored copy; its original is found among the remembered ones.
    page.check("#adult")
    page.set_input_files("#suspect-input", str(site.files["fake"]))
    page.click("#check-button")
    expect(page.locator("#verdict")).to_have_text(
        "This picture was made from your photo: part of it was replaced."
    )
    expect(page.locator("#verdict")).to_be_focused()
    expect(page.locator("#original-text")).to_contain_text("astronaut.png")
    expect(page.locator("#side-img")).to_be_visible()
    expect(page.locator("#marks li")).to_have_count(4)
    page.fill("#blend", "60")
    expect(page.locator("#heatmap-img")).to_have_attribute("style", "opacity: 0.6;")
    expect(page.locator("#blend")).to_have_attribute("aria-valuetext", "40% overlay, 60% heatmap")
    _shot(site, page.locator("#check"), "check")

    # 3. Evidence: where and when it was seen, then the package (ZIP and PDF).
    page.fill("#seen-url", "https://example.org/post/17")
    page.fill("#seen-at", "2026-05-01T21:30")
    page.fill("#account", "@someone")
    page.click("#package-button")
    expect(page.locator("#package-result")).to_be_visible()
    sha = page.inner_text("#package-sha")
    archive = _download(page, "#zip-link", tmp_path)
    with zipfile.ZipFile(archive) as z:
        z.extractall(tmp_path / "unzipped")
    package = tmp_path / "unzipped" / archive.stem
    result = verify_package(package)
    assert result.ok, result.problems
    assert result.sha256 == sha
    report = json.loads((package / "report.json").read_text())
    assert report["summary"]["verdict"] == "derived"
    assert report["case"]["seen"]["url"] == "https://example.org/post/17"
    assert report["case"]["seen"]["at"].startswith("2026-05-01T")
    assert report["provenance"]["c2pa"]["status"] == "trusted"
    pdf = _download(page, "#pdf-link", tmp_path)
    assert pdf.read_bytes() == (package / "report.pdf").read_bytes()
    _shot(site, page.locator("#evidence"), "evidence")

    page.click("#package-forget")
    expect(page.locator("#package-status")).to_contain_text("forgotten")


def test_bad_files_show_their_error_next_to_the_input(page: Any, site: Site) -> None:
    expect = sync_api.expect
    suspect_error = page.locator("#suspect-error")
    page.click("#check-button")  # nothing chosen, adult not confirmed
    expect(page.locator("#adult-error")).to_contain_text("child-protection hotline")
    expect(page.locator("#adult")).to_be_focused()
    page.check("#adult")
    for key, code in (
        ("text", "not_an_image"),
        ("truncated", "corrupt_image"),
        ("big", "image_too_large"),
    ):
        page.set_input_files("#suspect-input", str(site.files[key]))
        page.click("#check-button")
        expect(suspect_error).to_contain_text(f"({code})")
        expect(suspect_error).to_contain_text(site.files[key].name)
        expect(page.locator("#suspect-input")).to_have_attribute("aria-invalid", "true")
    expect(suspect_error).to_contain_text(f"the limit is {MAX_FILE_BYTES:,}")

    page.set_input_files("#suspect-input", str(site.files["chelsea"]))
    page.set_input_files("#original-input", str(site.files["text"]))
    page.click("#check-button")
    expect(page.locator("#original-error")).to_contain_text("notes.jpg is not an image")
    expect(suspect_error).to_be_empty()
    _shot(site, page.locator("#check-form"), "errors")

    files = [str(site.files[k]) for k in ("text", "truncated", "big")]
    page.set_input_files("#photos-input", files)
    expect(page.locator("#fingerprint-status")).to_contain_text("3 could not be read")
    for name, code in (
        ("notes.jpg", "not_an_image"),
        ("cut.jpg", "corrupt_image"),
        ("big.jpg", "image_too_large"),
    ):
        row = page.locator("#photos-body tr", has_text=name)
        expect(row.locator(".error")).to_contain_text(f"({code})")
    expect(page.locator("#register-button")).to_be_disabled()


def _tab_to(page: Any, element_id: str, limit: int = 80) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} cannot be reached with the Tab key")


def _choose_with_enter(page: Any, choosers: list[Any], path: Path) -> None:
    """Press Enter on the focused file input; pick ``path`` in the dialog it opens."""
    page.keyboard.press("Enter")
    for _ in range(200):
        if choosers:
            choosers.pop().set_files(str(path))
            return
        page.wait_for_timeout(50)
    raise AssertionError("Enter on the file input opened no file dialog")


def test_keyboard_only(page: Any, site: Site, tmp_path: Path) -> None:
    expect = sync_api.expect
    # Listen for file choosers from the start: Playwright turns the interception of
    # the system's file dialog on asynchronously, so a listener added just before
    # the key press can miss the dialog.
    choosers: list[Any] = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    _tab_to(page, "adult")
    page.keyboard.press("Space")
    expect(page.locator("#adult")).to_be_checked()
    _tab_to(page, "suspect-input", limit=1)
    _choose_with_enter(page, choosers, site.files["fake"])
    _tab_to(page, "original-input", limit=1)
    _choose_with_enter(page, choosers, site.files["astronaut"])
    _tab_to(page, "check-button", limit=1)
    page.keyboard.press("Enter")
    expect(page.locator("#verdict")).to_be_focused()
    expect(page.locator("#verdict")).to_contain_text("made from your photo")
    expect(page.locator("#original-text")).to_contain_text("the original you chose")

    _tab_to(page, "blend")
    page.keyboard.press("End")
    expect(page.locator("#heatmap-img")).to_have_attribute("style", "opacity: 1;")
    _tab_to(page, "seen-url")
    page.keyboard.type("https://example.org/p/3")
    _tab_to(page, "package-button")
    page.keyboard.press("Enter")
    expect(page.locator("#package-title")).to_be_focused()
    _tab_to(page, "zip-link", limit=3)
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    assert info.value.suggested_filename.endswith(".zip")


def test_phone_sized_window(browser: Any, site: Site) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(site.server.url)
        sync_api.expect(page.locator("h1")).to_have_text("TakeBack")
        width = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert width[0] <= width[1], f"the page scrolls sideways on a phone: {width}"
        font = page.evaluate("() => getComputedStyle(document.querySelector('p')).fontSize")
        assert float(font.removesuffix("px")) >= 16
        _shot(site, page, "phone")
    finally:
        context.close()
