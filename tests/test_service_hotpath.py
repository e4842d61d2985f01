"""The service's hot paths against their reference twins.

* :mod:`takeback.service.fastmatch` answers common fingerprint match requests
  without FastAPI: the same requests sent to a service with it and to one
  without give the same answers (status, JSON, headers) and the same audit
  records, for valid requests and for every kind of refusal.
* Upload hashing (:func:`~takeback.service.hashing.fingerprint_upload`): the
  upload's own hash is exactly ``takeback hash``'s; its 8 dihedral variants,
  from one DCT on a 320-pixel square, are exact for that square and a few bits
  from the variants hashed at full size.
* ``takeback serve --workers 2``: two processes behind one port, each loaded
  before it answers (taking turns to load), extending one audit chain, stopped
  cleanly by SIGTERM.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from takeback.fingerprint.pdq import fingerprint_bytes, pdq_from_pixels
from takeback.imageio import ImageLimits
from takeback.service import ServiceSettings
from takeback.service.app import WORKER_SETTINGS_ENV, load_turn, worker_app
from takeback.service.audit import verify_audit
from takeback.service.auth import KeyStore, parse_token
from takeback.service.db import open_service_db
from takeback.service.fastmatch import FAST_BODY_MAX, FastMatch
from takeback.service.hashing import VARIANT_SIZE, fast_variants, fingerprint_upload
from takeback.service.ratelimit import RateLimiter

from .test_service import Service, _settings, running

EXTRA_KEYS = {
    "partner_matcher": ("matcher", ["partner"]),
    "all_matcher": ("matcher", ["*"]),
}
SEED = 20261122


def _flip(hex_hash: str, bits: int) -> str:
    value = int(hex_hash, 16) ^ (((1 << bits) - 1) << (256 - bits))
    return f"{value:064x}"


def _entries() -> list[dict[str, Any]]:
    rng = np.random.default_rng(SEED)
    return [
        {
            "pdq": rng.bytes(32).hex(),
            "quality": 90,
            "sha256": rng.bytes(32).hex(),
            "md5": rng.bytes(16).hex(),
            "label": label,
        }
        for label in ("plain", 'café ☕ "quoted"', "third")
    ]


def _requests() -> list[tuple[str, str, dict[str, str], bytes | Iterator[bytes]]]:
    """(name, who, extra headers, body) of match requests to ``default``."""
    e = _entries()
    rng = np.random.default_rng(SEED + 1)
    other = [rng.bytes(32).hex() for _ in range(8)]
    near = _flip(e[0]["pdq"], 20)
    variants = [*other[:3], e[1]["pdq"], *other[4:]]

    def js(value: Any) -> bytes:
        return json.dumps(value).encode()

    return [
        ("exact", "matcher", {}, js({"pdq": e[0]["pdq"]})),
        ("near", "matcher", {}, js({"pdq": near, "quality": 80})),
        ("random", "matcher", {}, js({"pdq": other[0]})),
        ("variants", "matcher", {}, js({"variants": variants})),
        ("sha256 and pdq", "matcher", {}, js({"pdq": e[2]["pdq"], "sha256": e[2]["sha256"]})),
        ("md5 upper case", "matcher", {}, js({"md5": e[1]["md5"].upper()})),
        ("low quality", "matcher", {}, js({"pdq": e[0]["pdq"], "quality": 10})),
        ("tight threshold", "matcher", {}, js({"pdq": near, "threshold": 10})),
        ("threshold 31", "matcher", {}, js({"pdq": near, "threshold": 31})),
        ("nulls", "matcher", {}, js({"pdq": None, "sha256": e[0]["sha256"], "quality": None})),
        ("upper-case hex", "matcher", {}, js({"pdq": e[1]["pdq"].upper()})),
        ("padded hex", "matcher", {}, js({"pdq": f"  {e[1]['pdq']} "})),
        ("charset", "matcher", {"content-type": "application/json; charset=utf-8"},
         js({"pdq": e[0]["pdq"]})),
        ("threshold over max", "matcher", {}, js({"pdq": near, "threshold": 40})),
        ("threshold negative", "matcher", {}, js({"pdq": near, "threshold": -1})),
        ("bad hex", "matcher", {}, js({"pdq": "zz" * 32})),
        ("short hex", "matcher", {}, js({"pdq": "ab" * 31})),
        ("long padded hex", "matcher", {}, js({"sha256": " " * 30 + e[0]["sha256"]})),
        ("extra field", "matcher", {}, js({"pdq": e[0]["pdq"], "surprise": 1})),
        ("quality as text", "matcher", {}, js({"pdq": e[0]["pdq"], "quality": "90"})),
        ("quality as float", "matcher", {}, js({"pdq": e[0]["pdq"], "quality": 90.0})),
        ("quality as bool", "matcher", {}, js({"pdq": e[0]["pdq"], "quality": True})),
        ("quality 101", "matcher", {}, js({"pdq": e[0]["pdq"], "quality": 101})),
        ("pdq and variants", "matcher", {}, js({"pdq": "zz", "variants": variants})),
        ("7 variants", "matcher", {}, js({"variants": variants[:7]})),
        ("pdq not a string", "matcher", {}, js({"pdq": 12})),
        ("empty object", "matcher", {}, js({})),
        ("array", "matcher", {}, js([e[0]["pdq"]])),
        ("not json", "matcher", {}, b"pdq=" + e[0]["pdq"].encode()),
        ("text/plain", "matcher", {"content-type": "text/plain"}, js({"pdq": e[0]["pdq"]})),
        ("over the hot-path size", "matcher", {},
         js({"pdq": e[0]["pdq"]}).replace(b"{", b"{" + b" " * FAST_BODY_MAX, 1)),
        ("chunked", "matcher", {}, iter([b'{"pdq": "', e[0]["pdq"].encode(), b'"}'])),
        ("no key", "nobody", {}, js({"pdq": e[0]["pdq"]})),
        ("wrong secret", "forged", {}, js({"pdq": e[0]["pdq"]})),
        ("basic auth", "basic", {}, js({"pdq": e[0]["pdq"]})),
        ("submitter", "submitter", {}, js({"pdq": e[0]["pdq"]})),
        ("other bank's key", "partner_matcher", {}, js({"pdq": e[0]["pdq"]})),
        ("admin", "admin", {}, js({"pdq": e[0]["pdq"]})),
    ]  # fmt: skip


def _headers(svc: Service, who: str, extra: dict[str, str]) -> dict[str, str]:
    headers = {"content-type": "application/json", **extra}
    if who == "forged":
        key_id = (parse_token(svc.tokens["matcher"]) or ("", ""))[0]
        headers["authorization"] = f"Bearer tbk_{key_id}_{'A' * 43}"
    elif who == "basic":
        headers["authorization"] = "Basic bWF0Y2hlcjpzZWNyZXQ="
    elif who != "nobody":
        headers.update(svc.auth(who))
    return headers


def _audit_rows(settings: ServiceSettings, tokens: dict[str, str]) -> list[tuple[Any, ...]]:
    who_is = {(parse_token(t) or ("", ""))[0]: who for who, t in tokens.items()}
    with contextlib.closing(sqlite3.connect(settings.service_db_location())) as conn:
        rows = conn.execute(
            "SELECT key_id, action, bank, result_count, status FROM audit ORDER BY seq"
        ).fetchall()
    return [(who_is.get(r[0], r[0]), *r[1:]) for r in rows]


def _exchange(root: Path, fast: bool) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], int]:
    """Send every request of :func:`_requests` and the 404s; answers, audit rows, hot-path hits."""
    settings = _settings(
        root, banks={"partner": str(root / "partner")}, fast_match=fast, max_threshold=31
    )
    hits = 0
    answer = FastMatch._answer

    async def counting(self: FastMatch, *args: Any) -> None:
        nonlocal hits
        await answer(self, *args)
        hits += 1

    answers = []
    with pytest.MonkeyPatch.context() as mp, running(settings, EXTRA_KEYS) as svc:
        mp.setattr(FastMatch, "_answer", counting)
        svc.submit(_entries())
        for name, who, extra, body in _requests():
            r = svc.client.post(
                "/v1/banks/default/match", content=body, headers=_headers(svc, who, extra)
            )
            answers.append(_answer_of(name, r, svc.tokens))
            answers[-1]["hot"] = hits
        for bank in ("nobank", "partner"):
            r = svc.client.post(
                f"/v1/banks/{bank}/match", json={"pdq": "ab" * 32}, headers=svc.auth("all_matcher")
            )
            answers.append(_answer_of(bank, r, svc.tokens))
            answers[-1]["hot"] = hits
    return answers, _audit_rows(settings, svc.tokens), hits


def _answer_of(name: str, r: httpx.Response, tokens: dict[str, str]) -> dict[str, Any]:
    kept = ("content-type", "retry-after", "www-authenticate")
    text = r.text
    for who, token in tokens.items():  # key ids differ between the two services
        text = text.replace((parse_token(token) or ("", ""))[0], f"<{who}>")
    return {
        "name": name,
        "status": r.status_code,
        "json": json.loads(text),
        "headers": {h: r.headers.get(h) for h in kept},
    }


def test_hot_path_answers_and_audits_like_the_route(tmp_path: Path) -> None:
    fast, fast_audit, hits = _exchange(tmp_path / "fast", fast=True)
    slow, slow_audit, none = _exchange(tmp_path / "slow", fast=False)
    hot = [a["name"] for a, before in zip(fast, [0] + [a["hot"] for a in fast], strict=False)
           if a.pop("hot") > before]  # fmt: skip
    for got, want in zip(fast, slow, strict=True):
        want.pop("hot")
        assert got == want
    assert fast_audit == slow_audit
    assert none == 0
    # every valid request took the hot path, bar those the schema has to coerce
    coerced = {"quality as text", "quality as float", "quality as bool", "pdq and variants",
               "over the hot-path size", "chunked"}  # fmt: skip
    assert hits == len(hot) >= 15
    assert hot == [a["name"] for a in fast if a["status"] == 200 and a["name"] not in coerced]
    by_name = {a["name"]: a for a in fast}
    # spot checks of the reference answers themselves
    [m] = by_name["near"]["json"]["matches"]
    assert (m["method"], m["distance"], m["variant"]) == ("pdq", 20, "original")
    assert by_name["variants"]["json"]["matches"][0]["variant"] == "rotate270"
    assert by_name["variants"]["json"]["matches"][0]["label"] == 'café ☕ "quoted"'
    assert by_name["low quality"]["json"]["pdq_searched"] is False
    assert by_name["tight threshold"]["json"]["matches"] == []
    assert by_name["no key"]["status"] == 401 and by_name["submitter"]["status"] == 403
    assert by_name["bad hex"]["json"]["error"]["code"] == "invalid_hash"
    assert by_name["nobank"]["status"] == 404


def test_hot_path_rate_limit_and_refund(tmp_path: Path) -> None:
    settings = _settings(tmp_path, rate_limit_burst=2, rate_limit_per_second=0.01)
    with running(settings) as svc:
        # an index that is not loaded sends the request to the route (503) with its token back
        runtime = svc.client.app.state.takeback.banks["default"]  # type: ignore[attr-defined]
        replica, runtime.replica = runtime.replica, None
        try:
            assert svc.match({"pdq": "ab" * 32}).status_code == 503
        finally:
            runtime.replica = replica
        assert svc.match({"pdq": "ab" * 32}).status_code == 200
        r = svc.match({"pdq": "ab" * 32})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert [row[1:] for row in _audit_rows(settings, svc.tokens)] == [
        ("match", "default", None, 503),
        ("match", "default", 0, 200),
    ]


def test_rate_limiter_gives_tokens_back() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 1.0]
    limiter.give_back("k")
    assert limiter.take("k") == 0.0
    limiter.give_back("k", 5)  # never above the burst
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 1.0]
    limiter.give_back("unknown")  # no bucket: nothing to return
    assert limiter.take("unknown") == 0.0


# -- upload hashing --------------------------------------------------------------------


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_fast_variants_are_exact_for_their_square(photos: dict[str, Path]) -> None:
    for path in list(photos.values())[:3]:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"))
        square = Image.fromarray(pixels).convert("L")
        square = square.resize((VARIANT_SIZE, VARIANT_SIZE), Image.Resampling.BILINEAR)
        rgb = np.stack([np.asarray(square)] * 3, axis=2)
        exact, _ = pdq_from_pixels(rgb, dihedral=True)
        assert fast_variants(pixels) == exact


def test_upload_fingerprint_keeps_the_cli_hash(photos: dict[str, Path]) -> None:
    worst = 0
    for path in photos.values():
        with Image.open(path) as img:
            data = _jpeg(img.resize((img.width * 3 // 2, img.height)))
        reference = fingerprint_bytes(data, variants=True)
        upload = fingerprint_upload(data, ImageLimits())
        assert (upload.pdq, upload.quality, upload.sha256, upload.md5) == (
            reference.pdq, reference.quality, reference.sha256, reference.md5
        )  # fmt: skip
        assert (upload.width, upload.height) == (reference.width, reference.height)
        assert upload.variants[0] == reference.pdq and len(upload.variants) == 8
        worst = max(
            worst,
            *(a.distance(b) for a, b in zip(upload.variants, reference.variants, strict=True)),
        )
        assert fingerprint_upload(data, ImageLimits(), variants=False).variants == ()
    assert worst <= 20


# -- several worker processes ------------------------------------------------------------


def test_worker_app_takes_the_settings_it_is_handed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, port=9321, workers=3, banks={"partner": str(tmp_path / "p")})
    monkeypatch.setenv(WORKER_SETTINGS_ENV, settings.model_dump_json())
    monkeypatch.setenv("TAKEBACK_PORT", "1234")  # the handed settings win
    app = worker_app()
    assert app.state.takeback.settings == settings


def test_workers_take_turns_loading(tmp_path: Path) -> None:
    lock = str(tmp_path / "load.lock")
    got: list[tuple[str, bool, float]] = []

    def second() -> None:
        start = time.monotonic()
        with load_turn(lock, timeout=10) as held:
            got.append(("second", held, time.monotonic() - start))

    with load_turn(lock, timeout=1) as held:
        assert held
        thread = threading.Thread(target=second)
        thread.start()
        with load_turn(lock, timeout=0.1) as also:  # the wait runs out: go ahead anyway
            assert not also
        time.sleep(0.3)
        assert got == []  # still waiting for its turn
    thread.join(5)
    [(_, held, waited)] = got
    assert held and waited >= 0.25
    with load_turn(None, timeout=1) as held:
        assert not held


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def test_serve_with_two_workers(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    bank = str(tmp_path / "bank")
    with open_service_db(settings.service_db_location()) as db:
        _, token = KeyStore(db).create("admin", ["*"], "workers test")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKEBACK_")}
    env.update(TAKEBACK_HOME=str(tmp_path / "home"), TAKEBACK_WARM_UP="0")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "takeback", "serve", "--port", str(port), "--bank", bank,
             "--workers", "2", "--log-level", "warning"],
            env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.05)
        workers = [c for c in _children(proc.pid) if "spawn" in _cmdline(c)]
        assert len(workers) == 2, [_cmdline(c) for c in _children(proc.pid)]

        pdq = np.random.default_rng(9).bytes(32).hex()
        with httpx.Client(base_url=base, headers=headers, timeout=5) as client:
            r = client.post("/v1/banks/default/hashes", json={"entries": [{"pdq": pdq}]})
            assert r.status_code == 200, r.text
        # new connections land on either worker: each sees the entry within 2 s
        started, statuses, found = time.monotonic(), [], 0
        while time.monotonic() - started < 3:
            with httpx.Client(base_url=base, headers=headers, timeout=5) as client:
                r = client.post("/v1/banks/default/match", json={"pdq": pdq})
            statuses.append(r.status_code)
            if r.status_code == 200 and r.json()["matches"]:
                found += 1
            elif time.monotonic() - started > 2:
                raise AssertionError("a worker did not see the entry within 2 s")
        assert set(statuses) == {200} and found > 0
        with httpx.Client(base_url=base, headers=headers, timeout=5) as client:
            audit = client.get("/v1/admin/audit/verify").json()
        assert audit["ok"] is True and audit["records"] >= 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 0, log.read_text()
    text = log.read_text()
    assert "Traceback" not in text and "ERROR" not in text, text
    with open_service_db(settings.service_db_location()) as db:
        check = verify_audit(db)
    assert check.ok and check.records >= len(statuses) + 2
