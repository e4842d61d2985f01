"""The ``takeback`` command, run for real in a subprocess: the contract of docs/cli.md."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from takeback.bank.store import DB_NAME
from takeback.provenance.log import RegistrationLog

from .conftest import CliResult
from .helpers import encode, rgb, write

Cli = Callable[..., CliResult]


def _no_traceback(result: CliResult) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


@pytest.fixture
def registered(cli: Cli, bank_dir: Path, photos: dict[str, Path]) -> dict[str, int]:
    result = cli("bank", "add", *photos.values(), "--bank", bank_dir, "--json")
    assert result.code == 0, result.stderr
    rows = result.json_lines()
    return {Path(str(r["path"])).name: int(r["id"]) for r in rows}  # type: ignore[call-overload]


def test_demo_runs_the_whole_job(cli: Cli) -> None:
    result = cli("demo")
    assert result.code == 0, result.stderr
    assert "All expectations held" in result.stdout
    assert "chelsea-doctored.jpg" in result.stdout and "no match" in result.stdout
    heavy = next(line for line in result.stdout.splitlines() if "heavily-doctored" in line)
    assert "found by the derivative fingerprint" in heavy and "as expected" in heavy


def test_hash_json_contract(cli: Cli, photos: dict[str, Path]) -> None:
    result = cli("hash", photos["astronaut.png"], photos["coffee.png"], "--json")
    assert result.code == 0, result.stderr
    rows = result.json_lines()
    assert [r["path"] for r in rows] == [str(photos["astronaut.png"]), str(photos["coffee.png"])]
    assert set(rows[0]) == {"path", "sha256", "md5", "pdq", "quality", "width", "height"}
    assert len(str(rows[0]["pdq"])) == 64 and rows[0]["width"] == 512


def test_hash_walks_directories_and_globs(
    cli: Cli, tmp_path: Path, photos: dict[str, Path]
) -> None:
    img = rgb(photos["coffee.png"])
    write(tmp_path / "album" / "a.jpg", encode(img, "JPEG"))
    write(tmp_path / "album" / "deeper" / "b.PNG", encode(img, "PNG"))
    write(tmp_path / "album" / "notes.txt", b"not an image, not picked up from a directory")
    by_dir = cli("hash", tmp_path / "album", "--json").json_lines()
    assert sorted(Path(str(r["path"])).name for r in by_dir) == ["a.jpg", "b.PNG"]
    by_glob = cli("hash", f"{tmp_path}/album/**/*.jpg", "--json").json_lines()
    assert [Path(str(r["path"])).name for r in by_glob] == ["a.jpg"]


def test_bank_add_list_stats_and_duplicates(
    cli: Cli, bank_dir: Path, registered: dict[str, int], photos: dict[str, Path]
) -> None:
    assert len(registered) == len(photos)
    again = cli("bank", "add", photos["astronaut.png"], "--bank", bank_dir, "--json").json_lines()
    assert again[0]["duplicate_of"] == registered["astronaut.png"]
    listed = cli("bank", "list", "--bank", bank_dir, "--json").json_lines()
    assert [r["label"] for r in listed] == list(photos)
    assert all(len(str(r["derivative_digest"])) == 64 for r in listed)
    stats = cli("bank", "stats", "--bank", bank_dir, "--json").json_lines()[0]
    assert stats["entries"] == stats["with_derivative"] == len(photos)
    human = cli("bank", "list", "--bank", bank_dir)
    assert "astronaut.png" in human.stdout


def _copies(photos: dict[str, Path], out: Path) -> dict[str, tuple[Path, str]]:
    """Reposted copies of real photos made in code: name -> (file, original label)."""
    made: dict[str, tuple[Path, str]] = {}
    chelsea, coffee = rgb(photos["chelsea.png"]), rgb(photos["coffee.png"])
    astronaut, rocket = rgb(photos["astronaut.png"]), rgb(photos["rocket.jpg"])
    half = (coffee.width // 2, coffee.height // 2)
    made["reencoded"] = (
        write(out / "reencoded.jpg", encode(chelsea, "JPEG", quality=55)),
        "chelsea.png",
    )
    made["resized"] = (
        write(out / "resized.webp", encode(coffee.resize(half), "WEBP")),
        "coffee.png",
    )
    flipped = astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    made["flipped"] = (
        write(out / "flipped.jpg", encode(flipped, "JPEG", quality=80)),
        "astronaut.png",
    )
    turned = rocket.transpose(Image.Transpose.ROTATE_90)
    made["rotated90"] = (write(out / "rotated.png", encode(turned, "PNG")), "rocket.jpg")
    return made


def test_match_finds_reposted_copies_of_real_photos(
    cli: Cli,
    bank_dir: Path,
    registered: dict[str, int],
    photos: dict[str, Path],
    unrelated: dict[str, Path],
    tmp_path: Path,
) -> None:
    copies = _copies(photos, tmp_path / "suspects")
    strangers = [
        write(tmp_path / "suspects" / f"stranger-{p.stem}.jpg", encode(rgb(p), "JPEG", quality=80))
        for p in unrelated.values()
        if p.name != "motorcycle_right.png"  # the stereo twin of a registered photo
    ]
    paths = [p for p, _ in copies.values()] + strangers
    result = cli("match", *paths, "--bank", bank_dir, "--json")
    assert result.code == 0, result.stderr
    rows = {Path(str(r["path"])).name: r for r in result.json_lines()}
    for kind, (path, label) in copies.items():
        matches = rows[path.name]["matches"]
        assert matches, kind
        top = matches[0]  # type: ignore[index]
        assert top["label"] == label and top["id"] == registered[label], kind
        assert top["method"] == "pdq" and top["distance"] <= top["threshold"] == 31, kind
        assert set(top) == {"id", "label", "method", "distance", "threshold", "variant", "score"}
    assert rows["flipped.jpg"]["matches"][0]["variant"] == "flip_horizontal"  # type: ignore[index]
    assert rows["rotated.png"]["matches"][0]["variant"] != "original"  # type: ignore[index]
    for stranger in strangers:
        assert rows[stranger.name]["matches"] == [], stranger.name


def test_no_variants_leaves_the_flipped_copy_to_the_derivative_fingerprint(
    cli: Cli, bank_dir: Path, registered: dict[str, int], photos: dict[str, Path], tmp_path: Path
) -> None:
    path, _ = _copies(photos, tmp_path)["flipped"]
    rows = cli("match", path, "--bank", bank_dir, "--json", "--no-variants").json_lines()
    [top] = rows[0]["matches"]  # type: ignore[misc]
    assert top["method"] == "derivative" and top["mirrored"] is True
    assert top["id"] == registered["astronaut.png"]
    rows = cli(
        "match", path, "--bank", bank_dir, "--json", "--no-variants", "--derivative", "never"
    ).json_lines()
    assert rows[0]["matches"] == [] and rows[0]["derivative_searched"] is False


def test_exact_copy_is_matched_by_sha256(
    cli: Cli, bank_dir: Path, registered: dict[str, int], photos: dict[str, Path]
) -> None:
    rows = cli("match", photos["camera.png"], "--bank", bank_dir, "--json").json_lines()
    top = rows[0]["matches"][0]  # type: ignore[index]
    assert top["method"] == "sha256" and top["distance"] == 0 and top["score"] == 1.0


def test_withdrawn_photo_no_longer_matches(
    cli: Cli, bank_dir: Path, registered: dict[str, int], photos: dict[str, Path]
) -> None:
    gone = registered["coffee.png"]
    result = cli("bank", "remove", gone, "--bank", bank_dir)
    assert result.code == 0 and f"#{gone} removed" in result.stdout
    rows = cli("match", photos["coffee.png"], "--bank", bank_dir, "--json").json_lines()
    assert rows[0]["matches"] == []
    missing = cli("bank", "remove", gone, "--bank", bank_dir)
    assert missing.code == 1 and "no fingerprint with id" in missing.stderr


@pytest.mark.parametrize("fmt", ["jsonl", "te-csv", "pdq"])
def test_export_import_round_trip(
    cli: Cli, bank_dir: Path, registered: dict[str, int], tmp_path: Path, fmt: str
) -> None:
    exported = tmp_path / f"export.{fmt}"
    assert cli("bank", "export", "--bank", bank_dir, "--format", fmt, "-o", exported).code == 0
    other = tmp_path / "other-bank"
    result = cli("bank", "import", exported, "--bank", other, "--format", fmt, "--json")
    assert result.code == 0, result.stderr
    assert result.json_lines()[0]["added"] == len(registered)
    again = tmp_path / f"again.{fmt}"
    assert cli("bank", "export", "--bank", other, "--format", fmt, "-o", again).code == 0
    if fmt == "pdq":
        assert exported.read_text() == again.read_text()
    else:  # ids differ between banks; everything else survives
        before = cli("bank", "list", "--bank", bank_dir, "--json").json_lines()
        after = cli("bank", "list", "--bank", other, "--json").json_lines()
        strip = ("id", "seq", "derivative_digest")
        if fmt != "jsonl":
            strip += ("source",)
        assert [{k: v for k, v in r.items() if k not in strip} for r in before] == [
            {k: v for k, v in r.items() if k not in strip} for r in after
        ]
        # Derivative fingerprints stay in the bank that made them (formats.md).
        assert all(r["derivative_digest"] for r in before)
        assert not any(r["derivative_digest"] for r in after)


def test_malformed_import_imports_nothing_unless_skip_bad(
    cli: Cli, bank_dir: Path, registered: dict[str, int], tmp_path: Path
) -> None:
    good = ["f" * 64, "0123456789abcdef" * 4]
    bad_file = write(tmp_path / "partner.txt", "\n".join([good[0], "not-a-hash", good[1]]).encode())
    rejected = cli("bank", "import", bad_file, "--bank", bank_dir, "--format", "pdq")
    assert rejected.code == 4
    assert "partner.txt" in rejected.stderr and "line 2" in rejected.stderr
    _no_traceback(rejected)
    count = cli("bank", "stats", "--bank", bank_dir, "--json").json_lines()[0]["entries"]
    assert count == len(registered), "a rejected import must not change the bank"
    skipped = cli("bank", "import", bad_file, "--bank", bank_dir, "--format", "pdq", "--skip-bad")
    assert skipped.code == 1 and "line 2" in skipped.stderr
    count = cli("bank", "stats", "--bank", bank_dir, "--json").json_lines()[0]["entries"]
    assert count == len(registered) + 2


@pytest.fixture
def hostile_dir(photos: dict[str, Path]) -> Iterator[Path]:
    """A world-readable directory of bad inputs beside one good photo."""
    root = Path(tempfile.mkdtemp(prefix="takeback-hostile-"))
    os.chmod(root, 0o755)
    good = rgb(photos["chelsea.png"])
    data = encode(good, "JPEG", quality=90)
    write(root / "good.jpg", data)
    write(root / "text.jpg", b"just some text, not pixels\n")
    write(root / "empty.png", b"")
    write(root / "truncated.jpg", data[: len(data) // 2])
    from .test_imageio import _png_header_only

    write(root / "bomb.png", _png_header_only(100_000, 100_000))
    write(root / "dot.png", encode(Image.new("RGB", (1, 1)), "PNG"))
    locked = write(root / "locked.jpg", data)
    os.chmod(locked, 0o000)
    (root / "loop").mkdir()
    os.symlink("..", root / "loop" / "back-up")  # a symbolic-link loop
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and p.name != "locked.jpg":
            os.chmod(p, 0o644)
    yield root
    os.chmod(locked, 0o644)
    for p in sorted(root.rglob("*"), reverse=True):
        if p.is_symlink() or p.is_file():
            p.unlink()
        else:
            p.rmdir()
    root.rmdir()


def test_bad_inputs_are_reported_and_the_batch_goes_on(cli: Cli, hostile_dir: Path) -> None:
    # Root reads any file: drop its permission-override capabilities so mode 000 holds.
    result = cli("hash", hostile_dir, "--json", drop_root_override=True)
    _no_traceback(result)
    assert result.code == 1
    rows = {Path(str(r["path"])).name: r for r in result.json_lines()}
    assert "sha256" in rows["good.jpg"]
    expected = {
        "text.jpg": "not_an_image",
        "empty.png": "not_an_image",
        "truncated.jpg": "corrupt_image",
        "bomb.png": "image_too_large",
        "dot.png": "image_too_small",
        "locked.jpg": "file_unreadable",
    }
    for name, code in expected.items():
        error = rows[name]["error"]
        assert error["code"] == code, (name, error)  # type: ignore[index]
        assert name in error["message"], name  # type: ignore[index]
        assert name in result.stderr
    # The symbolic-link loop was walked once: every file appears exactly once.
    names = [Path(str(r["path"])).name for r in result.json_lines()]
    assert sorted(names) == sorted([*expected, "good.jpg"])


def test_missing_bank_is_a_clear_error(cli: Cli, tmp_path: Path, photos: dict[str, Path]) -> None:
    result = cli("match", photos["coffee.png"], "--bank", tmp_path / "nowhere")
    assert result.code == 3 and "no bank at" in result.stderr
    _no_traceback(result)
    as_json = cli("match", photos["coffee.png"], "--bank", tmp_path / "nowhere", "--json")
    assert as_json.json_lines()[0]["error"]["code"] == "bank_missing"  # type: ignore[index]


def test_corrupt_bank_is_refused_and_left_untouched(
    cli: Cli, tmp_path: Path, photos: dict[str, Path]
) -> None:
    bank = tmp_path / "bank"
    bank.mkdir()
    junk = b"definitely not sqlite " * 200
    (bank / DB_NAME).write_bytes(junk)
    for args in (
        ("match", photos["coffee.png"]),
        ("bank", "add", photos["coffee.png"]),
        ("bank", "list"),
    ):
        result = cli(*args, "--bank", bank)
        assert result.code == 3, args
        assert "damaged" in result.stderr or "not a TakeBack bank" in result.stderr
        _no_traceback(result)
    assert (bank / DB_NAME).read_bytes() == junk


def test_locked_bank_waits_then_fails_without_losing_data(
    cli: Cli, bank_dir: Path, registered: dict[str, int], photos: dict[str, Path], tmp_path: Path
) -> None:
    extra = write(tmp_path / "new.jpg", encode(rgb(photos["coffee.png"]).rotate(3), "JPEG"))
    holder = sqlite3.connect(bank_dir / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = cli("bank", "add", extra, "--bank", bank_dir, env={"TAKEBACK_BANK_TIMEOUT": "0.3"})
        assert result.code == 3 and "locked" in result.stderr
        _no_traceback(result)
        # Matching only reads: it still works while another process writes.
        assert cli("match", photos["coffee.png"], "--bank", bank_dir).code == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    listed = cli("bank", "list", "--bank", bank_dir, "--json").json_lines()
    assert len(listed) == len(registered)


def test_tracebacks_only_with_verbose(cli: Cli, tmp_path: Path) -> None:
    quiet = cli("match", tmp_path / "x.jpg", "--bank", tmp_path / "nowhere")
    _no_traceback(quiet)
    loud = cli("-v", "match", tmp_path / "x.jpg", "--bank", tmp_path / "nowhere")
    assert loud.code == 3 and "Traceback" in loud.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("hash",),
        ("match",),
        ("bank",),
        ("bank", "add"),
        ("bank", "import"),
        ("bank", "export"),
        ("demo",),
    ],
)
def test_help_teaches(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli(*args, "--help")
    assert result.code == 0
    assert "Usage" in result.stdout
    if args in {("hash",), ("match",), ("bank", "add"), ("bank", "import"), ("bank", "export")}:
        assert "Examples" in result.stdout


def test_usage_errors_exit_2(cli: Cli) -> None:
    assert cli("match", "--threshold", "999", "x.jpg").code == 2
    assert cli("frobnicate").code == 2


def test_bank_add_log_then_prove_offline(
    cli: Cli, bank_dir: Path, photos: dict[str, Path], tmp_path: Path
) -> None:
    added = cli(
        "bank",
        "add",
        photos["astronaut.png"],
        photos["coffee.png"],
        "--bank",
        bank_dir,
        "--log",
        "--json",
    )
    assert added.code == 0, added.stderr
    indexes = [r["log_index"] for r in added.json_lines()]
    assert indexes == [0, 1]
    with RegistrationLog.open(bank_dir) as log:  # the log commits to the derivative too
        committed = [log.entry(i).data.derivative_digest for i in (0, 1)]
    assert [c.hex() if c else None for c in committed] == [
        r["derivative_digest"] for r in added.json_lines()
    ]
    assert all(committed)
    again = cli("bank", "add", photos["astronaut.png"], "--bank", bank_dir, "--log", "--json")
    assert again.json_lines()[0]["log_index"] is None  # a duplicate is not logged twice
    proof = tmp_path / "coffee.proof"
    made = cli("log", "proof", "1", "-o", proof, "--bank", bank_dir)
    assert made.code == 0, made.stderr
    # Verification needs only the proof file and the log's public key: no bank.
    checked = cli(
        "log",
        "verify",
        proof,
        "--key",
        bank_dir / "log.vkey",
        "--json",
        env={"TAKEBACK_HOME": str(tmp_path / "elsewhere")},
    )
    assert checked.code == 0, checked.stderr
    assert checked.json_lines()[0]["ok"] is True
