"""The HTTP service (``takeback serve``) through FastAPI's TestClient, on SQLite banks.

Covers the API contract: authentication (401), roles and bank scopes (403),
rate limits (429), request-size limits (413), image errors with the imageio
codes, bad hashes (422), submit / match / withdraw, the change feed, the
tamper-evident audit log, readiness before the index is loaded, the admin
API and CLI, and that an upload never touches the disk. Multi-process and
PostgreSQL behaviour is in ``test_service_replicas.py``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import sqlite3
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from starlette.exceptions import StarletteDeprecationWarning
from typer.testing import CliRunner

from takeback.bank.store import SqliteStore
from takeback.fingerprint.derivative import derivative_from_file
from takeback.fingerprint.pdq import fingerprint_file
from takeback.service import ServiceSettings, create_app
from takeback.service.audit import verify_audit
from takeback.service.auth import KeyStore, hash_secret, new_token, parse_token
from takeback.service.db import open_service_db
from takeback.service.ratelimit import RateLimiter
from takeback.service.replica import BankReplica
from takeback.service.settings import bind_is_public, check_bind

with warnings.catch_warnings():
    # starlette's TestClient asks for httpx2 (not installed); httpx works the same here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

ROLES = ("admin", "submitter", "matcher")


@dataclass
class Service:
    client: TestClient
    settings: ServiceSettings
    tokens: dict[str, str]

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def submit(self, entries: list[dict[str, Any]], bank: str = "default") -> list[int]:
        r = self.client.post(
            f"/v1/banks/{bank}/hashes", json={"entries": entries}, headers=self.auth("submitter")
        )
        assert r.status_code == 200, r.text
        return [res["id"] for res in r.json()["results"]]

    def match(self, body: dict[str, Any], bank: str = "default", who: str = "matcher") -> Any:
        return self.client.post(f"/v1/banks/{bank}/match", json=body, headers=self.auth(who))


def _settings(root: Path, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "bank": str(root / "bank"),
        "hash_workers": 1,
        "warm_up": False,
        "poll_interval": 0.1,
        "audit_flush_seconds": 0.05,
        **overrides,
    }
    return ServiceSettings(**values)


def _make_keys(
    settings: ServiceSettings, extra: dict[str, tuple[str, list[str]]] | None = None
) -> dict[str, str]:
    specs: dict[str, tuple[str, list[str]]] = {
        "admin": ("admin", ["*"]),
        "submitter": ("submitter", ["default"]),
        "matcher": ("matcher", ["default"]),
        **(extra or {}),
    }
    tokens: dict[str, str] = {}
    with open_service_db(settings.service_db_location()) as db:
        store = KeyStore(db)
        for who, (role, banks) in specs.items():
            tokens[who] = store.create(role, banks, who)[1]
    return tokens


def _wait_ready(client: TestClient, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError(f"not ready: {client.get('/readyz').json()}")


@contextlib.contextmanager
def running(
    settings: ServiceSettings, extra: dict[str, tuple[str, list[str]]] | None = None
) -> Iterator[Service]:
    tokens = _make_keys(settings, extra)
    with TestClient(create_app(settings)) as client:
        _wait_ready(client)
        yield Service(client, settings, tokens)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One running service for the tests that do not need their own settings."""
    root = tmp_path_factory.mktemp("service")
    settings = _settings(
        root,
        banks={"partner": str(root / "partner")},
        max_request_bytes=64 * 1024,
        max_upload_bytes=4 * 1024 * 1024,
        rate_limit_burst=10_000,
        rate_limit_per_second=10_000,
    )
    extra = {
        "partner_matcher": ("matcher", ["partner"]),
        "all_matcher": ("matcher", ["*"]),
    }
    with running(settings, extra) as svc:
        yield svc


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """Fixed per test, different between tests (they share one bank)."""
    return np.random.default_rng([20261122, *request.node.name.encode()])


def _flip(hex_hash: str, bits: int) -> str:
    """``hex_hash`` with its first ``bits`` bits inverted."""
    value = int(hex_hash, 16) ^ (((1 << bits) - 1) << (256 - bits))
    return f"{value:064x}"


# -- health and readiness --------------------------------------------------------


def test_livez_and_readyz_need_no_key(service: Service) -> None:
    assert service.client.get("/livez").json() == {"status": "ok"}
    ready = service.client.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["banks"]) == {"default", "partner"}
    assert ready.json()["banks"]["default"]["loaded"] is True


def test_readyz_is_503_until_the_index_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    original = BankReplica._load

    def slow_load(self: BankReplica, store: Any) -> None:
        gate.wait(10)
        original(self, store)

    monkeypatch.setattr(BankReplica, "_load", slow_load)
    settings = _settings(tmp_path)
    tokens = _make_keys(settings)
    with TestClient(create_app(settings)) as client:
        try:
            r = client.get("/readyz")
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "not_ready"
            assert r.json()["banks"]["default"]["loaded"] is False
            assert client.get("/livez").status_code == 200
            r = client.post(
                "/v1/banks/default/match",
                json={"pdq": "ab" * 32},
                headers={"Authorization": f"Bearer {tokens['matcher']}"},
            )
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "index_loading"
            assert r.headers["retry-after"] == "1"
        finally:
            gate.set()
        _wait_ready(client)


# -- authentication, roles, scopes, rate limits ------------------------------------


def test_missing_malformed_and_wrong_keys_are_401(service: Service) -> None:
    c = service.client
    r = c.post("/v1/banks/default/match", json={"pdq": "ab" * 32})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    for header in ("Bearer nonsense", "Basic abc", "Bearer "):
        r = c.post(
            "/v1/banks/default/match", json={"pdq": "ab" * 32}, headers={"Authorization": header}
        )
        assert r.status_code == 401, header
    key_id, _ = parse_token(service.tokens["matcher"]) or ("", "")
    _, secret, _ = new_token()
    forged = f"tbk_{key_id}_{secret}"
    r = c.post(
        "/v1/banks/default/match",
        json={"pdq": "ab" * 32},
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert r.status_code == 401


def test_keys_are_stored_only_as_hashes(service: Service) -> None:
    path = service.settings.service_db_location()
    raw = Path(path).read_bytes()
    for token in service.tokens.values():
        key_id, secret = parse_token(token) or ("", "")
        assert secret.encode() not in raw
        assert token.encode() not in raw
        with sqlite3.connect(path) as conn:
            (digest,) = conn.execute(
                "SELECT secret_sha256 FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        conn.close()
        assert digest == hash_secret(secret)


def test_roles_are_enforced(service: Service) -> None:
    c = service.client
    entry = {"entries": [{"pdq": "cd" * 32, "quality": 90}]}
    r = c.post("/v1/banks/default/hashes", json=entry, headers=service.auth("matcher"))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    r = service.match({"pdq": "cd" * 32}, who="submitter")
    assert r.status_code == 403
    for who in ("matcher", "submitter"):
        assert c.get("/v1/admin/keys", headers=service.auth(who)).status_code == 403
    assert c.get("/v1/admin/keys", headers=service.auth("admin")).status_code == 200
    # the admin may do everything
    assert service.match({"pdq": "cd" * 32}, who="admin").status_code == 200


def test_bank_scopes_are_enforced(service: Service, rng: np.random.Generator) -> None:
    pdq = rng.bytes(32).hex()
    r = service.client.post(
        "/v1/banks/partner/hashes",
        json={"entries": [{"pdq": pdq, "quality": 90, "label": "p"}]},
        headers=service.auth("admin"),
    )
    assert r.status_code == 200
    # a key for 'default' cannot use 'partner', and the other way round
    assert service.match({"pdq": pdq}, bank="partner", who="matcher").status_code == 403
    assert service.match({"pdq": pdq}, bank="default", who="partner_matcher").status_code == 403
    r = service.match({"pdq": pdq}, bank="partner", who="partner_matcher")
    assert r.status_code == 200
    assert [m["label"] for m in r.json()["matches"]] == ["p"]
    # banks are separate: the hash is not in 'default'
    assert service.match({"pdq": pdq}, bank="default", who="all_matcher").json()["matches"] == []
    # a '*' key on a bank that is not served
    r = service.match({"pdq": pdq}, bank="nowhere", who="all_matcher")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "bank_missing"
    banks = service.client.get("/v1/banks", headers=service.auth("partner_matcher")).json()
    assert [b["name"] for b in banks["banks"]] == ["partner"]


def test_rate_limit_per_key_answers_429_with_retry_after(tmp_path: Path) -> None:
    settings = _settings(tmp_path, rate_limit_burst=3, rate_limit_per_second=0.5)
    with running(settings) as svc:
        codes = [svc.match({"pdq": "ab" * 32}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = svc.match({"pdq": "ab" * 32})
        assert r.json()["error"]["code"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        # another key has its own bucket
        assert svc.match({"pdq": "ab" * 32}, who="admin").status_code == 200


def test_rate_limiter_refills() -> None:
    now = [100.0]
    limiter = RateLimiter(rate=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.5]
    now[0] += 0.5
    assert limiter.take("k") == 0.0
    assert RateLimiter.retry_after(0.2) == "1"


# -- request and upload limits -----------------------------------------------------


def test_json_body_over_the_limit_is_413(service: Service) -> None:
    entries = [{"pdq": "ab" * 32, "label": "x" * 200}] * 400  # ~120 KB > 64 KiB
    r = service.client.post(
        "/v1/banks/default/hashes", json={"entries": entries}, headers=service.auth("submitter")
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_streamed_body_over_the_limit_is_413(service: Service) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"entries": ['
        for _ in range(2000):
            yield b'{"pdq": "' + b"ab" * 32 + b'"},'
        yield b"]}"

    r = service.client.post(
        "/v1/banks/default/hashes",
        content=chunks(),
        headers={**service.auth("submitter"), "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_upload_over_the_limit_is_413(service: Service) -> None:
    big = b"\x89PNG" + bytes(5 * 1024 * 1024)
    r = service.client.post(
        "/v1/banks/default/match/image",
        files={"file": ("x.png", big, "image/png")},
        headers=service.auth("matcher"),
    )
    assert r.status_code == 413
    # a raw body just under the request limit but over the image limit
    r = service.client.post(
        "/v1/banks/default/match/image",
        content=bytes(4 * 1024 * 1024 + 10),
        headers={**service.auth("matcher"), "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "image_too_large"


# -- submitting and matching fingerprints -------------------------------------------


def test_submit_match_withdraw_by_fingerprint(service: Service, rng: np.random.Generator) -> None:
    pdq = rng.bytes(32).hex()
    sha = rng.bytes(32).hex()
    [entry_id] = service.submit(
        [{"pdq": pdq, "quality": 88, "sha256": sha, "label": "beach", "partner_ref": "ref-1"}]
    )
    # near copy: distance, threshold, score travel with the result
    r = service.match({"pdq": _flip(pdq, 20), "quality": 90})
    assert r.status_code == 200
    body = r.json()
    assert body["pdq_searched"] is True and body["threshold"] == 31
    [m] = body["matches"]
    assert m == {
        "id": entry_id,
        "label": "beach",
        "method": "pdq",
        "distance": 20,
        "threshold": 31,
        "variant": "original",
        "score": round(1 - 20 / 256, 4),
    }
    # 31 bits matches, 32 does not; a lower threshold is honoured
    assert len(service.match({"pdq": _flip(pdq, 31)}).json()["matches"]) == 1
    assert service.match({"pdq": _flip(pdq, 32)}).json()["matches"] == []
    assert service.match({"pdq": _flip(pdq, 20), "threshold": 10}).json()["matches"] == []
    # a low-quality query is not PDQ-searched
    low = service.match({"pdq": pdq, "quality": 10}).json()
    assert low["pdq_searched"] is False and low["matches"] == []
    # exact file digest, upper-case accepted
    [exact] = service.match({"sha256": sha.upper()}).json()["matches"]
    assert (exact["method"], exact["distance"], exact["score"]) == ("sha256", 0, 1.0)
    # the submitter can read the entry back
    got = service.client.get(
        f"/v1/banks/default/hashes/{entry_id}", headers=service.auth("submitter")
    )
    assert got.json()["partner_ref"] == "ref-1" and got.json()["pdq"] == pdq
    # withdraw: the entry is gone from the index and the bank at once
    r = service.client.delete(
        f"/v1/banks/default/hashes/{entry_id}", headers=service.auth("submitter")
    )
    assert r.json() == {"removed": [entry_id], "missing": []}
    assert service.match({"pdq": pdq}).json()["matches"] == []
    assert service.match({"sha256": sha}).json()["matches"] == []
    r = service.client.delete(
        f"/v1/banks/default/hashes/{entry_id}", headers=service.auth("submitter")
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "entry_missing"
    r = service.client.get(
        f"/v1/banks/default/hashes/{entry_id}", headers=service.auth("submitter")
    )
    assert r.status_code == 404


def test_submit_reports_duplicates_and_low_quality(
    service: Service, rng: np.random.Generator
) -> None:
    sha = rng.bytes(32).hex()
    pdq = rng.bytes(32).hex()
    r = service.client.post(
        "/v1/banks/default/hashes",
        json={
            "entries": [
                {"pdq": pdq, "sha256": sha, "quality": 90},
                {"pdq": pdq, "sha256": sha, "quality": 90},
                {"pdq": rng.bytes(32).hex(), "quality": 20},
                {"md5": rng.bytes(16).hex()},
            ]
        },
        headers=service.auth("submitter"),
    )
    first, dup, low, md5_only = r.json()["results"]
    assert dup["duplicate_of"] == first["id"] and first["duplicate_of"] is None
    assert low["indexed"] is False and md5_only["indexed"] is False


def test_ids_out_of_range_are_422(service: Service) -> None:
    huge = 2**64
    for method, url, body in [
        ("GET", f"/v1/banks/default/hashes/{huge}", None),
        ("DELETE", f"/v1/banks/default/hashes/{huge}", None),
        ("DELETE", "/v1/banks/default/hashes/0", None),
        ("POST", "/v1/banks/default/withdrawals", {"ids": [huge]}),
        ("GET", f"/v1/banks/default/changes?since={huge}", None),
    ]:
        r = service.client.request(method, url, json=body, headers=service.auth("admin"))
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request"), url


def test_withdraw_many(service: Service, rng: np.random.Generator) -> None:
    hashes = [rng.bytes(32).hex() for _ in range(3)]
    ids = service.submit([{"pdq": h, "quality": 90} for h in hashes])
    r = service.client.post(
        "/v1/banks/default/withdrawals",
        json={"ids": [*ids[:2], 999_999]},
        headers=service.auth("submitter"),
    )
    assert r.json() == {"removed": ids[:2], "missing": [999_999]}
    assert service.match({"pdq": hashes[0]}).json()["matches"] == []
    assert len(service.match({"pdq": hashes[2]}).json()["matches"]) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"pdq": "zz" * 32}, "invalid_hash"),
        ({"pdq": "ab" * 31}, "invalid_hash"),
        ({"sha256": "ab" * 31}, "invalid_hash"),
        ({"md5": "xyz"}, "invalid_hash"),
        ({}, "invalid_request"),
        ({"pdq": "ab" * 32, "threshold": 40}, "invalid_request"),
        ({"pdq": "ab" * 32, "quality": 101}, "invalid_request"),
        ({"pdq": "ab" * 32, "surprise": 1}, "invalid_request"),
    ],
)
def test_bad_match_requests_are_422(service: Service, body: dict[str, Any], code: str) -> None:
    r = service.match(body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code


def test_match_batch_answers_each_query_as_a_single_match(
    service: Service, rng: np.random.Generator
) -> None:
    pdqs = [rng.bytes(32).hex() for _ in range(3)]
    sha = rng.bytes(32).hex()
    service.submit([{"pdq": p, "quality": 90, "sha256": sha if i == 0 else None,
                     "label": f"batch {i}"} for i, p in enumerate(pdqs)])  # fmt: skip
    queries: list[dict[str, Any]] = [
        {"pdq": pdqs[0]},
        {"pdq": _flip(pdqs[1], 20), "quality": 70},
        {"pdq": rng.bytes(32).hex()},
        {"sha256": sha},
        {"pdq": pdqs[2], "quality": 10},
        {"pdq": _flip(pdqs[2], 20), "threshold": 10},
        {"variants": [rng.bytes(32).hex() for _ in range(7)] + [pdqs[2]]},
    ]
    r = service.client.post(
        "/v1/banks/default/match/batch",
        json={"queries": queries},
        headers=service.auth("matcher"),
    )
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results == [service.match(q).json() for q in queries]
    assert [len(x["matches"]) for x in results] == [1, 1, 0, 1, 0, 0, 1]
    r = service.client.post(
        "/v1/banks/default/match/batch",
        json={"queries": [{"pdq": pdqs[0]}]},
        headers=service.auth("submitter"),
    )
    assert r.status_code == 403


def test_match_batch_limits_and_audit(tmp_path: Path) -> None:
    settings = _settings(tmp_path, rate_limit_burst=6, rate_limit_per_second=0.01)
    with running(settings) as svc:

        def batch(queries: list[dict[str, Any]]) -> Any:
            return svc.client.post(
                "/v1/banks/default/match/batch",
                json={"queries": queries},
                headers=svc.auth("matcher"),
            )

        [entry] = svc.submit([{"pdq": "12" * 32, "quality": 90}])
        # 6 tokens; each request below takes one, a batch one more per further query
        too_many = batch([{"pdq": "ab" * 32}] * 7)  # more than the bucket holds
        assert too_many.status_code == 422 and "at most 6" in too_many.text
        bad = batch([{"pdq": "ab" * 32}, {"pdq": "zz" * 32}])
        assert bad.json()["error"]["code"] == "invalid_hash"
        assert batch([]).json()["error"]["code"] == "invalid_request"
        ok = batch([{"pdq": "12" * 32}, {"pdq": "ab" * 32}])
        assert ok.status_code == 200 and ok.json()["results"][0]["matches"][0]["id"] == entry
        limited = batch([{"pdq": "ab" * 32}] * 3)  # 1 token left, 3 asked
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
    with contextlib.closing(sqlite3.connect(settings.service_db_location())) as conn:
        rows = conn.execute(
            "SELECT action, bank, result_count, status FROM audit WHERE action = 'match_batch'"
            " ORDER BY seq"
        ).fetchall()
    assert rows == [
        ("match_batch", "default", None, 422),
        ("match_batch", "default", None, 422),
        ("match_batch", "default", None, 422),
        ("match_batch", "default", 1, 200),
        ("match_batch", "default", None, 429),
    ]


@pytest.mark.parametrize(
    ("entry", "code"),
    [
        ({"pdq": "not hex"}, "invalid_hash"),
        ({"sha256": "12"}, "invalid_hash"),
        ({"label": "no hash at all"}, "invalid_request"),
        ({"pdq": "ab" * 32, "derivative": "AAAA"}, "invalid_derivative"),
        ({"pdq": "ab" * 32, "derivative": "not base64!"}, "invalid_derivative"),
        ({"pdq": "ab" * 32, "label": "a\x00b"}, "invalid_request"),
        ({"pdq": "ab" * 32, "derivative": "A" * 30_000}, "invalid_request"),
    ],
)
def test_bad_submissions_are_422_and_store_nothing(
    service: Service, entry: dict[str, Any], code: str
) -> None:
    before = service.client.get("/readyz").json()["banks"]["default"]["seq"]
    r = service.client.post(
        "/v1/banks/default/hashes",
        json={"entries": [{"pdq": "ef" * 32}, entry]},
        headers=service.auth("submitter"),
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == code
    assert service.client.get("/readyz").json()["banks"]["default"]["seq"] == before


def test_a_derivative_fingerprint_is_stored_with_its_entry_and_withdrawn_with_it(
    service: Service, photos: dict[str, Path]
) -> None:
    derivative = derivative_from_file(photos["chelsea.png"])
    [entry_id] = service.submit(
        [
            {
                "pdq": "cd" * 32,
                "label": "cat",
                "derivative": base64.b64encode(derivative.to_bytes()).decode(),
            }
        ]
    )
    with SqliteStore.open(service.settings.bank) as store:
        assert dict(store.get_derivatives([entry_id])) == {entry_id: derivative.to_bytes()}
    r = service.client.delete(
        f"/v1/banks/default/hashes/{entry_id}", headers=service.auth("submitter")
    )
    assert r.status_code == 200, r.text
    with SqliteStore.open(service.settings.bank) as store:
        assert dict(store.get_derivatives([entry_id])) == {}


# -- matching images -----------------------------------------------------------------


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_match_by_image_upload(service: Service, photos: dict[str, Path]) -> None:
    path = photos["coffee.png"]
    fp = fingerprint_file(path)
    [entry_id] = service.submit(
        [{"pdq": str(fp.pdq), "quality": fp.quality, "sha256": fp.sha256, "label": "coffee"}]
    )
    # the very file: an exact match first (one result per entry)
    r = service.client.post(
        "/v1/banks/default/match/image",
        files={"file": ("whatever.png", path.read_bytes(), "image/png")},
        headers=service.auth("matcher"),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["fingerprint"]["sha256"] == fp.sha256
    assert [(m["id"], m["method"]) for m in body["matches"]] == [(entry_id, "sha256")]
    # a mirrored, re-encoded copy: found through its dihedral variant
    with Image.open(path) as img:
        mirrored = img.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    mirrored.save(buf, format="JPEG", quality=80)
    r = service.client.post(
        "/v1/banks/default/match/image",
        content=buf.getvalue(),
        headers={**service.auth("matcher"), "Content-Type": "image/jpeg"},
    )
    [m] = r.json()["matches"]
    assert (m["id"], m["method"], m["variant"]) == (entry_id, "pdq", "flip_horizontal")
    assert m["distance"] <= 31
    r = service.client.post(
        "/v1/banks/default/match/image?all_variants=false",
        content=buf.getvalue(),
        headers={**service.auth("matcher"), "Content-Type": "image/jpeg"},
    )
    assert r.json()["matches"] == []


def test_unrelated_image_does_not_match(service: Service, unrelated: dict[str, Path]) -> None:
    path = next(iter(unrelated.values()))
    r = service.client.post(
        "/v1/banks/default/match/image",
        files={"file": (path.name, path.read_bytes())},
        headers=service.auth("matcher"),
    )
    assert r.status_code == 200
    assert r.json()["matches"] == []


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"this is not an image at all" * 10, 422, "not_an_image"),
        ("truncated", 422, "corrupt_image"),
        ("tiny", 422, "image_too_small"),
    ],
)
def test_bad_images_answer_with_the_imageio_code(
    service: Service, photos: dict[str, Path], data: bytes | str, status: int, code: str
) -> None:
    if data == "truncated":
        whole = photos["rocket.jpg"].read_bytes()
        data = whole[: len(whole) // 2]
    elif data == "tiny":
        data = _png(Image.new("RGB", (40, 30), (120, 80, 40)))
    assert isinstance(data, bytes)
    r = service.client.post(
        "/v1/banks/default/match/image",
        files={"file": ("upload.png", data, "image/png")},
        headers=service.auth("matcher"),
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert "upload.png" not in r.json()["error"]["message"]  # the client's name is not echoed


def test_upload_form_errors(service: Service) -> None:
    r = service.client.post(
        "/v1/banks/default/match/image",
        files={"picture": ("x.png", b"abc", "image/png")},
        headers=service.auth("matcher"),
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_request")
    r = service.client.post(
        "/v1/banks/default/match/image",
        content=b"abc",
        headers={**service.auth("matcher"), "Content-Type": "text/plain"},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (415, "unsupported_media")


def test_upload_is_never_written_to_disk(
    service: Service, photos: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A BMP over 1 MB: Starlette's own form parser would spool it to a temporary
    # file (tempfile.TemporaryFile, which on Linux leaves no name to look for).
    with Image.open(photos["astronaut.png"]) as img:
        big = img.convert("RGB").resize((1024, 1024))
    buf = io.BytesIO()
    big.save(buf, format="BMP")
    assert buf.tell() > 2 * 1024 * 1024
    # Start the worker processes first (multiprocessing makes a directory for its socket).
    service.client.post(
        "/v1/banks/default/match/image",
        content=photos["camera.png"].read_bytes(),
        headers={**service.auth("matcher"), "Content-Type": "image/png"},
    )
    made: list[str] = []
    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        original = getattr(tempfile, name)

        def spy(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            made.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(tempfile, name, spy)
    r = service.client.post(
        "/v1/banks/default/match/image",
        files={"file": ("big.bmp", buf.getvalue(), "image/bmp")},
        headers=service.auth("matcher"),
    )
    assert r.status_code == 200, r.text
    assert made == []


# -- the change feed -----------------------------------------------------------------


def test_change_feed(service: Service, rng: np.random.Generator) -> None:
    c = service.client
    head = c.get("/v1/banks/default/changes?since=0&limit=10000", headers=service.auth("matcher"))
    since = head.json()["next_since"]
    ids = service.submit([{"pdq": rng.bytes(32).hex(), "quality": 90} for _ in range(3)])
    c.delete(f"/v1/banks/default/hashes/{ids[0]}", headers=service.auth("submitter"))
    r = c.get(f"/v1/banks/default/changes?since={since}&limit=2", headers=service.auth("matcher"))
    page = r.json()
    assert [(ch["op"], ch["id"]) for ch in page["changes"]] == [("add", ids[0]), ("add", ids[1])]
    assert page["more"] is True and page["next_since"] == since + 2
    r = c.get(
        f"/v1/banks/default/changes?since={page['next_since']}", headers=service.auth("submitter")
    )
    page = r.json()
    assert [(ch["op"], ch["id"]) for ch in page["changes"]] == [("add", ids[2]), ("remove", ids[0])]
    assert page["more"] is False
    assert all("pdq" not in ch for ch in page["changes"])  # ids only
    r = c.get("/v1/banks/default/changes?since=-1", headers=service.auth("matcher"))
    assert r.status_code == 422


# -- the audit log ---------------------------------------------------------------------


def test_audit_log_records_who_did_what_and_detects_edits(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with running(settings) as svc:
        [entry_id] = svc.submit([{"pdq": "12" * 32, "quality": 90, "label": "secret label"}])
        svc.match({"pdq": "12" * 32})
        svc.match({"pdq": "zz"})
        svc.match({"pdq": "12" * 32}, who="submitter")  # denied
        svc.client.delete(f"/v1/banks/default/hashes/{entry_id}", headers=svc.auth("submitter"))
        r = svc.client.get("/v1/admin/audit/verify", headers=svc.auth("admin"))
        assert r.json()["ok"] is True
    path = settings.service_db_location()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT seq, key_id, action, bank, result_count, status FROM audit ORDER BY seq"
        ).fetchall()
    key_of = {who: (parse_token(t) or ("", ""))[0] for who, t in svc.tokens.items()}
    assert [r[1:] for r in rows[:5]] == [
        (key_of["submitter"], "submit", "default", 1, 200),
        (key_of["matcher"], "match", "default", 1, 200),
        (key_of["matcher"], "match", "default", None, 422),
        (key_of["submitter"], "denied", "default", None, 403),
        (key_of["submitter"], "withdraw", "default", 1, 200),
    ]
    raw = b"".join(p.read_bytes() for p in Path(path).parent.glob("service.sqlite3*"))
    assert b"secret label" not in raw and b"12" * 32 not in raw

    with open_service_db(path) as db:
        assert verify_audit(db).ok
        # edit one field of record 2: caught there
        db.query("UPDATE audit SET result_count = 0 WHERE seq = 2")
        result = verify_audit(db)
        assert (result.ok, result.first_bad, result.records) == (False, 2, 1)
        assert "changed" in (result.reason or "")
        db.query("UPDATE audit SET result_count = 1 WHERE seq = 2")
        assert verify_audit(db).ok
        # delete a record in the middle: caught
        db.query("DELETE FROM audit WHERE seq = 3")
        result = verify_audit(db)
        assert (result.ok, result.first_bad) == (False, 3)


def test_cli_audit_verify_exit_codes(tmp_path: Path) -> None:
    from takeback.cli_serve import admin_app

    settings = _settings(tmp_path)
    with running(settings) as svc:
        svc.match({"pdq": "34" * 32})
        svc.client.get("/v1/admin/audit/verify", headers=svc.auth("admin"))
    runner = CliRunner()
    args = ["audit", "verify", "--service-db", settings.service_db_location()]
    ok = runner.invoke(admin_app, args)
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.output
    with open_service_db(settings.service_db_location()) as db:
        db.query("UPDATE audit SET action = 'nothing' WHERE seq = 1")
    broken = runner.invoke(admin_app, args)
    assert broken.exit_code == 5


# -- key administration ----------------------------------------------------------------


def test_admin_api_creates_and_revokes_keys(service: Service) -> None:
    c = service.client
    r = c.post(
        "/v1/admin/keys",
        json={"role": "matcher", "banks": ["default"], "label": "platform X"},
        headers=service.auth("admin"),
    )
    assert r.status_code == 201
    created = r.json()
    token, key_id = created["token"], created["key_id"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (
        c.post("/v1/banks/default/match", json={"pdq": "ab" * 32}, headers=headers).status_code
        == 200
    )
    listed = c.get("/v1/admin/keys", headers=service.auth("admin")).json()["keys"]
    assert key_id in [k["key_id"] for k in listed]
    assert all("token" not in k and "secret" not in str(k) for k in listed)
    r = c.delete(f"/v1/admin/keys/{key_id}", headers=service.auth("admin"))
    assert r.status_code == 200 and r.json()["revoked_at"]
    revoked_at = r.json()["revoked_at"]
    assert (
        c.post("/v1/banks/default/match", json={"pdq": "ab" * 32}, headers=headers).status_code
        == 401
    )
    again = c.delete(f"/v1/admin/keys/{key_id}", headers=service.auth("admin"))
    assert (again.status_code, again.json()["revoked_at"]) == (200, revoked_at)  # idempotent
    r = c.delete("/v1/admin/keys/000000000000", headers=service.auth("admin"))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "key_missing")
    r = c.post(
        "/v1/admin/keys",
        json={"role": "root", "banks": ["default"]},
        headers=service.auth("admin"),
    )
    assert r.status_code == 422
    r = c.post(
        "/v1/admin/keys",
        json={"role": "matcher", "banks": ["Bad Name"]},
        headers=service.auth("admin"),
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "input_error")


def test_cli_admin_keys(tmp_path: Path) -> None:
    from takeback.cli_serve import admin_app

    runner = CliRunner()
    db = str(tmp_path / "service.sqlite3")
    created = runner.invoke(
        admin_app,
        ["keys", "create", "--role", "matcher", "--scope", "default", "--label", "x",
         "--service-db", db, "--json"],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    key = json.loads(created.stdout.splitlines()[0])
    assert key["token"].startswith(f"tbk_{key['key_id']}_")
    listed = runner.invoke(admin_app, ["keys", "list", "--service-db", db, "--json"])
    assert key["key_id"] in listed.stdout and key["token"] not in listed.stdout
    revoked = runner.invoke(admin_app, ["keys", "revoke", key["key_id"], "--service-db", db])
    assert revoked.exit_code == 0
    missing = runner.invoke(admin_app, ["keys", "revoke", "000000000000", "--service-db", db])
    assert missing.exit_code == 1
    bad = runner.invoke(
        admin_app, ["keys", "create", "--role", "root", "--scope", "x", "--service-db", db]
    )
    assert bad.exit_code == 2


def test_revocation_elsewhere_reaches_a_running_service(tmp_path: Path) -> None:
    settings = _settings(tmp_path, key_refresh_seconds=0.1)
    with running(settings) as svc:
        assert svc.match({"pdq": "ab" * 32}).status_code == 200
        key_id = (parse_token(svc.tokens["matcher"]) or ("", ""))[0]
        with open_service_db(settings.service_db_location()) as db:
            KeyStore(db).revoke(key_id)
        deadline = time.monotonic() + 5
        while svc.match({"pdq": "ab" * 32}).status_code != 401:
            assert time.monotonic() < deadline
            time.sleep(0.05)


# -- roles of a node, settings, binding --------------------------------------------------


def test_node_roles_serve_their_routes_only(tmp_path: Path) -> None:
    with running(_settings(tmp_path / "m", role="matcher")) as svc:
        assert svc.match({"pdq": "ab" * 32}).status_code == 200
        r = svc.client.post(
            "/v1/banks/default/hashes",
            json={"entries": [{"pdq": "ab" * 32}]},
            headers=svc.auth("submitter"),
        )
        assert r.status_code in (404, 405)
    with running(_settings(tmp_path / "s", role="submitter")) as svc:
        assert svc.submit([{"pdq": "ab" * 32}])
        assert svc.match({"pdq": "ab" * 32}).status_code == 404
        ready = svc.client.get("/readyz").json()
        assert ready["banks"]["default"] == {"ready": True}


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TAKEBACK_PORT", "9123")
    monkeypatch.setenv("TAKEBACK_BANK", str(tmp_path / "b"))
    monkeypatch.setenv("TAKEBACK_BANKS", '{"partner": "postgresql://u:pw@db/x"}')
    monkeypatch.setenv("TAKEBACK_FORWARDED_ALLOW_IPS", "10.0.0.1, 10.0.0.2")
    s = ServiceSettings()
    assert s.port == 9123
    assert s.bank_locations() == {
        "default": str(tmp_path / "b"),
        "partner": "postgresql://u:pw@db/x",
    }
    assert s.describe_banks()["partner"] == "postgresql://u:***@db/x"
    assert s.service_db_location() == str(tmp_path / "b" / "service.sqlite3")
    assert s.forwarded_allow_ips == ["10.0.0.1", "10.0.0.2"]
    monkeypatch.setenv("TAKEBACK_BANKS", '{"Bad Name": "/x"}')
    with pytest.raises(ValueError, match="not allowed"):
        ServiceSettings()


def test_public_binds_need_a_flag() -> None:
    assert not bind_is_public("127.0.0.1") and not bind_is_public("localhost")
    assert bind_is_public("0.0.0.0") and bind_is_public("192.0.2.1")
    assert check_bind(ServiceSettings(host="127.0.0.1")) is None
    assert "refusing" in (check_bind(ServiceSettings(host="0.0.0.0")) or "")
    assert check_bind(ServiceSettings(host="0.0.0.0", behind_tls_proxy=True)) is None
    assert check_bind(ServiceSettings(host="0.0.0.0", insecure_public=True)) is None


def test_cli_serve_refuses_a_public_address(tmp_path: Path) -> None:
    import typer

    from takeback.cli_serve import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--bank", str(tmp_path)])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output


def test_openapi_documents_the_v1_routes(service: Service) -> None:
    spec = service.client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/v1/banks/{bank}/hashes",
        "/v1/banks/{bank}/hashes/{entry_id}",
        "/v1/banks/{bank}/withdrawals",
        "/v1/banks/{bank}/match",
        "/v1/banks/{bank}/match/image",
        "/v1/banks/{bank}/match/batch",
        "/v1/banks/{bank}/changes",
        "/v1/admin/keys",
        "/livez",
        "/readyz",
    } <= paths
    upload = spec["paths"]["/v1/banks/{bank}/match/image"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    assert service.client.get("/docs").status_code == 200


def test_unknown_routes_answer_json_errors(service: Service) -> None:
    r = service.client.get("/v1/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
