"""Signing keys for Content Credentials: a local CA, certificate checks, signers.

C2PA signing needs an X.509 certificate that c2pa-rs accepts. When it does not,
c2pa-rs only says "the certificate is invalid"; :func:`check_signing_certificate`
runs the same rules first and names what is wrong.

A certificate is accepted when it

* is X.509 version 3 and valid now (not expired, not yet to come);
* holds a P-256, P-384 or P-521 EC key, an Ed25519 key or an RSA key of at
  least 2048 bits;
* carries an Authority Key Identifier;
* has KeyUsage with digitalSignature;
* has an ExtendedKeyUsage of emailProtection or documentSigning;
* is not a certificate authority (BasicConstraints CA=false, no keyCertSign).

Two kinds of signer exist:

* :class:`LocalSigner`: a PEM private key on this machine (``takeback keys
  init`` makes one);
* :class:`CallbackSigner`: a function that receives the bytes to sign and
  returns the signature, for keys held elsewhere (an HSM, a cloud KMS, a
  phone's secure element). TakeBack never sees such a key.

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as home:
...     files = init_keys(home + "/keys", name="Example")
...     signer = LocalSigner.from_files(files.key, files.certificate)
...     signer.algorithm
'es256'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import InputError
from ..home import takeback_home

__all__ = [
    "ACCEPTED_EKUS",
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "SIGNER_CERT_FILE",
    "SIGNER_KEY_FILE",
    "CallbackSigner",
    "CertificateError",
    "CertificateInfo",
    "KeyFiles",
    "KeysExistError",
    "LocalSigner",
    "Signer",
    "SigningKeyError",
    "check_signing_certificate",
    "default_keys_dir",
    "init_keys",
    "issue_signer",
    "load_certificates",
    "make_ca",
]

#: File names inside a keys directory made by :func:`init_keys`.
CA_KEY_FILE: Final = "ca.key"
CA_CERT_FILE: Final = "ca.pem"
SIGNER_KEY_FILE: Final = "signer.key"
SIGNER_CERT_FILE: Final = "signer.pem"

#: OID of the documentSigning extended key usage (RFC 9336).
DOCUMENT_SIGNING: Final = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
#: Extended key usages c2pa-rs accepts for a manifest signer, by name.
ACCEPTED_EKUS: Final = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    DOCUMENT_SIGNING: "documentSigning",
}
#: Smallest RSA modulus c2pa-rs accepts.
MIN_RSA_BITS: Final = 2048
_EC_ALGORITHMS: Final = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}

CA_VALIDITY_DAYS: Final = 3650
SIGNER_VALIDITY_DAYS: Final = 730
#: Clock skew tolerated for a certificate's notBefore.
_BACKDATE: Final = dt.timedelta(minutes=5)


class CertificateError(InputError):
    """A signing certificate c2pa-rs would refuse; the message names the problem.

    Parameters
    ----------
    problem : str
        A short machine name: ``unreadable``, ``not_v3``, ``expired``,
        ``not_yet_valid``, ``weak_key``, ``unsupported_key``, ``aki_missing``,
        ``key_usage_missing``, ``eku_missing``, ``eku_wrong``, ``is_ca``.
    """

    code = "certificate_invalid"

    def __init__(self, message: str, *, problem: str, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.problem = problem


class SigningKeyError(InputError):
    """A private key is missing, unreadable, of the wrong kind or not the certificate's."""

    code = "signing_key_error"


class KeysExistError(InputError):
    """``keys init`` would overwrite existing keys."""

    code = "keys_exist"


def default_keys_dir(environ: dict[str, str] | None = None) -> Path:
    """Where keys live when no directory is given.

    ``$TAKEBACK_HOME/keys`` when ``TAKEBACK_HOME`` is set, else ``keys`` in the
    platform's per-user data directory (``~/.local/share/takeback/keys`` on Linux).
    """
    return takeback_home(environ) / "keys"


# -- certificates -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What :func:`check_signing_certificate` learned about an accepted certificate.

    Attributes
    ----------
    subject, issuer : str
        RFC 4514 distinguished names.
    algorithm : str
        The C2PA signing algorithm the key calls for: ``es256``, ``es384``,
        ``es512``, ``ps256`` or ``ed25519``.
    not_before, not_after : datetime.datetime
        Validity window, UTC.
    """

    subject: str
    issuer: str
    algorithm: str
    not_before: dt.datetime
    not_after: dt.datetime


def load_certificates(pem: bytes, *, name: str = "<certificate>") -> list[x509.Certificate]:
    """Parse every certificate of a PEM bundle, in order.

    Raises
    ------
    CertificateError
        The data holds no PEM certificate or a damaged one.
    """
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise CertificateError(
            f"{name} holds no readable PEM certificate ({exc}); "
            "give a file that starts with -----BEGIN CERTIFICATE-----",
            problem="unreadable",
            path=name,
        ) from exc
    return certs


def _algorithm_for(key: object, name: str) -> str:
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHMS.get(key.curve.name)
        if alg is None:
            raise CertificateError(
                f"{name}: the EC curve {key.curve.name} is not accepted for C2PA; "
                "use P-256, P-384 or P-521",
                problem="unsupported_key",
                path=name,
            )
        return alg
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CertificateError(
                f"{name}: the RSA key has {key.key_size} bits, too weak for C2PA; "
                f"use at least {MIN_RSA_BITS} bits (or P-256)",
                problem="weak_key",
                path=name,
            )
        return "ps256"
    raise CertificateError(
        f"{name}: a {type(key).__name__} key is not accepted for C2PA; "
        "use P-256, P-384, P-521, Ed25519 or RSA of at least 2048 bits",
        problem="unsupported_key",
        path=name,
    )


def check_signing_certificate(
    cert: x509.Certificate, *, name: str = "<certificate>", now: dt.datetime | None = None
) -> CertificateInfo:
    """Check a signing (end-entity) certificate against c2pa-rs's rules.

    Parameters
    ----------
    cert : cryptography.x509.Certificate
        The signer's certificate (the first of a chain).
    name : str
        Used in messages (usually the file's path).
    now : datetime.datetime, optional
        The time to check validity at (UTC); defaults to now.

    Returns
    -------
    CertificateInfo

    Raises
    ------
    CertificateError
        With a message naming the missing or wrong extension, the expiry or
        the weak key.
    """
    now = now or dt.datetime.now(dt.UTC)

    def fail(problem: str, what: str) -> CertificateError:
        return CertificateError(f"{name}: {what}", problem=problem, path=name)

    if cert.version is not x509.Version.v3:
        raise fail("not_v3", "the certificate is not X.509 version 3; C2PA needs v3")
    if cert.not_valid_after_utc < now:
        raise fail(
            "expired",
            f"the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; "
            "make a new one (takeback keys init --force) or renew it",
        )
    if cert.not_valid_before_utc > now:
        raise fail(
            "not_yet_valid",
            f"the certificate is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
            "UTC; check this computer's clock",
        )
    try:
        public_key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise fail("unsupported_key", f"its public key cannot be read ({exc})") from exc
    algorithm = _algorithm_for(public_key, name)

    exts = cert.extensions
    with contextlib.suppress(x509.ExtensionNotFound):
        basic = exts.get_extension_for_class(x509.BasicConstraints).value
        if basic.ca:
            raise fail(
                "is_ca",
                "BasicConstraints says CA=true: this is a certificate authority, which "
                "C2PA refuses as a signer; sign with an end-entity certificate (CA=false)",
            )
    try:
        exts.get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        raise fail(
            "aki_missing",
            "the Authority Key Identifier extension is missing; C2PA requires it "
            "(issue the certificate from a CA that adds it)",
        ) from None
    try:
        usage = exts.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise fail(
            "key_usage_missing",
            "the KeyUsage extension is missing; C2PA requires KeyUsage digitalSignature",
        ) from None
    if not usage.digital_signature:
        raise fail("key_usage_missing", "KeyUsage lacks digitalSignature, which C2PA requires")
    if usage.key_cert_sign:
        raise fail(
            "is_ca",
            "KeyUsage includes keyCertSign: this is a certificate authority's key, "
            "which C2PA refuses as a signer",
        )
    try:
        eku = exts.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise fail(
            "eku_missing",
            "the ExtendedKeyUsage extension is missing; C2PA needs emailProtection "
            "or documentSigning",
        ) from None
    if not any(oid in ACCEPTED_EKUS for oid in eku):
        found = ", ".join(getattr(oid, "_name", None) or oid.dotted_string for oid in eku)
        raise fail(
            "eku_wrong",
            f"the ExtendedKeyUsage is {found or 'empty'}; C2PA needs emailProtection "
            "or documentSigning",
        )
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        algorithm=algorithm,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


# -- signers --------------------------------------------------------------------


class Signer:
    """Base of the two kinds of C2PA signer: a certificate chain and an algorithm.

    Attributes
    ----------
    chain_pem : bytes
        The signer's certificate followed by its issuers (not the root is fine;
        including it is harmless), PEM.
    info : CertificateInfo
        The checked signer certificate.
    """

    chain_pem: bytes
    info: CertificateInfo

    @property
    def algorithm(self) -> str:
        """The C2PA algorithm name (``es256``, ``es384``, ``es512``, ``ps256``, ``ed25519``)."""
        return self.info.algorithm


def _checked_chain(chain_pem: bytes, name: str) -> tuple[list[x509.Certificate], CertificateInfo]:
    certs = load_certificates(chain_pem, name=name)
    return certs, check_signing_certificate(certs[0], name=name)


class LocalSigner(Signer):
    """A signer whose PEM private key is on this machine.

    Parameters
    ----------
    key_pem : bytes
        The private key, PEM (PKCS#8 or traditional), unencrypted.
    chain_pem : bytes
        The signer certificate first, then its issuers, PEM.
    name : str
        Used in messages.

    Raises
    ------
    CertificateError
        The certificate would be refused by c2pa-rs (the message says why).
    SigningKeyError
        The key cannot be read or does not belong to the certificate.
    """

    def __init__(self, key_pem: bytes, chain_pem: bytes, *, name: str = "<signer>") -> None:
        certs, self.info = _checked_chain(chain_pem, name)
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except TypeError as exc:
            raise SigningKeyError(
                f"{name}: the private key is encrypted; give an unencrypted key "
                "or use a callback signer",
                path=name,
            ) from exc
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise SigningKeyError(
                f"{name}: the private key cannot be read ({exc}); give a PEM private key",
                path=name,
            ) from exc
        mine = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        theirs = (
            certs[0]
            .public_key()
            .public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        if mine != theirs:
            raise SigningKeyError(
                f"{name}: the private key does not belong to the certificate; "
                "give the matching --key and --cert",
                path=name,
            )
        self.chain_pem = chain_pem
        self.key_pem = key_pem

    @classmethod
    def from_files(cls, key: str | os.PathLike[str], cert: str | os.PathLike[str]) -> LocalSigner:
        """Load a key file and a certificate chain file.

        Raises
        ------
        SigningKeyError
            A file is missing or unreadable.
        CertificateError
            The certificate would be refused by c2pa-rs.
        """
        key_pem = _read(key, "private key")
        chain_pem = _read(cert, "certificate")
        return cls(key_pem, chain_pem, name=os.fspath(cert))

    def __repr__(self) -> str:
        return f"LocalSigner({self.info.subject!r}, {self.algorithm})"


class CallbackSigner(Signer):
    """A signer for keys held elsewhere: TakeBack hands over bytes, gets a signature.

    Parameters
    ----------
    sign : callable
        ``sign(data: bytes) -> bytes``: signs ``data`` with the certificate's key
        using the certificate's algorithm (ECDSA with SHA-256 for P-256, and so
        on). An ECDSA signature may be DER or raw ``r || s``; Ed25519 gives 64
        bytes. Called once per signing, with about 1-2 kB of data.
    chain_pem : bytes
        The signer certificate first, then its issuers, PEM.
    name : str
        Used in messages.

    Raises
    ------
    CertificateError
        The certificate would be refused by c2pa-rs (the message says why).
    """

    def __init__(
        self, sign: Callable[[bytes], bytes], chain_pem: bytes, *, name: str = "<signer>"
    ) -> None:
        _, self.info = _checked_chain(chain_pem, name)
        self.sign = sign
        self.chain_pem = chain_pem

    def __repr__(self) -> str:
        return f"CallbackSigner({self.info.subject!r}, {self.algorithm})"


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            return fh.read(1 << 20)
    except FileNotFoundError as exc:
        raise SigningKeyError(
            f"{name}: no such {what} file; run `takeback keys init` or give --key and --cert",
            path=name,
        ) from exc
    except OSError as exc:
        raise SigningKeyError(f"{name}: the {what} cannot be read ({exc.strerror})") from exc


# -- a local certificate authority ------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyFiles:
    """The files :func:`init_keys` wrote.

    Attributes
    ----------
    directory : Path
    ca_key, ca_certificate : Path
        The local CA's key (keep it private) and certificate (share it as a
        trust anchor: ``takeback verify --trust-anchors ca.pem``).
    key, certificate : Path
        The signing key and its certificate chain (signer, then CA).
    subject : str
        The signer certificate's distinguished name.
    not_after : datetime.datetime
        When the signer certificate expires (UTC).
    """

    directory: Path
    ca_key: Path
    ca_certificate: Path
    key: Path
    certificate: Path
    subject: str
    not_after: dt.datetime

    def to_dict(self) -> dict[str, str]:
        """The JSON form used by ``takeback keys init --json``."""
        return {
            "directory": str(self.directory),
            "ca_key": str(self.ca_key),
            "ca_certificate": str(self.ca_certificate),
            "key": str(self.key),
            "certificate": str(self.certificate),
            "subject": self.subject,
            "not_after": self.not_after.isoformat(),
            "algorithm": "es256",
        }


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "TakeBack local signing"),
        ]
    )


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    common_name: str, *, now: dt.datetime, days: int = CA_VALIDITY_DAYS
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed P-256 root CA (path length 0: it signs end-entity certificates only)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_signer(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    *,
    now: dt.datetime,
    days: int = SIGNER_VALIDITY_DAYS,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A P-256 end-entity signing certificate that c2pa-rs accepts, issued by ``ca_cert``."""
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signer=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write atomically, created with ``mode`` (never readable by others, even briefly)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def init_keys(
    directory: str | os.PathLike[str] | None = None,
    *,
    name: str = "TakeBack user",
    force: bool = False,
    now: dt.datetime | None = None,
) -> KeyFiles:
    """Create a local CA and a signing certificate in ``directory``.

    Parameters
    ----------
    directory : path, optional
        Defaults to :func:`default_keys_dir`. Created with mode 0700.
    name : str
        Common name of the signer (shown by ``takeback verify`` as the signer).
        The CA is named ``"<name> local CA"``.
    force : bool
        Replace existing keys (signatures made with them stay verifiable
        against the old ``ca.pem`` only).
    now : datetime.datetime, optional
        Start of validity (UTC); for tests.

    Returns
    -------
    KeyFiles

    Raises
    ------
    KeysExistError
        Keys are already there and ``force`` is false.
    SigningKeyError
        The directory cannot be created or written.
    """
    if not name.strip():
        raise SigningKeyError("the signer's name must not be empty")
    target = Path(directory) if directory is not None else default_keys_dir()
    files = [target / f for f in (CA_KEY_FILE, CA_CERT_FILE, SIGNER_KEY_FILE, SIGNER_CERT_FILE)]
    existing = [str(f) for f in files if f.exists()]
    if existing and not force:
        raise KeysExistError(
            f"keys already exist in {target} ({', '.join(p.name for p in map(Path, existing))}); "
            "use --force to replace them or --dir to choose another directory",
            path=str(target),
        )
    now = now or dt.datetime.now(dt.UTC)
    ca_key, ca_cert = make_ca(f"{name.strip()} local CA", now=now)
    key, cert = issue_signer(ca_key, ca_cert, name.strip(), now=now)
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(target, stat.S_IRWXU)
        _write_private(files[0], _pem_key(ca_key), 0o600)
        _write_private(files[1], _pem_cert(ca_cert), 0o644)
        _write_private(files[2], _pem_key(key), 0o600)
        _write_private(files[3], _pem_cert(cert) + _pem_cert(ca_cert), 0o644)
    except OSError as exc:
        raise SigningKeyError(
            f"cannot write keys to {target} ({exc.strerror or exc}); "
            "choose another directory with --dir",
            path=str(target),
        ) from exc
    return KeyFiles(
        directory=target,
        ca_key=files[0],
        ca_certificate=files[1],
        key=files[2],
        certificate=files[3],
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
    )
