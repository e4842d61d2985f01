"""Signing keys: the local CA, certificate checks that name the problem, signers."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from takeback.errors import InputError, TakeBackError
from takeback.provenance.keys import (
    DOCUMENT_SIGNING,
    CallbackSigner,
    CertificateError,
    KeysExistError,
    LocalSigner,
    SigningKeyError,
    check_signing_certificate,
    default_keys_dir,
    init_keys,
    load_certificates,
    make_ca,
)

NOW = dt.datetime.now(dt.UTC)


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


CertFactory = Callable[..., tuple[object, x509.Certificate, x509.Certificate]]


@pytest.fixture(scope="module")
def make_cert() -> CertFactory:
    """Issue end-entity certificates with chosen defects from one test CA."""
    ca_key, ca_cert = make_ca("Test CA", now=NOW)

    def make(
        *,
        aki: bool = True,
        ca: bool = False,
        ekus: list[x509.ObjectIdentifier] | None = None,
        key_usage: bool = True,
        key: object = None,
        not_before: dt.timedelta = dt.timedelta(days=-1),
        not_after: dt.timedelta = dt.timedelta(days=365),
    ) -> tuple[object, x509.Certificate, x509.Certificate]:
        key = key or ec.generate_private_key(ec.SECP256R1())
        public = key.public_key()  # type: ignore[attr-defined]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tester")]))
            .issuer_name(ca_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW + not_before)
            .not_valid_after(NOW + not_after)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        )
        if key_usage:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=ca,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        ekus = [ExtendedKeyUsageOID.EMAIL_PROTECTION] if ekus is None else ekus
        if ekus:
            builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        if aki:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        return key, builder.sign(ca_key, hashes.SHA256()), ca_cert

    return make


# -- keys init ----------------------------------------------------------------------


def test_init_keys_writes_private_files(tmp_path: Path) -> None:
    files = init_keys(tmp_path / "keys", name="Alex Doe")
    assert stat.S_IMODE(os.stat(files.directory).st_mode) == 0o700
    for private in (files.key, files.ca_key):
        assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    chain = load_certificates(files.certificate.read_bytes())
    assert len(chain) == 2
    leaf, ca = chain
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Alex Doe"
    assert ca.subject == leaf.issuer
    assert load_certificates(files.ca_certificate.read_bytes()) == [ca]
    info = check_signing_certificate(leaf)
    assert info.algorithm == "es256"
    assert files.to_dict()["subject"] == info.subject


def test_signer_certificate_has_what_c2pa_requires(tmp_path: Path) -> None:
    files = init_keys(tmp_path / "keys")
    leaf, ca = load_certificates(files.certificate.read_bytes())
    exts = leaf.extensions
    assert leaf.version is x509.Version.v3
    public = leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.curve.name == "secp256r1"
    usage = exts.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = exts.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in eku and DOCUMENT_SIGNING in eku
    assert exts.get_extension_for_class(x509.BasicConstraints).value.ca is False
    aki = exts.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert exts.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert dt.timedelta(days=365) < lifetime < dt.timedelta(days=800)
    leaf.verify_directly_issued_by(ca)


def test_init_keys_refuses_to_overwrite(tmp_path: Path) -> None:
    first = init_keys(tmp_path / "keys")
    before = first.key.read_bytes()
    with pytest.raises(KeysExistError, match="--force"):
        init_keys(tmp_path / "keys")
    assert first.key.read_bytes() == before
    second = init_keys(tmp_path / "keys", force=True)
    assert second.key.read_bytes() != before


def test_default_keys_dir_follows_takeback_home(tmp_path: Path) -> None:
    assert default_keys_dir({"TAKEBACK_HOME": str(tmp_path)}) == tmp_path / "keys"
    assert default_keys_dir({}).name == "keys"


def test_init_keys_in_unwritable_place_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SigningKeyError, match="cannot write keys"):
        init_keys(blocker / "keys")


# -- certificate checks name the problem ------------------------------------------


@pytest.mark.parametrize(
    ("defect", "problem", "named"),
    [
        (
            {"not_after": dt.timedelta(days=-1), "not_before": dt.timedelta(days=-30)},
            "expired",
            "expired",
        ),
        ({"not_before": dt.timedelta(days=2)}, "not_yet_valid", "not valid before"),
        (
            {"ekus": [ExtendedKeyUsageOID.SERVER_AUTH]},
            "eku_wrong",
            "ExtendedKeyUsage is serverAuth",
        ),
        ({"ekus": []}, "eku_missing", "ExtendedKeyUsage extension is missing"),
        ({"aki": False}, "aki_missing", "Authority Key Identifier"),
        ({"ca": True}, "is_ca", "CA=true"),
        ({"key_usage": False}, "key_usage_missing", "KeyUsage"),
        ({"key": "rsa1024"}, "weak_key", "1024 bits"),
        ({"key": "p224"}, "unsupported_key", "secp224r1"),
    ],
)
def test_bad_certificates_are_named(
    make_cert: CertFactory, defect: dict[str, object], problem: str, named: str
) -> None:
    if defect.get("key") == "rsa1024":
        defect = {"key": rsa.generate_private_key(public_exponent=65537, key_size=1024)}
    elif defect.get("key") == "p224":
        defect = {"key": ec.generate_private_key(ec.SECP224R1())}
    key, cert, ca = make_cert(**defect)
    with pytest.raises(CertificateError) as caught:
        LocalSigner(pem_key(key), pem_cert(cert) + pem_cert(ca), name="bad.pem")
    assert caught.value.problem == problem
    assert named in caught.value.message
    assert "bad.pem" in caught.value.message
    assert "certificate is invalid" not in caught.value.message
    assert isinstance(caught.value, InputError)
    assert caught.value.code == "certificate_invalid"


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p384", "ed25519", "rsa2048"],
)
def test_other_accepted_keys(make_cert: CertFactory, key: object) -> None:
    _, cert, ca = make_cert(key=key, ekus=[DOCUMENT_SIGNING])
    signer = LocalSigner(pem_key(key), pem_cert(cert) + pem_cert(ca))
    assert signer.algorithm in {"es384", "ed25519", "ps256"}


def test_key_must_belong_to_certificate(make_cert: CertFactory) -> None:
    _, cert, ca = make_cert()
    stranger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SigningKeyError, match="does not belong"):
        LocalSigner(pem_key(stranger), pem_cert(cert) + pem_cert(ca))


def test_unreadable_inputs_are_clear_errors(tmp_path: Path, make_cert: CertFactory) -> None:
    key, cert, _ = make_cert()
    (tmp_path / "garbage.pem").write_bytes(b"not a certificate")
    (tmp_path / "key.pem").write_bytes(pem_key(key))
    (tmp_path / "cert.pem").write_bytes(pem_cert(cert))
    with pytest.raises(CertificateError, match="no readable PEM certificate") as caught:
        LocalSigner.from_files(tmp_path / "key.pem", tmp_path / "garbage.pem")
    assert caught.value.problem == "unreadable"
    with pytest.raises(SigningKeyError, match="keys init"):
        LocalSigner.from_files(tmp_path / "missing.key", tmp_path / "cert.pem")
    with pytest.raises(SigningKeyError, match="cannot be read"):
        LocalSigner.from_files(tmp_path / "garbage.pem", tmp_path / "cert.pem")
    encrypted = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(SigningKeyError, match="encrypted"):
        LocalSigner(encrypted, pem_cert(cert))


def test_callback_signer_checks_the_certificate_too(make_cert: CertFactory) -> None:
    _, cert, ca = make_cert(aki=False)
    with pytest.raises(CertificateError, match="Authority Key Identifier"):
        CallbackSigner(lambda data: b"", pem_cert(cert) + pem_cert(ca))


def test_errors_are_takeback_errors() -> None:
    for cls in (CertificateError, SigningKeyError, KeysExistError):
        assert issubclass(cls, TakeBackError)
        assert cls.code not in {"error", "input_error"}
