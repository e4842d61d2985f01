"""Content Credentials (C2PA): sign a photo, verify a photo.

Signing writes a C2PA manifest for a photo, either as a sidecar file
(``photo.jpg.c2pa``; the photo itself is never written to and stays
byte-identical) or embedded in a new copy of the photo (``--embed``). The
manifest says:

* claim generator ``TakeBack/<version>``;
* one ``c2pa.actions`` assertion with a single ``c2pa.created`` action, its
  ``digitalSourceType`` (``digitalCapture`` by default: a photo taken with a
  camera; see :data:`SOURCE_TYPES`), the time on the signer's clock and
  TakeBack as the software agent. ``c2pa.opened`` / ``c2pa.edited`` need the
  parent's own manifest as an ingredient, which a camera photo without Content
  Credentials does not have, so TakeBack always records the photo as created;
  a photo retouched before signing is declared with ``source_type="minorHumanEdits"``
  or ``"humanEdits"``;
* no thumbnail: thumbnails embed a copy of the picture in the manifest, and a
  sidecar must never carry the photo.

Verification gives a :class:`Verdict`:

``trusted``
    the manifest is cryptographically valid, it binds exactly these bytes, and
    its signer chains to one of the given trust anchors;
``valid``
    the same, but the signer is not (or could not be) checked against a trust
    anchor: anyone can make such a certificate;
``invalid``
    a manifest is there but it fails: ``failures`` lists the C2PA status codes
    (``assertion.dataHash.mismatch`` after any change to the file,
    ``claimSignature.mismatch`` after a change to the manifest, ...);
``none``
    no manifest (embedded or sidecar): a re-saved photo has lost it.

Nothing is fetched from the network: remote manifests and OCSP are off.

Examples
--------
>>> import tempfile, shutil
>>> from takeback.provenance.keys import init_keys, LocalSigner
>>> from takeback.samples import sample_photo
>>> with tempfile.TemporaryDirectory() as tmp:
...     files = init_keys(tmp + "/keys")
...     photo = shutil.copy(sample_photo("rocket.jpg"), tmp)
...     signed = sign_photo(photo, LocalSigner.from_files(files.key, files.certificate))
...     verify_photo(photo).status, verify_photo(photo, trust_anchors=files.ca_certificate).status
(<Verdict.VALID: 'valid'>, <Verdict.TRUSTED: 'trusted'>)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import c2pa

from .. import __version__
from ..errors import CorruptImageError, FileAccessError, InputError, TakeBackError
from ..files import write_atomic
from ..imageio import ImageLimits, read_bytes
from .keys import CallbackSigner, CertificateError, LocalSigner, Signer, load_certificates

__all__ = [
    "CLAIM_GENERATOR",
    "SOURCE_TYPES",
    "ContentCredentialsError",
    "SignResult",
    "SigningError",
    "TrustAnchorError",
    "UnsupportedMediaError",
    "Verdict",
    "Verification",
    "sidecar_path",
    "sign_photo",
    "verify_photo",
]

#: Name in the manifest's claim generator.
CLAIM_GENERATOR: Final = "TakeBack"
_IPTC: Final = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: Digital source types a signer may declare, by short name (IPTC vocabulary).
SOURCE_TYPES: Final = {
    "digitalCapture": _IPTC + "digitalCapture",
    "computationalCapture": _IPTC + "computationalCapture",
    "minorHumanEdits": _IPTC + "minorHumanEdits",
    "humanEdits": _IPTC + "humanEdits",
    "digitalCreation": _IPTC + "digitalCreation",
}
#: Status code of a manifest that cannot even be parsed (not a C2PA code).
MANIFEST_UNREADABLE: Final = "takeback.manifest.unreadable"
#: C2PA status code of a signer that chains to no given trust anchor.
UNTRUSTED: Final = "signingCredential.untrusted"
#: Largest sidecar manifest read.
MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024

_ALGORITHMS: Final = {
    "es256": c2pa.C2paSigningAlg.ES256,
    "es384": c2pa.C2paSigningAlg.ES384,
    "es512": c2pa.C2paSigningAlg.ES512,
    "ps256": c2pa.C2paSigningAlg.PS256,
    "ed25519": c2pa.C2paSigningAlg.ED25519,
}
# Offline and private: no thumbnails, no network.
_BASE_SETTINGS: Final[dict[str, Any]] = {
    "builder": {"thumbnail": {"enabled": False}},
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
}


class ContentCredentialsError(TakeBackError):
    """Signing or reading Content Credentials failed."""

    code = "c2pa_error"


class SigningError(ContentCredentialsError):
    """The C2PA library or a callback signer refused to sign."""

    code = "signing_failed"


class UnsupportedMediaError(InputError):
    """The file is not a format C2PA can carry a manifest in."""

    code = "c2pa_unsupported"


class TrustAnchorError(InputError):
    """The trust anchors file holds no usable certificate."""

    code = "trust_anchor_invalid"


class Verdict(enum.StrEnum):
    """Outcome of :func:`verify_photo` (see the module's documentation)."""

    TRUSTED = "trusted"
    VALID = "valid"
    INVALID = "invalid"
    NONE = "none"


def _media_type(data: bytes, name: str) -> str:
    """The MIME type from the file's first bytes (never from its name)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc", b"heim", b"heis"):
            return "image/heic"
    raise UnsupportedMediaError(
        f"{name} is not a photo format that can carry Content Credentials "
        "(JPEG, PNG, WebP, TIFF, GIF, HEIC or AVIF expected)",
        path=name,
    )


def sidecar_path(photo: str | os.PathLike[str]) -> Path:
    """Where the sidecar manifest of ``photo`` goes: ``photo.jpg`` -> ``photo.jpg.c2pa``."""
    path = Path(photo)
    return path.with_name(path.name + ".c2pa")


def _context(extra: dict[str, Any] | None = None) -> c2pa.Context:
    settings = json.loads(json.dumps(_BASE_SETTINGS))
    for key, value in (extra or {}).items():
        settings.setdefault(key, {}).update(value)
    try:
        return c2pa.Context.from_dict(settings)
    except c2pa.C2paError as exc:  # a bug of ours or an incompatible c2pa-python
        raise ContentCredentialsError(
            f"the C2PA library rejected TakeBack's settings ({exc}); "
            f"check that c2pa-python {c2pa.__version__} is the pinned version"
        ) from exc


# -- signing --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignResult:
    """What :func:`sign_photo` did.

    Attributes
    ----------
    path : str
        The photo (never modified).
    output : str
        The sidecar manifest, or the new photo with the manifest embedded.
    embedded : bool
    sha256 : str
        SHA-256 of the photo as signed (hex).
    manifest_bytes : int
        Size of the manifest store.
    signer : str
        The signer certificate's subject.
    algorithm : str
    source_type : str
        The IPTC digital source type URI declared.
    """

    path: str
    output: str
    embedded: bool
    sha256: str
    manifest_bytes: int
    signer: str
    algorithm: str
    source_type: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``takeback sign --json``."""
        return {
            "path": self.path,
            "output": self.output,
            "embedded": self.embedded,
            "sha256": self.sha256,
            "manifest_bytes": self.manifest_bytes,
            "signer": self.signer,
            "algorithm": self.algorithm,
            "source_type": self.source_type,
        }


def _manifest_definition(source_type: str, when: dt.datetime) -> dict[str, Any]:
    agent = {"name": CLAIM_GENERATOR, "version": __version__}
    return {
        "claim_generator_info": [agent],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": source_type,
                            "when": when.isoformat(timespec="seconds"),
                            "softwareAgent": agent,
                        }
                    ]
                },
            }
        ],
    }


class _CallbackBridge:
    """Calls a :class:`CallbackSigner` and keeps its exception (c2pa-python swallows it)."""

    def __init__(self, signer: CallbackSigner) -> None:
        self.signer = signer
        self.error: BaseException | None = None

    def __call__(self, data: bytes) -> bytes:
        try:
            signature = self.signer.sign(data)
            if not isinstance(signature, bytes | bytearray) or not signature:
                raise TypeError("the signing function must return the signature as bytes")
            return bytes(signature)
        except Exception as exc:
            self.error = exc
            raise


def _native_signer(signer: Signer) -> tuple[c2pa.Signer, _CallbackBridge | None]:
    alg = _ALGORITHMS[signer.algorithm]
    try:
        if isinstance(signer, LocalSigner):
            info = c2pa.C2paSignerInfo(alg, signer.chain_pem, signer.key_pem, None)
            return c2pa.Signer.from_info(info), None
        if isinstance(signer, CallbackSigner):
            bridge = _CallbackBridge(signer)
            native = c2pa.Signer.from_callback(bridge, alg, signer.chain_pem.decode("ascii"), None)
            return native, bridge
    except (c2pa.C2paError, UnicodeDecodeError) as exc:
        raise SigningError(f"the signing key could not be used ({exc})") from exc
    raise TypeError(f"unknown signer type {type(signer).__name__}")


def _check_output(output: Path, photo: Path, force: bool) -> None:
    with contextlib.suppress(OSError):
        if output.exists() and output.samefile(photo):
            raise InputError(
                f"{output} is the photo itself; TakeBack never modifies the original "
                "(choose another -o)",
                path=str(output),
            )
    if output.exists() and not force:
        raise InputError(
            f"{output} already exists; use --force to replace it or -o to write elsewhere",
            path=str(output),
        )


def sign_photo(
    photo: str | os.PathLike[str],
    signer: Signer,
    *,
    embed: bool = False,
    output: str | os.PathLike[str] | None = None,
    force: bool = False,
    source_type: str = "digitalCapture",
    limits: ImageLimits | None = None,
    now: dt.datetime | None = None,
) -> SignResult:
    """Sign a photo with Content Credentials.

    Parameters
    ----------
    photo : path
        The photo to sign; it is only read.
    signer : LocalSigner or CallbackSigner
        Whose certificate signs (checked when it was made).
    embed : bool
        Write a new copy of the photo with the manifest embedded instead of a
        sidecar ``.c2pa`` manifest.
    output : path, optional
        Where to write. Default: ``photo.jpg.c2pa`` (sidecar) or
        ``photo.signed.jpg`` (embedded), next to the photo.
    force : bool
        Replace ``output`` if it exists.
    source_type : str
        A key of :data:`SOURCE_TYPES` or a full IPTC digital source type URI.
    limits : ImageLimits, optional
        File size limit.
    now : datetime.datetime, optional
        The time recorded in the ``c2pa.created`` action (UTC); default now.

    Returns
    -------
    SignResult

    Raises
    ------
    FileAccessError, ImageTooLargeError
        The photo cannot be read.
    UnsupportedMediaError
        The file is not a format C2PA supports.
    InputError
        ``output`` exists (without ``force``) or is the photo itself, or the
        source type is unknown.
    SigningError
        The C2PA library or the callback signer failed.
    """
    source = Path(photo)
    name = os.fspath(photo)
    source_uri = SOURCE_TYPES.get(source_type, source_type)
    if not source_uri.startswith(_IPTC):
        raise InputError(
            f"unknown digital source type {source_type!r}; choose one of " + ", ".join(SOURCE_TYPES)
        )
    data = read_bytes(source, limits)
    media_type = _media_type(data, name)
    if output is None:
        target = (
            sidecar_path(source)
            if not embed
            else source.with_name(f"{source.stem}.signed{source.suffix}")
        )
    else:
        target = Path(output)
    _check_output(target, source, force)

    definition = _manifest_definition(source_uri, now or dt.datetime.now(dt.UTC))
    native, bridge = _native_signer(signer)
    dest = io.BytesIO()
    try:
        with native, _context() as ctx, c2pa.Builder(definition, context=ctx) as builder:
            if not embed:
                builder.set_no_embed()
            manifest = builder.sign(native, media_type, io.BytesIO(data), dest)
    except c2pa.C2paError as exc:
        if bridge is not None and bridge.error is not None:
            raise SigningError(
                f"{name}: the signing function failed: {bridge.error}", path=name
            ) from bridge.error
        if "certificate" in str(exc).lower():
            raise CertificateError(
                f"{name}: the C2PA library refused the signing certificate ({exc})",
                problem="refused",
                path=name,
            ) from exc
        raise SigningError(
            f"{name}: signing failed ({exc}); is the photo complete and undamaged?", path=name
        ) from exc
    if not manifest:
        raise SigningError(f"{name}: the C2PA library returned no manifest", path=name)
    write_atomic(target, dest.getvalue() if embed else manifest, hint="choose another -o")
    return SignResult(
        path=name,
        output=str(target),
        embedded=embed,
        sha256=hashlib.sha256(data).hexdigest(),
        manifest_bytes=len(manifest),
        signer=signer.info.subject,
        algorithm=signer.algorithm,
        source_type=source_uri,
    )


# -- verifying ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of :func:`verify_photo`. ``to_dict()`` is the ``--json`` form.

    Attributes
    ----------
    path : str
    status : Verdict
    manifest : str or None
        ``"embedded"``, ``"sidecar"`` or ``None`` (no manifest).
    manifest_path : str or None
        The sidecar file used, if any.
    claim_generator : str or None
        ``"TakeBack/0.1.0"`` and the like.
    signer : dict or None
        ``{"common_name", "issuer", "serial", "algorithm"}`` of the signing certificate.
    signed_at : str or None
        ISO 8601 time: from an RFC 3161 timestamp when the manifest has one,
        else the ``when`` of the first action (the signer's own clock).
    time_source : str or None
        ``"timestamp"`` or ``"signer_clock"``.
    actions : list of dict
        ``{"action", "digitalSourceType", "when", "softwareAgent"}`` (absent keys omitted).
    failures : list of dict
        ``{"code", "explanation"}``: why the manifest is invalid (empty otherwise).
    notes : list of dict
        ``{"code", "explanation"}``: informational codes, including
        ``signingCredential.untrusted`` for a ``valid`` (untrusted) signer.
    """

    path: str
    status: Verdict
    manifest: str | None = None
    manifest_path: str | None = None
    claim_generator: str | None = None
    signer: dict[str, str | None] | None = None
    signed_at: str | None = None
    time_source: str | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by ``takeback verify --json`` (see docs/provenance.md)."""
        return {
            "path": self.path,
            "status": self.status.value,
            "manifest": self.manifest,
            "manifest_path": self.manifest_path,
            "claim_generator": self.claim_generator,
            "signer": self.signer,
            "signed_at": self.signed_at,
            "time_source": self.time_source,
            "actions": self.actions,
            "failures": self.failures,
            "notes": self.notes,
        }


def _anchor_pem(trust_anchors: str | os.PathLike[str] | bytes) -> str:
    if isinstance(trust_anchors, bytes):
        pem, name = trust_anchors, "<trust anchors>"
    else:
        name = os.fspath(trust_anchors)
        try:
            with open(name, "rb") as fh:
                pem = fh.read(MAX_MANIFEST_BYTES)
        except OSError as exc:
            raise FileAccessError(
                f"{name}: the trust anchors file cannot be read ({exc.strerror})", path=name
            ) from exc
    try:
        certs = load_certificates(pem, name=name)
    except CertificateError as exc:
        raise TrustAnchorError(exc.message, path=name) from exc
    # Re-encode: only clean certificates reach the C2PA library.
    from cryptography.hazmat.primitives.serialization import Encoding

    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certs)


def _read_manifest(path: Path) -> bytes:
    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise InputError(
                f"{name} is {size:,} bytes; a C2PA manifest is never that large", path=name
            )
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise FileAccessError(f"{name}: no such manifest file", path=name) from exc
    except IsADirectoryError as exc:
        raise FileAccessError(f"{name} is a directory, not a manifest", path=name) from exc
    except OSError as exc:
        raise FileAccessError(f"{name}: cannot be read ({exc.strerror})", path=name) from exc


def _entries(items: Any) -> list[dict[str, str]]:
    out = []
    for item in items or []:
        if isinstance(item, dict) and item.get("code"):
            out.append({"code": str(item["code"]), "explanation": str(item.get("explanation", ""))})
    return out


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info")
    if isinstance(infos, list) and infos and isinstance(infos[0], dict):
        info = infos[0]
        name = str(info.get("name", ""))
        return f"{name}/{info['version']}" if info.get("version") else name or None
    legacy = manifest.get("claim_generator")
    return str(legacy) if legacy else None


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions") or []:
        label = str(assertion.get("label", ""))
        if label != "c2pa.actions" and not label.startswith("c2pa.actions."):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(action, dict):
                continue
            keep = ("action", "digitalSourceType", "when", "softwareAgent")
            actions.append({k: action[k] for k in keep if k in action})
    return actions


def _interpret(
    store: dict[str, Any], path: str, manifest_kind: str, manifest_path: str | None
) -> Verification:
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = _entries(results.get("failure"))
    if not results and store.get("validation_status"):  # older form: failures only
        failures = _entries(store["validation_status"])
    notes = [f for f in failures if f["code"] == UNTRUSTED]
    failures = [f for f in failures if f["code"] != UNTRUSTED]
    notes += _entries(results.get("informational"))
    state = str(store.get("validation_state", "")).lower()
    if failures or state == "invalid" or not active:
        status = Verdict.INVALID
        if not failures:
            failures = [
                {"code": MANIFEST_UNREADABLE, "explanation": "no active manifest in the store"}
            ]
    elif state == "trusted":
        status = Verdict.TRUSTED
    else:
        status = Verdict.VALID
    sig = active.get("signature_info") or {}
    signer = (
        {
            "common_name": sig.get("common_name"),
            "issuer": sig.get("issuer"),
            "serial": sig.get("cert_serial_number"),
            "algorithm": str(sig["alg"]).lower() if sig.get("alg") else None,
        }
        if sig
        else None
    )
    actions = _actions(active)
    signed_at, time_source = None, None
    if sig.get("time"):
        signed_at, time_source = str(sig["time"]), "timestamp"
    elif actions and actions[0].get("when"):
        signed_at, time_source = str(actions[0]["when"]), "signer_clock"
    return Verification(
        path=path,
        status=status,
        manifest=manifest_kind,
        manifest_path=manifest_path,
        claim_generator=_claim_generator(active),
        signer=signer,
        signed_at=signed_at,
        time_source=time_source,
        actions=actions,
        failures=failures,
        notes=notes,
    )


def _unreadable(path: str, kind: str, manifest_path: str | None, why: str) -> Verification:
    return Verification(
        path=path,
        status=Verdict.INVALID,
        manifest=kind,
        manifest_path=manifest_path,
        failures=[{"code": MANIFEST_UNREADABLE, "explanation": why}],
    )


def verify_photo(
    photo: str | os.PathLike[str],
    *,
    manifest: str | os.PathLike[str] | None = None,
    trust_anchors: str | os.PathLike[str] | bytes | None = None,
    limits: ImageLimits | None = None,
) -> Verification:
    """Check a photo's Content Credentials.

    Parameters
    ----------
    photo : path
    manifest : path, optional
        A sidecar manifest. Without it the embedded manifest is used, else
        ``photo.jpg.c2pa`` or ``photo.c2pa`` next to the photo when one exists.
    trust_anchors : path or bytes, optional
        PEM certificates of the CAs to trust (e.g. the ``ca.pem`` of
        ``takeback keys init``). Without them the result is at best ``valid``.
    limits : ImageLimits, optional
        File size limit for the photo.

    Returns
    -------
    Verification
        ``none`` when there is no manifest; a damaged manifest is ``invalid``
        with the code ``takeback.manifest.unreadable``.

    Raises
    ------
    FileAccessError, ImageTooLargeError
        The photo or the manifest file cannot be read.
    CorruptImageError
        The photo is damaged and holds no manifest that could be read.
    UnsupportedMediaError
        The file is not a format C2PA supports.
    TrustAnchorError
        The trust anchors file holds no certificate.
    """
    name = os.fspath(photo)
    data = read_bytes(photo, limits)
    media_type = _media_type(data, name)
    extra: dict[str, Any] = {}
    if trust_anchors is not None:
        pem = _anchor_pem(trust_anchors)
        extra["trust"] = {"anchors": [{"trust_anchors": pem, "trust_kind": "manifest"}]}

    candidates: list[Path | None]
    if manifest is not None:
        candidates = [Path(manifest)]
    else:
        here = Path(photo)
        candidates = [None, sidecar_path(here), here.with_suffix(".c2pa")]
    with _context(extra) as ctx:
        for candidate in candidates:
            if candidate is not None and manifest is None and not candidate.is_file():
                continue
            sidecar = None if candidate is None else _read_manifest(candidate)
            kind = "embedded" if candidate is None else "sidecar"
            where = None if candidate is None else str(candidate)
            if sidecar is not None and not sidecar:
                return _unreadable(name, kind, where, "the manifest file is empty")
            try:
                reader = c2pa.Reader.try_create(media_type, io.BytesIO(data), sidecar, context=ctx)
                if reader is None:
                    if candidate is None:
                        continue
                    return _unreadable(name, kind, where, "no C2PA manifest store in the file")
                with reader:
                    store = json.loads(reader.json())
            except c2pa.C2paError.NotSupported as exc:
                raise UnsupportedMediaError(
                    f"{name}: the C2PA library cannot read this {media_type} file ({exc})",
                    path=name,
                ) from exc
            except (c2pa.C2paError, ValueError) as exc:
                if candidate is None and b"jumb" not in data:
                    # No JUMBF box at all: it is the photo, not a manifest, that is damaged.
                    raise CorruptImageError(
                        f"{name} is damaged; it cannot be searched for Content Credentials ({exc})",
                        path=name,
                    ) from exc
                return _unreadable(name, kind, where, f"the manifest cannot be read: {exc}")
            return _interpret(store, name, kind, where)
    return Verification(path=name, status=Verdict.NONE)
