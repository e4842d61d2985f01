"""Content Credentials: real c2pa round trips on real photos, and the attacks of issue 5."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import c2pa
import pytest
import typer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image
from typer.testing import CliRunner

from takeback import __version__
from takeback.cli_c2pa import register
from takeback.errors import CorruptImageError, FileAccessError, InputError, TakeBackError
from takeback.provenance.c2pa import (
    MANIFEST_UNREADABLE,
    SOURCE_TYPES,
    SigningError,
    TrustAnchorError,
    UnsupportedMediaError,
    Verdict,
    sidecar_path,
    sign_photo,
    verify_photo,
)
from takeback.provenance.keys import (
    CallbackSigner,
    CertificateError,
    KeyFiles,
    LocalSigner,
    init_keys,
    issue_signer,
    make_ca,
)
from takeback.samples import sample_photo

DATA_HASH_MISMATCH = "assertion.dataHash.mismatch"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def codes(result: object) -> list[str]:
    return [f["code"] for f in result.failures]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return init_keys(tmp_path_factory.mktemp("keys") / "keys", name="Alex Doe")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another CA's certificate: the wrong trust anchor."""
    _, cert = make_ca("Someone else's CA", now=dt.datetime.now(dt.UTC))
    path = tmp_path_factory.mktemp("other") / "other-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.fixture(scope="module")
def signer(keys: KeyFiles) -> LocalSigner:
    return LocalSigner.from_files(keys.key, keys.certificate)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A real JPEG photo, copied so that tests may write next to it."""
    return Path(shutil.copy(sample_photo("rocket.jpg"), tmp_path / "rocket.jpg"))


@pytest.fixture
def png_photo(tmp_path: Path) -> Path:
    return Path(shutil.copy(sample_photo("astronaut.png"), tmp_path / "astronaut.png"))


# -- sign and verify ------------------------------------------------------------------


def test_sidecar_leaves_the_original_byte_identical(photo: Path, signer: LocalSigner) -> None:
    before = sha256(photo)
    mtime = photo.stat().st_mtime_ns
    result = sign_photo(photo, signer)
    assert sha256(photo) == before
    assert photo.stat().st_mtime_ns == mtime
    assert result.sha256 == before
    assert Path(result.output) == sidecar_path(photo) == photo.with_name("rocket.jpg.c2pa")
    assert Path(result.output).stat().st_size == result.manifest_bytes > 0
    assert not result.embedded


def test_sidecar_verifies_valid_then_trusted_with_the_local_ca(
    photo: Path, signer: LocalSigner, keys: KeyFiles
) -> None:
    sign_photo(photo, signer)
    valid = verify_photo(photo)  # the sidecar is found next to the photo
    assert valid.status is Verdict.VALID
    assert valid.manifest == "sidecar"
    assert valid.failures == []
    assert "signingCredential.untrusted" in [n["code"] for n in valid.notes]
    assert valid.claim_generator == f"TakeBack/{__version__}"
    assert valid.signer is not None and valid.signer["common_name"] == "Alex Doe"
    assert valid.signer["algorithm"] == "es256"
    assert valid.actions[0]["action"] == "c2pa.created"
    assert valid.actions[0]["digitalSourceType"] == SOURCE_TYPES["digitalCapture"]
    assert valid.time_source == "signer_clock" and valid.signed_at
    trusted = verify_photo(photo, manifest=sidecar_path(photo), trust_anchors=keys.ca_certificate)
    assert trusted.status is Verdict.TRUSTED
    assert trusted.failures == [] and trusted.notes[0]["code"] != "signingCredential.untrusted"


def test_wrong_trust_anchor_is_valid_not_trusted(
    photo: Path, signer: LocalSigner, other_ca: Path
) -> None:
    sign_photo(photo, signer)
    result = verify_photo(photo, trust_anchors=other_ca)
    assert result.status is Verdict.VALID
    assert "signingCredential.untrusted" in [n["code"] for n in result.notes]


def test_manifest_has_no_thumbnail(photo: Path, signer: LocalSigner) -> None:
    sign_photo(photo, signer)
    manifest = sidecar_path(photo).read_bytes()
    with c2pa.Reader("image/jpeg", io.BytesIO(photo.read_bytes()), manifest) as reader:
        store = json.loads(reader.json())
    active = store["manifests"][store["active_manifest"]]
    assert "thumbnail" not in active
    assert not [a for a in active["assertions"] if "thumbnail" in a["label"]]
    # The manifest is small: it cannot hold a copy of a 100 kB photo.
    assert len(manifest) < 16_000


@pytest.mark.parametrize("fixture", ["photo", "png_photo"])
def test_embed_writes_a_new_signed_copy(
    fixture: str, request: pytest.FixtureRequest, signer: LocalSigner, keys: KeyFiles
) -> None:
    original: Path = request.getfixturevalue(fixture)
    before = sha256(original)
    result = sign_photo(original, signer, embed=True)
    signed = Path(result.output)
    assert signed.name == f"{original.stem}.signed{original.suffix}"
    assert sha256(original) == before
    assert not sidecar_path(original).exists()
    verdict = verify_photo(signed, trust_anchors=keys.ca_certificate)
    assert verdict.status is Verdict.TRUSTED and verdict.manifest == "embedded"
    assert verify_photo(original).status is Verdict.NONE
    with Image.open(signed) as img:  # still an ordinary picture
        img.load()


def test_ed25519_and_source_type(photo: Path, keys: KeyFiles) -> None:
    ca_key = serialization.load_pem_private_key(keys.ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(keys.ca_certificate.read_bytes())
    key = ed25519.Ed25519PrivateKey.generate()
    cert = _leaf(ca_key, ca_cert, key)  # type: ignore[arg-type]
    signer = LocalSigner(_pem_key(key), _pem(cert) + _pem(ca_cert))
    sign_photo(photo, signer, source_type="minorHumanEdits")
    result = verify_photo(photo, trust_anchors=keys.ca_certificate)
    assert result.status is Verdict.TRUSTED
    assert result.signer is not None and result.signer["algorithm"] == "ed25519"
    assert result.actions[0]["digitalSourceType"] == SOURCE_TYPES["minorHumanEdits"]


# -- attacks ----------------------------------------------------------------------------


def test_pixel_edit_after_signing_is_invalid(photo: Path, signer: LocalSigner) -> None:
    sign_photo(photo, signer)
    with Image.open(photo) as img:
        edited = img.convert("RGB")
    edited.putpixel((10, 10), (255, 0, 0))
    edited.save(photo, "JPEG", quality=95)
    result = verify_photo(photo)
    assert result.status is Verdict.INVALID
    assert DATA_HASH_MISMATCH in codes(result)


def test_pixel_edit_of_embedded_copy_is_invalid(photo: Path, signer: LocalSigner) -> None:
    signed = Path(sign_photo(photo, signer, embed=True).output)
    data = bytearray(signed.read_bytes())
    data[-5000] ^= 0x10  # inside the entropy-coded picture data
    signed.write_bytes(bytes(data))
    result = verify_photo(signed)
    assert result.status is Verdict.INVALID
    assert DATA_HASH_MISMATCH in codes(result)


@pytest.mark.parametrize("embed", [False, True])
def test_metadata_only_edit_is_invalid(photo: Path, signer: LocalSigner, embed: bool) -> None:
    target = Path(sign_photo(photo, signer, embed=embed).output) if embed else photo
    if not embed:
        sign_photo(photo, signer)
    data = target.read_bytes()
    comment = b"edited caption"
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    target.write_bytes(data[:2] + segment + data[2:])  # a JPEG COM segment, pixels untouched
    with Image.open(target) as img:
        img.load()
    result = verify_photo(target)
    assert result.status is Verdict.INVALID
    assert DATA_HASH_MISMATCH in codes(result)


def test_manifest_copied_onto_another_image_is_invalid(
    photo: Path, signer: LocalSigner, keys: KeyFiles, tmp_path: Path
) -> None:
    sign_photo(photo, signer)
    other = Path(shutil.copy(sample_photo("hubble_deep_field.jpg"), tmp_path / "other.jpg"))
    result = verify_photo(other, manifest=sidecar_path(photo), trust_anchors=keys.ca_certificate)
    assert result.status is Verdict.INVALID
    assert DATA_HASH_MISMATCH in codes(result)
    # Also when the embedded manifest of A is grafted onto B as a sidecar.
    shutil.copy(sidecar_path(photo), sidecar_path(other))
    assert verify_photo(other).status is Verdict.INVALID


def test_stripped_manifest_is_none(photo: Path, signer: LocalSigner, tmp_path: Path) -> None:
    signed = Path(sign_photo(photo, signer, embed=True).output)
    stripped = tmp_path / "resaved.jpg"
    with Image.open(signed) as img:
        img.save(stripped, "JPEG", quality=90)
    result = verify_photo(stripped)
    assert result.status is Verdict.NONE
    assert result.to_dict()["failures"] == [] and result.manifest is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m[: len(m) // 2],
        lambda m: m[:40],
        lambda m: b"garbage" * 50,
        lambda m: b"",
        lambda m: b"\x00" * 4 + m[4:],
    ],
    ids=["half", "header-only", "garbage", "empty", "bad-box-size"],
)
def test_truncated_or_garbage_manifest_is_invalid_not_a_crash(
    photo: Path, signer: LocalSigner, damage: Callable[[bytes], bytes]
) -> None:
    sign_photo(photo, signer)
    sidecar = sidecar_path(photo)
    sidecar.write_bytes(damage(sidecar.read_bytes()))
    result = verify_photo(photo)
    assert result.status is Verdict.INVALID
    assert result.failures and result.failures[0]["code"]
    assert all(f["explanation"] for f in result.failures)


def test_tampered_manifest_bytes_are_invalid(photo: Path, signer: LocalSigner) -> None:
    sign_photo(photo, signer)
    sidecar = sidecar_path(photo)
    manifest = bytearray(sidecar.read_bytes())
    start = manifest.find(b"digitalCapture")
    manifest[start : start + len(b"digitalCapture")] = b"digitalCreatio"  # same length
    sidecar.write_bytes(bytes(manifest))
    result = verify_photo(photo)
    assert result.status is Verdict.INVALID
    assert result.failures


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    key: object,
    *,
    aki: bool = True,
    ca: bool = False,
    eku: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.EMAIL_PROTECTION,
    days: tuple[int, int] = (-1, 365),
) -> x509.Certificate:
    public = key.public_key()  # type: ignore[attr-defined]
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mallory")]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, ca, False, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


@pytest.mark.parametrize(
    ("defect", "named"),
    [
        ({"days": (-30, -1)}, "expired"),
        ({"eku": ExtendedKeyUsageOID.SERVER_AUTH}, "ExtendedKeyUsage is serverAuth"),
        ({"eku": None}, "ExtendedKeyUsage extension is missing"),
        ({"aki": False}, "Authority Key Identifier extension is missing"),
        ({"ca": True}, "CA=true"),
    ],
    ids=["expired", "wrong-eku", "no-eku", "no-aki", "ca"],
)
def test_bad_certificate_refused_before_signing_and_c2pa_agrees(
    photo: Path, defect: dict[str, object], named: str
) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key, ca_cert = make_ca("Test CA", now=now)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf(ca_key, ca_cert, key, **defect)  # type: ignore[arg-type]
    chain = _pem(cert) + _pem(ca_cert)
    with pytest.raises(CertificateError) as caught:
        sign_photo(photo, LocalSigner(_pem_key(key), chain, name="mallory.pem"))
    assert named in caught.value.message
    assert not sidecar_path(photo).exists()
    # The oracle: c2pa-rs itself refuses the same certificate (with a vaguer message),
    # and accepts a good one made the same way.
    for bad, pem_chain in ((True, chain), (False, None)):
        if pem_chain is None:
            good_key, good = issue_signer(ca_key, ca_cert, "Good", now=now)
            key, pem_chain = good_key, _pem(good) + _pem(ca_cert)
        info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, pem_chain, _pem_key(key), None)
        builder = c2pa.Builder(
            {
                "claim_generator_info": [{"name": "test", "version": "1"}],
                "assertions": [
                    {
                        "label": "c2pa.actions",
                        "data": {
                            "actions": [
                                {
                                    "action": "c2pa.created",
                                    "digitalSourceType": SOURCE_TYPES["digitalCapture"],
                                }
                            ]
                        },
                    }
                ],
            },
            context=c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}}),
        )
        builder.set_no_embed()
        with c2pa.Signer.from_info(info) as native:
            if bad:
                with pytest.raises(c2pa.C2paError):
                    builder.sign(native, "image/jpeg", io.BytesIO(photo.read_bytes()), io.BytesIO())
            else:
                assert builder.sign(
                    native, "image/jpeg", io.BytesIO(photo.read_bytes()), io.BytesIO()
                )


# -- keys held elsewhere --------------------------------------------------------------


class FakeKms:
    """Stands in for an HSM / cloud KMS: holds a key object, signs what it is given."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self.requests: list[int] = []

    def sign(self, data: bytes) -> bytes:
        self.requests.append(len(data))
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def test_callback_signer_for_keys_held_elsewhere(photo: Path, keys: KeyFiles) -> None:
    key = serialization.load_pem_private_key(keys.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    kms = FakeKms(key)
    signer = CallbackSigner(kms.sign, keys.certificate.read_bytes())
    result = sign_photo(photo, signer)
    assert len(kms.requests) == 1 and 0 < kms.requests[0] < 1_000_000
    assert result.algorithm == "es256"
    verdict = verify_photo(photo, trust_anchors=keys.ca_certificate)
    assert verdict.status is Verdict.TRUSTED


def test_failing_callback_signer_is_a_clear_error(photo: Path, keys: KeyFiles) -> None:
    def offline(data: bytes) -> bytes:
        raise ConnectionError("the KMS is unreachable")

    with pytest.raises(SigningError, match="KMS is unreachable"):
        sign_photo(photo, CallbackSigner(offline, keys.certificate.read_bytes()))
    assert not sidecar_path(photo).exists()


def test_callback_signing_with_a_foreign_key_is_invalid(photo: Path, keys: KeyFiles) -> None:
    stranger = FakeKms(ec.generate_private_key(ec.SECP256R1()))
    try:
        sign_photo(photo, CallbackSigner(stranger.sign, keys.certificate.read_bytes()))
    except SigningError:
        return  # c2pa verifies after signing and refuses: fine
    assert verify_photo(photo).status is Verdict.INVALID


# -- other inputs -----------------------------------------------------------------------


def test_unsigned_photo_is_none(photo: Path) -> None:
    result = verify_photo(photo)
    assert result.status is Verdict.NONE
    assert result.to_dict() == {
        "path": str(photo),
        "status": "none",
        "manifest": None,
        "manifest_path": None,
        "claim_generator": None,
        "signer": None,
        "signed_at": None,
        "time_source": None,
        "actions": [],
        "failures": [],
        "notes": [],
    }


def test_c2patool_style_sidecar_is_found(photo: Path, signer: LocalSigner) -> None:
    sign_photo(photo, signer, output=photo.with_suffix(".c2pa"))
    assert verify_photo(photo).manifest_path == str(photo.with_suffix(".c2pa"))


def test_bad_inputs_are_takeback_errors(photo: Path, signer: LocalSigner, tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a photo")
    with pytest.raises(UnsupportedMediaError):
        sign_photo(text, signer)
    with pytest.raises(UnsupportedMediaError):
        verify_photo(text)
    with pytest.raises(FileAccessError):
        verify_photo(tmp_path / "missing.jpg")
    with pytest.raises(FileAccessError):
        verify_photo(photo, manifest=tmp_path / "missing.c2pa")
    with pytest.raises(TrustAnchorError):
        verify_photo(photo, trust_anchors=text)
    with pytest.raises(InputError, match="source type"):
        sign_photo(photo, signer, source_type="aiGenerated")
    with pytest.raises(InputError, match="the photo itself"):
        sign_photo(photo, signer, embed=True, output=photo, force=True)
    sign_photo(photo, signer)
    with pytest.raises(InputError, match="already exists"):
        sign_photo(photo, signer)
    sign_photo(photo, signer, force=True)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photo.read_bytes()[:2000])
    result = verify_photo(broken)  # a truncated unsigned JPEG: no manifest, no crash
    assert result.status in {Verdict.NONE, Verdict.INVALID}


def test_no_third_party_error_leaks(photo: Path, signer: LocalSigner, tmp_path: Path) -> None:
    """Every failure above surfaces as a TakeBackError or a verdict, never a C2paError."""
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff" + b"\x00" * 500)
    with pytest.raises(CorruptImageError):
        verify_photo(junk)  # no manifest in it: the photo itself is damaged
    with pytest.raises(SigningError, match="undamaged"):
        sign_photo(junk, signer)
    assert verify_photo(photo, manifest=junk).failures[0]["code"] == MANIFEST_UNREADABLE
    for call in (lambda: verify_photo(junk), lambda: sign_photo(junk, signer, embed=True)):
        with pytest.raises(TakeBackError):
            call()


# -- CLI -------------------------------------------------------------------------------


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    register(app)
    return app


def test_cli_keys_sign_verify(app: typer.Typer, photo: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"TAKEBACK_HOME": str(tmp_path / "home")}
    made = runner.invoke(app, ["keys", "init", "--name", "Alex", "--json"], env=env)
    assert made.exit_code == 0, made.output
    files = json.loads(made.stdout)
    assert files["directory"] == str(tmp_path / "home" / "keys")
    again = runner.invoke(app, ["keys", "init"], env=env)
    assert again.exit_code == 1 and "--force" in again.stderr

    before = sha256(photo)
    signed = runner.invoke(app, ["sign", str(photo), "--json"], env=env)
    assert signed.exit_code == 0, signed.output
    assert json.loads(signed.stdout)["output"] == str(sidecar_path(photo))
    assert sha256(photo) == before

    checked = runner.invoke(app, ["verify", str(photo), "--json"], env=env)
    assert checked.exit_code == 0
    line = json.loads(checked.stdout)
    assert line["status"] == "valid" and line["signer"]["common_name"] == "Alex"
    trusted = runner.invoke(
        app, ["verify", str(photo), "--trust-anchors", files["ca_certificate"]], env=env
    )
    assert trusted.exit_code == 0 and "trusted" in trusted.stdout

    embedded = runner.invoke(
        app, ["sign", str(photo), "--embed", "-o", str(tmp_path / "out.jpg")], env=env
    )
    assert embedded.exit_code == 0 and "out.jpg" in embedded.stdout

    with Image.open(photo) as img:
        img.save(photo, "JPEG", quality=80)
    tampered = runner.invoke(app, ["verify", str(photo)], env=env)
    assert tampered.exit_code == 0
    assert "INVALID" in tampered.stdout and DATA_HASH_MISMATCH in tampered.stdout


def test_cli_errors(app: typer.Typer, photo: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"TAKEBACK_HOME": str(tmp_path / "empty-home")}
    no_keys = runner.invoke(app, ["sign", str(photo), "--json"], env=env)
    assert no_keys.exit_code == 1
    error = json.loads(no_keys.stdout)["error"]
    assert error["code"] == "signing_key_error" and "keys init" in error["message"]
    half = runner.invoke(app, ["sign", str(photo), "--key", str(photo)], env=env)
    assert half.exit_code == 2
    none = runner.invoke(app, ["verify", str(photo)], env=env)
    assert none.exit_code == 0 and "none" in none.stdout
    missing = runner.invoke(app, ["verify", str(tmp_path / "nope.jpg"), "--json"], env=env)
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["error"]["code"] == "file_unreadable"


def test_cli_names_the_certificate_problem(app: typer.Typer, photo: Path, tmp_path: Path) -> None:
    ca_key, ca_cert = make_ca("Test CA", now=dt.datetime.now(dt.UTC))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf(ca_key, ca_cert, key, eku=ExtendedKeyUsageOID.SERVER_AUTH)
    (tmp_path / "k.pem").write_bytes(_pem_key(key))
    (tmp_path / "c.pem").write_bytes(_pem(cert) + _pem(ca_cert))
    result = CliRunner().invoke(
        app,
        ["sign", str(photo), "--key", str(tmp_path / "k.pem"), "--cert", str(tmp_path / "c.pem")],
    )
    assert result.exit_code == 1
    assert "ExtendedKeyUsage is serverAuth" in result.stderr
    assert "emailProtection or documentSigning" in result.stderr
