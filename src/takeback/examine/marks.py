"""The AI-generation marks a file carries: metadata, XMP, Content Credentials, watermarks.

Four kinds of mark are read, each by its own function so that each can be
checked (and tested) on its own; :func:`read_marks` runs them all on a file and
returns one :class:`Marks`:

``generator_metadata``
    What generator front-ends write next to the pixels: AUTOMATIC1111's
    ``parameters`` (PNG text, EXIF UserComment), ComfyUI's ``prompt`` and
    ``workflow`` JSON, InvokeAI's ``invokeai_metadata`` / ``invokeai_graph``
    (older ``sd-metadata``, ``Dream``), Fooocus's ``fooocus_scheme``, NovelAI's
    ``Software`` / ``Comment`` and its "stealth" payload in the low bits of the
    alpha channel (:func:`stealth_metadata`), and EXIF Software / Make /
    ImageDescription naming a known generator (FLUX's reference code writes
    ``"AI generated;txt2img;flux"``).
``digital_source_type``
    The IPTC ``Iptc4xmpExt:DigitalSourceType`` property of the file's XMP,
    parsed as XML (never byte-searched) with DTDs and entities refused.
``c2pa_mark``
    Content Credentials, through :func:`takeback.provenance.c2pa.verify_photo`:
    state, claim generator, actions and their digital source types.
``decode_watermarks``
    The invisible DWT-DCT watermark of Stable Diffusion, SDXL and FLUX
    (:mod:`takeback.examine.watermark`).

Expected absence is a result: a photo with no mark gives a :class:`Marks` whose
``found`` is False. Damaged metadata (broken EXIF, malformed or hostile XMP, a
stealth payload that does not fit) is skipped with a plain-language entry in
``notes``. Only a file that is not a usable image raises, with the
:class:`~takeback.errors.ImageError` tree of :mod:`takeback.imageio`.

What the marks prove, and what they do not, is in ``docs/marks.md``: a mark is
strong evidence that a generator touched the file; its absence proves nothing,
since platforms strip metadata and any resize kills the watermark.

Examples
--------
>>> from takeback.samples import sample_photo
>>> marks = read_marks(sample_photo("coffee.png").read_bytes(), name="coffee.png")
>>> marks.found, marks.ai_indicated
(False, False)
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import io
import json
import os
import re
import struct
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Generic, TypeVar
from xml.parsers import expat

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import CorruptImageError, FileAccessError, NotAnImageError
from ..imageio import ImageLimits, open_image
from ..provenance.c2pa import UnsupportedMediaError, Verdict, Verification, verify_photo
from .watermark import WatermarkScan, decode_watermarks

__all__ = [
    "AI_SOURCE_TYPES",
    "EXCERPT_CHARS",
    "MARKS_SCHEMA",
    "MAX_INFLATED_BYTES",
    "MAX_XMP_BYTES",
    "C2paMark",
    "C2paState",
    "Findings",
    "GeneratorMark",
    "Marks",
    "SourceTypeMark",
    "c2pa_mark",
    "decode_user_comment",
    "decode_watermarks",
    "digital_source_type",
    "generator_metadata",
    "read_marks",
    "stealth_metadata",
    "xmp_packets",
]

#: Version of the JSON object of :meth:`Marks.to_dict`.
MARKS_SCHEMA: Final = "takeback.marks/1"
#: Longest excerpt of a prompt or parameter block kept in a report.
EXCERPT_CHARS: Final = 240
#: Largest inflated size of a compressed stealth payload (decompression bombs).
MAX_INFLATED_BYTES: Final = 1024 * 1024
#: Largest XMP packet parsed.
MAX_XMP_BYTES: Final = 4 * 1024 * 1024
#: Longest text handed to the JSON parser.
MAX_JSON_CHARS: Final = 4 * 1024 * 1024
#: IPTC digital source types that say a generative model made the picture (or part of it).
AI_SOURCE_TYPES: Final = frozenset(
    {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"}
)

_IPTC_VOCABULARY: Final = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/",
    "https://cv.iptc.org/newscodes/digitalsourcetype/",
)
_NS_IPTC_EXT: Final = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
_NS_RDF: Final = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XMP_APP1: Final = b"http://ns.adobe.com/xap/1.0/\x00"
# Stealth payloads: magic -> (channel, gzip-compressed).
_STEALTH: Final = {
    b"stealth_pnginfo": ("alpha", False),
    b"stealth_pngcomp": ("alpha", True),
    b"stealth_rgbinfo": ("rgb", False),
    b"stealth_rgbcomp": ("rgb", True),
}
_MAGIC_BITS: Final = 15 * 8
_HEADER_BITS: Final = _MAGIC_BITS + 32
# Formats whose pixels can keep low bits; a lossy JPEG cannot.
_LOSSLESS: Final = frozenset({"PNG", "TIFF", "WEBP", "BMP"})
_A1111_FORM: Final = re.compile(r"\bSteps: \d+, (?:Sampler|Seed|CFG scale|Size|Schedule type): ")
_COMFY_WORKFLOW_PREFIX: Final = re.compile(r"^\s*(workflow|prompt):\s*(?=[{\[])")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]+")
_SPACES: Final = re.compile(r"\s+")

# EXIF tags read (IFD0 unless noted).
_EXIF_TEXT_TAGS: Final = {
    0x010E: "ImageDescription",
    0x010F: "Make",
    0x0110: "Model",
    0x0131: "Software",
    0x013B: "Artist",
    0x9286: "UserComment",  # Exif IFD normally; Fooocus writes it in IFD0
    0x927C: "MakerNote",
    0x9C9C: "XPComment",
}
_EXIF_IFD: Final = 0x8769

_A1111: Final = "AUTOMATIC1111 web UI or compatible"
_UNIDENTIFIED: Final = "unidentified AI generator"
# Names of generators as they appear in Software-like fields: (name, pattern).
_KNOWN_GENERATORS: Final = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("FLUX.1 (Black Forest Labs)", r"\bblack forest labs\b|txt2img;flux\b|\bflux\.1\b"),
        ("NovelAI", r"\bnovel ?ai\b"),
        ("Fooocus", r"\bfooocus\b"),
        ("ComfyUI", r"\bcomfy ?ui\b"),
        ("InvokeAI", r"\binvoke ?ai\b"),
        (_A1111, r"\bautomatic1111\b|\bstable-diffusion-webui\b|\bsd-webui\b"),
        ("Midjourney", r"\bmidjourney\b"),
        ("DALL-E", r"\bdall[^a-z0-9]?e\b"),
        ("Adobe Firefly", r"\badobe firefly\b"),
        ("DreamStudio", r"\bdreamstudio\b"),
        ("Stable Diffusion", r"\bstable[ -]?diffusion\b|\bsdxl\b"),
        ("Draw Things", r"\bdraw things\b"),
        ("DiffusionBee", r"\bdiffusionbee\b"),
        ("Leonardo.Ai", r"\bleonardo[. ]ai\b"),
        ("Ideogram", r"\bideogram\b"),
        ("Google Imagen", r"\bgoogle imagen\b|\bimagen [234]\b"),
        ("Bing Image Creator", r"\bbing image creator\b"),
        ("Craiyon", r"\bcraiyon\b"),
        ("NightCafe", r"\bnightcafe\b"),
        (_UNIDENTIFIED + " (self-declared)", r"\bai[- ]generated\b"),
    )
)
# Fields whose value is a name (of software, maker, source), checked against the list.
_NAME_KEYS: Final = frozenset({"Software", "Source", "Title", "Make", "Model", "Artist"})
# Fields that may hold a block of generation parameters.
_TEXT_KEYS: Final = frozenset(
    {"parameters", "UserComment", "ImageDescription", "comment", "Description", "XPComment"}
)
# Human words for locations.
_WHERE: Final = {
    "png:text": "PNG text chunk",
    "info:text": "text metadata",
    "jpeg:comment": "JPEG comment",
    "exif:ifd0": "EXIF",
    "exif:exif": "EXIF",
    "pixels:alpha-lsb": "lowest bits of the alpha channel",
    "pixels:rgb-lsb": "lowest bits of the colour channels",
}

T = TypeVar("T")


# -- value types ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Findings(Generic[T]):
    """What one check found, and what it had to skip.

    Attributes
    ----------
    marks : tuple
        The marks found (empty: none found).
    notes : tuple of str
        Damaged or hostile data that was skipped, in plain words.
    """

    marks: tuple[T, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GeneratorMark:
    """Generation metadata written by a known generator.

    Attributes
    ----------
    generator : str
        The generator, e.g. ``"ComfyUI"``, ``"NovelAI"``.
    location : str
        Where: ``"png:text"``, ``"jpeg:comment"``, ``"exif:ifd0"``,
        ``"exif:exif"``, ``"info:text"``, ``"pixels:alpha-lsb"``,
        ``"pixels:rgb-lsb"``.
    key : str
        The chunk key, EXIF tag name or stealth magic, e.g. ``"parameters"``.
    excerpt : str or None
        The start of what it says (prompt, parameters), control characters
        removed, at most :data:`EXCERPT_CHARS` characters.
    truncated : bool
        Whether the excerpt was cut.
    well_formed : bool
        Whether the content has the structure that generator writes (JSON with
        nodes, ``Steps: N, Sampler: ...``); a key alone is weaker evidence.
    note : str or None
        A problem met while reading it (damaged payload, size cap).
    """

    generator: str
    location: str
    key: str
    excerpt: str | None = None
    truncated: bool = False
    well_formed: bool = True
    note: str | None = None

    def describe(self) -> str:
        """One line in plain words."""
        where = _WHERE.get(self.location, self.location)
        return f"{self.generator}: generation metadata in {where} {self.key!r}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (see ``docs/marks.md``)."""
        return {
            "generator": self.generator,
            "location": self.location,
            "key": self.key,
            "excerpt": self.excerpt,
            "truncated": self.truncated,
            "well_formed": self.well_formed,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class SourceTypeMark:
    """An IPTC ``DigitalSourceType`` declared in the file's XMP.

    Attributes
    ----------
    value : str
        As written (normally a URI of the IPTC vocabulary).
    term : str
        Its last path segment, e.g. ``"trainedAlgorithmicMedia"``.
    ai : bool
        Whether the term is one of :data:`AI_SOURCE_TYPES` (and the value is
        in the IPTC vocabulary or a bare term).
    location : str
        The XMP packet it came from, e.g. ``"jpeg:APP1"``, ``"png:XML:com.adobe.xmp"``.
    """

    value: str
    term: str
    ai: bool
    location: str

    def describe(self) -> str:
        """One line in plain words."""
        return f"IPTC digital source type {self.term!r} in the XMP ({self.location})"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (see ``docs/marks.md``)."""
        return {"value": self.value, "term": self.term, "ai": self.ai, "location": self.location}


class C2paState(enum.StrEnum):
    """Content Credentials of the file (see :class:`takeback.provenance.c2pa.Verdict`)."""

    ABSENT = "absent"
    VALID = "valid"
    TRUSTED = "trusted"
    INVALID = "invalid"


_STATE_OF: Final = {
    Verdict.NONE: C2paState.ABSENT,
    Verdict.VALID: C2paState.VALID,
    Verdict.TRUSTED: C2paState.TRUSTED,
    Verdict.INVALID: C2paState.INVALID,
}


@dataclass(frozen=True, slots=True)
class C2paMark:
    """What the file's Content Credentials say about how it was made.

    Attributes
    ----------
    state : C2paState
        ``absent``, ``valid`` (signature good, signer not checked against a
        trust anchor), ``trusted`` or ``invalid`` (a manifest that fails; the
        file was changed after signing, or the manifest was forged).
    manifest : str or None
        ``"embedded"`` or ``"sidecar"``.
    claim_generator : str or None
        The software that wrote the manifest.
    signer : str or None
        Common name of the signing certificate.
    signed_at : str or None
    actions : tuple of dict
        ``{"action", "digitalSourceType", "softwareAgent"}`` of each action
        (absent keys omitted).
    source_types : tuple of str
        The digital source type URIs of the actions, in order, without repeats.
    failures : tuple of str
        C2PA status codes of an invalid manifest.
    note : str or None
    """

    state: C2paState = C2paState.ABSENT
    manifest: str | None = None
    claim_generator: str | None = None
    signer: str | None = None
    signed_at: str | None = None
    actions: tuple[dict[str, str], ...] = ()
    source_types: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    note: str | None = None

    @property
    def found(self) -> bool:
        """Whether there is a manifest at all (valid or not)."""
        return self.state is not C2paState.ABSENT

    @property
    def ai(self) -> bool:
        """Whether an action declares an AI digital source type."""
        return any(_term(t) in AI_SOURCE_TYPES for t in self.source_types)

    def describe(self) -> str:
        """One line in plain words."""
        terms = ", ".join(_term(t) for t in self.source_types) or "no digital source type"
        who = f", claim generator {self.claim_generator}" if self.claim_generator else ""
        return f"Content Credentials ({self.state.value}): {terms}{who}"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (see ``docs/marks.md``)."""
        return {
            "state": self.state.value,
            "manifest": self.manifest,
            "claim_generator": self.claim_generator,
            "signer": self.signer,
            "signed_at": self.signed_at,
            "actions": [dict(a) for a in self.actions],
            "source_types": list(self.source_types),
            "ai": self.ai,
            "failures": list(self.failures),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Marks:
    """Every AI-generation mark found in one file. ``to_dict()`` is its JSON form.

    Attributes
    ----------
    name : str
        File name, as given (used in messages; never a path of this machine).
    sha256 : str
        SHA-256 of the bytes examined.
    format : str or None
        Pillow's format name (``"PNG"``, ``"JPEG"``, ...).
    width, height : int
        Size of the picture after EXIF orientation.
    generator : tuple of GeneratorMark
    source_types : tuple of SourceTypeMark
    c2pa : C2paMark
    watermarks : WatermarkScan
    notes : tuple of str
        Damaged or hostile metadata that was skipped.
    """

    name: str
    sha256: str
    format: str | None
    width: int
    height: int
    generator: tuple[GeneratorMark, ...] = ()
    source_types: tuple[SourceTypeMark, ...] = ()
    c2pa: C2paMark = field(default_factory=C2paMark)
    watermarks: WatermarkScan = field(default_factory=lambda: WatermarkScan(False, 0, 0))
    notes: tuple[str, ...] = ()

    @property
    def found(self) -> bool:
        """Whether any mark is present (of any kind, AI or not)."""
        return bool(self.generator or self.source_types or self.c2pa.found or self.watermarks.found)

    @property
    def ai_indicated(self) -> bool:
        """Whether some mark says a generator made or changed the picture."""
        return bool(
            self.generator
            or any(m.ai for m in self.source_types)
            or self.c2pa.ai
            or self.watermarks.found
        )

    def summary(self) -> list[str]:
        """The marks in plain words, one line each (a fixed line when none is found)."""
        lines = [m.describe() for m in self.generator]
        lines += [m.describe() for m in self.source_types]
        if self.c2pa.found:
            lines.append(self.c2pa.describe())
        for match in self.watermarks.found:
            lines.append(
                f"invisible watermark of {match.payload.generator}: "
                f"{match.agreement}/{match.payload.length} bits agree "
                f"({match.level.value.replace('_', ' ')})"
            )
        if not lines:
            lines.append(
                "no AI-generation mark found; this proves nothing: platforms strip "
                "metadata and resizing destroys the watermark"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON object (schema :data:`MARKS_SCHEMA`, see ``docs/marks.md``)."""
        return {
            "schema": MARKS_SCHEMA,
            "name": self.name,
            "sha256": self.sha256,
            "format": self.format,
            "size": {"width": self.width, "height": self.height},
            "found": self.found,
            "ai_indicated": self.ai_indicated,
            "summary": self.summary(),
            "generator_metadata": [m.to_dict() for m in self.generator],
            "digital_source_type": [m.to_dict() for m in self.source_types],
            "c2pa": self.c2pa.to_dict(),
            "watermarks": self.watermarks.to_dict(),
            "notes": list(self.notes),
        }


# -- small helpers ----------------------------------------------------------------


def _term(value: str) -> str:
    return value.strip().rstrip("/").rsplit("/", 1)[-1]


def _excerpt(text: str) -> tuple[str, bool]:
    """Control characters out, whitespace collapsed, cut at :data:`EXCERPT_CHARS`."""
    clean = _SPACES.sub(" ", _CONTROL.sub(" ", text[: EXCERPT_CHARS * 8])).strip()
    if len(clean) <= EXCERPT_CHARS and len(text) <= EXCERPT_CHARS * 8:
        return clean, False
    return clean[: EXCERPT_CHARS - 1].rstrip() + "\u2026", True


def _load_json(text: str) -> Any:
    """Parse JSON text, or None when it is not JSON (or too large, or too deep)."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[" or len(stripped) > MAX_JSON_CHARS:
        return None
    try:
        return json.loads(stripped)
    except (ValueError, RecursionError):
        return None


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip("\x00")
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace").strip("\x00")
    return None


def decode_user_comment(raw: bytes | str) -> str:
    """Decode an EXIF UserComment (8-byte character-code prefix, then the text).

    ``UNICODE`` text is UTF-16; piexif, which AUTOMATIC1111 uses, writes it
    big-endian, some writers little-endian: the byte order is chosen by where
    the zero bytes of ASCII characters fall.

    Examples
    --------
    >>> decode_user_comment(b"UNICODE\\x00" + "Steps: 20".encode("utf-16-be"))
    'Steps: 20'
    >>> decode_user_comment(b"ASCII\\x00\\x00\\x00hello")
    'hello'
    """
    if isinstance(raw, str):
        return raw.strip("\x00")
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\x00":
        body = body[: len(body) // 2 * 2]
        little = body[1::2].count(0) > body[0::2].count(0)
        return body.decode("utf-16-le" if little else "utf-16-be", errors="replace").strip("\x00")
    if prefix == b"JIS\x00\x00\x00\x00\x00":
        return body.decode("shift_jis", errors="replace").strip("\x00")
    if prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8):
        return body.decode("utf-8", errors="replace").strip("\x00")
    return raw.decode("utf-8", errors="replace").strip("\x00")


# -- Pillow at the boundary -------------------------------------------------------


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Pillow's warnings about damaged metadata are findings here, not errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


# What Pillow raises on damaged data (beyond its own UnidentifiedImageError).
_PILLOW_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    UnicodeDecodeError,
    zlib.error,
)


@contextlib.contextmanager
def _pillow(data: bytes, name: str) -> Iterator[Image.Image]:
    """Open bytes that :func:`takeback.imageio.open_image` already accepted."""
    try:
        with _quiet():
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise NotAnImageError(f"{name} is not an image TakeBack can read", path=name) from exc
    except (*_PILLOW_ERRORS, Image.DecompressionBombError) as exc:
        raise CorruptImageError(
            f"{name} is damaged and its metadata cannot be read ({exc})", path=name
        ) from exc
    with img, _quiet():
        yield img


@contextlib.contextmanager
def _ensure_image(
    source: Image.Image | bytes, name: str, limits: ImageLimits | None
) -> Iterator[Image.Image]:
    if isinstance(source, Image.Image):
        with _quiet():
            yield source
        return
    open_image(source, name=name, limits=limits)  # the one gate: size limits, decodability
    with _pillow(source, name) as img:
        yield img


# -- generator metadata -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    location: str
    key: str
    text: str


def _text_fields(img: Image.Image, notes: list[str]) -> list[_Field]:
    fields: list[_Field] = []
    if img.format == "PNG":
        try:
            chunks: Mapping[str, Any] = getattr(img, "text", {})
        except _PILLOW_ERRORS as exc:
            notes.append(f"the PNG text chunks could not all be read ({exc}); some were skipped")
            chunks = {str(k): v for k, v in img.info.items() if isinstance(v, str)}
        for chunk_key, value in chunks.items():
            text = _as_text(value)
            if text is not None and chunk_key != "XML:com.adobe.xmp":
                fields.append(_Field("png:text", str(chunk_key), text))
        return fields
    for key, value in img.info.items():
        if key == "comment":
            text = _as_text(value)
            if text:
                where = "jpeg:comment" if img.format == "JPEG" else "info:text"
                fields.append(_Field(where, "comment", text))
        elif isinstance(value, str) and key not in ("xmp",):
            fields.append(_Field("info:text", str(key), value))
    return fields


def _exif_fields(img: Image.Image, notes: list[str]) -> list[_Field]:
    fields: list[_Field] = []
    try:
        exif = img.getexif()
        ifds: list[tuple[str, Mapping[int, Any]]] = [("exif:ifd0", exif)]
        if _EXIF_IFD in exif:
            ifds.append(("exif:exif", exif.get_ifd(_EXIF_IFD)))
        for location, ifd in ifds:
            for tag, tag_name in _EXIF_TEXT_TAGS.items():
                if tag not in ifd:
                    continue
                value = ifd[tag]
                if tag == 0x9286 and isinstance(value, bytes | str):
                    text: str | None = decode_user_comment(value)
                elif tag == 0x9C9C and isinstance(value, bytes | tuple):
                    raw = (
                        bytes(value) if isinstance(value, bytes) else bytes(v & 0xFF for v in value)
                    )
                    text = raw[: len(raw) // 2 * 2].decode("utf-16-le", errors="replace")
                    text = text.strip("\x00")
                else:
                    text = _as_text(value)
                if text:
                    fields.append(_Field(location, tag_name, text))
    except _PILLOW_ERRORS as exc:
        notes.append(f"the EXIF data is damaged and was skipped ({exc})")
    return fields


def _known_generator(text: str) -> str | None:
    for name, pattern in _KNOWN_GENERATORS:
        if pattern.search(text[:1000]):
            return name
    return None


def _comfy_summary(graph: Any) -> tuple[str, bool] | None:
    """Summarize a ComfyUI API prompt (dict of nodes) or UI workflow (``{"nodes": [...]}``)."""
    if isinstance(graph, dict) and isinstance(graph.get("nodes"), list):
        kinds = [
            str(n.get("type")) for n in graph["nodes"] if isinstance(n, dict) and n.get("type")
        ]
        texts: list[str] = []
    elif isinstance(graph, dict) and graph:
        nodes = [n for n in graph.values() if isinstance(n, dict) and "class_type" in n]
        if not nodes:
            return None
        kinds = [str(n["class_type"]) for n in nodes]
        texts = [
            n["inputs"]["text"]
            for n in nodes
            if "CLIPTextEncode" in str(n["class_type"])
            and isinstance(n.get("inputs"), dict)
            and isinstance(n["inputs"].get("text"), str)
        ]
    else:
        return None
    unique = list(dict.fromkeys(kinds))
    summary = f"{len(kinds)} nodes ({', '.join(unique[:8])}{', ...' if len(unique) > 8 else ''})"
    if texts:
        summary += f"; text: {texts[0]}"
    return _excerpt(summary)


def _json_summary(obj: Any) -> tuple[str, bool]:
    """A readable excerpt of a JSON parameter block: the prompt first, then settings."""
    if isinstance(obj, dict):
        parts = []
        for key in ("prompt", "positive_prompt", "Description", "full_prompt"):
            value = obj.get(key)
            if isinstance(value, str) and value.strip():
                parts.append(value.strip())
                break
        for key in ("model", "base_model", "sampler", "steps", "scale", "cfg_scale", "seed"):
            value = obj.get(key)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                parts.append(f"{key}: {value}")
        if parts:
            return _excerpt("; ".join(parts))
    return _excerpt(json.dumps(obj, ensure_ascii=False, separators=(",", ":"))[: EXCERPT_CHARS * 8])


def _mark(
    generator: str, fld: _Field, excerpt: tuple[str, bool] | None, *, well_formed: bool = True
) -> GeneratorMark:
    text, cut = excerpt if excerpt is not None else (None, False)
    return GeneratorMark(
        generator=generator,
        location=fld.location,
        key=fld.key,
        excerpt=text,
        truncated=cut,
        well_formed=well_formed,
    )


def _classify(fld: _Field, context: str) -> GeneratorMark | None:
    """The generator mark a metadata field makes, if any. ``context`` is the
    lower-cased text of every name field (Software, Make, Source, ...)."""
    key, text = fld.key, fld.text
    png_key = fld.location in ("png:text", "info:text")
    fooocus = "fooocus" in context
    if png_key and key in ("invokeai_metadata", "invokeai_graph", "invokeai_workflow"):
        obj = _load_json(text)
        return _mark(
            "InvokeAI",
            fld,
            _json_summary(obj) if obj is not None else _excerpt(text),
            well_formed=isinstance(obj, dict),
        )
    if png_key and key == "sd-metadata":
        obj = _load_json(text)
        summary = _json_summary(obj.get("image", obj)) if isinstance(obj, dict) else None
        return _mark("InvokeAI (2.x)", fld, summary or _excerpt(text), well_formed=obj is not None)
    if png_key and key == "Dream":
        return _mark("InvokeAI (1.x)", fld, _excerpt(text))
    if png_key and key == "fooocus_scheme":
        return _mark("Fooocus", fld, _excerpt(text), well_formed=text in ("fooocus", "a1111"))
    if png_key and key in ("prompt", "workflow"):
        summary = _comfy_summary(_load_json(text))
        if summary is not None:
            return _mark("ComfyUI", fld, summary)
        return _mark(_UNIDENTIFIED, fld, _excerpt(text), well_formed=False)
    if key in ("Make", "Model") and (m := _COMFY_WORKFLOW_PREFIX.match(text)):
        summary = _comfy_summary(_load_json(text[m.end() :]))
        return _mark("ComfyUI", fld, summary or _excerpt(text), well_formed=summary is not None)
    if png_key and key == "Comment":
        obj = _load_json(text)
        if isinstance(obj, dict) and "prompt" in obj:
            nai = "novelai" in context or "uc" in obj or "n_samples" in obj
            return _mark("NovelAI" if nai else _UNIDENTIFIED, fld, _json_summary(obj))
    if key in _TEXT_KEYS:
        if _A1111_FORM.search(text):
            return _mark("Fooocus" if fooocus else _A1111, fld, _excerpt(text))
        obj = _load_json(text)
        if key == "parameters" and isinstance(obj, dict):
            return _mark(
                "Fooocus" if fooocus or "full_prompt" in obj else _UNIDENTIFIED,
                fld,
                _json_summary(obj),
            )
        if key == "parameters":
            return _mark(_A1111, fld, _excerpt(text), well_formed=False)
        if key in ("Description", "ImageDescription") and (
            "novelai" in context or "black forest labs" in context or "txt2img;flux" in context
        ):
            # NovelAI and FLUX write the prompt here; the name field says who.
            who = "NovelAI" if "novelai" in context else "FLUX.1 (Black Forest Labs)"
            return _mark(who, fld, _excerpt(text))
        # Free text written by people (captions, comments) may name a generator in
        # passing; only the EXIF ImageDescription is read for a name, as tools fill it.
        name = _known_generator(text) if key == "ImageDescription" else None
        return _mark(name, fld, _excerpt(text)) if name is not None else None
    if key in _NAME_KEYS or (key == "MakerNote" and fooocus):
        name = _known_generator(text)
        if key == "MakerNote":
            name = "Fooocus" if text.strip() in ("fooocus", "a1111") else None
        if name is not None:
            return _mark(name, fld, _excerpt(text))
    return None


def _inflate(payload: bytes) -> tuple[bytes, str | None]:
    """Gunzip at most :data:`MAX_INFLATED_BYTES` (decompression bombs)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(payload, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        return b"", f"the compressed payload is damaged ({exc})"
    if inflater.unconsumed_tail:
        return out, (
            f"the payload inflates to more than {MAX_INFLATED_BYTES:,} bytes; "
            "only the start was read"
        )
    if not inflater.eof:
        return out, "the compressed payload is cut short"
    return out, None


def _lsb_bits(img: Image.Image, channel: str, start: int, count: int) -> np.ndarray | None:
    """Bits ``start .. start + count`` of the stealth bit stream: the lowest bit of each
    pixel's alpha (or of its R, G, B), pixels taken column by column, top to bottom,
    as the NovelAI and sd-webui-stealth-pnginfo references read them."""
    width, height = img.size
    per_pixel = 1 if channel == "alpha" else 3
    if count <= 0 or start + count > width * height * per_pixel:
        return None
    first_col = start // per_pixel // height
    last_col = (start + count - 1) // per_pixel // height
    crop = img.crop((first_col, 0, last_col + 1, height))
    if channel == "alpha":
        values = np.asarray(crop.convert("RGBA"))[:, :, 3].T.ravel()
    else:
        values = np.asarray(crop.convert("RGB")).transpose(1, 0, 2).ravel()
    offset = start - first_col * height * per_pixel
    return np.asarray(values[offset : offset + count] & 1, dtype=np.uint8)


def stealth_metadata(
    image: Image.Image | bytes, *, name: str = "<image>"
) -> Findings[GeneratorMark]:
    """Read a "stealth" payload hidden in the lowest bits of the pixels.

    NovelAI writes its metadata (gzip-compressed JSON) into the lowest bit of
    the alpha channel after the magic ``stealth_pngcomp``; the
    sd-webui-stealth-pnginfo extension writes AUTOMATIC1111 parameters after
    ``stealth_pnginfo`` (plain) or ``stealth_pngcomp`` (gzip) in the alpha
    channel, or ``stealth_rgbinfo`` / ``stealth_rgbcomp`` in the R, G, B low
    bits. Bits run column by column (x outer, y inner), most significant bit
    first: 15 bytes of magic, a 32-bit big-endian length in bits, the payload.

    Parameters
    ----------
    image : PIL.Image.Image or bytes
        An open image, or the encoded file (checked by :mod:`takeback.imageio`).
    name : str
        Used in error messages when ``image`` is bytes.

    Returns
    -------
    Findings of GeneratorMark
        One mark when a magic is present, even when the payload after it is
        damaged (the magic alone is 120 bits that chance does not produce).
    """
    with _ensure_image(image, name, None) as img:
        try:
            return Findings(_stealth(img))
        except _PILLOW_ERRORS as exc:
            raise CorruptImageError(
                f"{name}: the pixels cannot be read ({exc})", path=name
            ) from exc


def _stealth(img: Image.Image) -> tuple[GeneratorMark, ...]:
    channels = []
    if "A" in img.getbands():
        channels.append("alpha")
    if img.mode in ("RGB", "RGBA"):
        channels.append("rgb")
    for channel in channels:
        head = _lsb_bits(img, channel, 0, _MAGIC_BITS)
        if head is None:
            continue
        magic = np.packbits(head).tobytes()
        if magic not in _STEALTH or _STEALTH[magic][0] != channel:
            continue
        location = f"pixels:{channel}-lsb"
        key = magic.decode("ascii")
        length_bits = _lsb_bits(img, channel, _MAGIC_BITS, 32)
        length = (
            int.from_bytes(np.packbits(length_bits).tobytes(), "big")
            if length_bits is not None
            else 0
        )
        payload_bits = _lsb_bits(img, channel, _HEADER_BITS, length)
        if payload_bits is None:
            problem = (
                "the payload is empty"
                if length == 0
                else f"the payload declares {length:,} bits, more than the image holds"
            )
            return (
                GeneratorMark(
                    generator="NovelAI or sd-webui-stealth-pnginfo",
                    location=location,
                    key=key,
                    well_formed=False,
                    note=problem,
                ),
            )
        payload = np.packbits(payload_bits[: length // 8 * 8]).tobytes()
        note = None
        if _STEALTH[magic][1]:
            payload, note = _inflate(payload)
        text = payload.decode("utf-8", errors="replace")
        return (_stealth_mark(text, location, key, note),)
    return ()


def _stealth_mark(text: str, location: str, key: str, note: str | None) -> GeneratorMark:
    obj = _load_json(text)
    if isinstance(obj, dict):
        comment = obj.get("Comment")
        inner = _load_json(comment) if isinstance(comment, str) else comment
        nai = "novelai" in str(obj.get("Software", "")).lower()
        summary = _json_summary(inner if isinstance(inner, dict) else obj)
        generator = (
            "NovelAI" if nai else (_known_generator(str(obj.get("Software", ""))) or _UNIDENTIFIED)
        )
        return GeneratorMark(generator, location, key, summary[0], summary[1], True, note)
    excerpt, cut = _excerpt(text) if text else (None, False)
    if _A1111_FORM.search(text):
        generator = _A1111 + " (stealth-pnginfo extension)"
        return GeneratorMark(generator, location, key, excerpt, cut, True, note)
    return GeneratorMark(
        "NovelAI or sd-webui-stealth-pnginfo",
        location,
        key,
        excerpt,
        cut,
        well_formed=False,
        note=note or "the payload has no known structure",
    )


def generator_metadata(
    image: Image.Image | bytes, *, name: str = "<image>", limits: ImageLimits | None = None
) -> Findings[GeneratorMark]:
    """Find generation metadata written by known generators.

    Reads PNG text chunks (``img.text``, including chunks after the image
    data), the JPEG comment, EXIF (IFD0 and the Exif IFD: Software, Make,
    Model, ImageDescription, Artist, UserComment, MakerNote, XPComment) and the
    stealth payload of the pixels (:func:`stealth_metadata`, lossless formats
    only).

    Parameters
    ----------
    image : PIL.Image.Image or bytes
        An open image, or the encoded file (checked by :mod:`takeback.imageio`).
    name : str
        Used in error messages when ``image`` is bytes.
    limits : ImageLimits, optional

    Returns
    -------
    Findings of GeneratorMark
        One mark per field that names or carries a generator's output.

    Raises
    ------
    NotAnImageError, CorruptImageError, ImageTooLargeError, ImageTooSmallError
        ``image`` is bytes that are not a usable image.
    """
    with _ensure_image(image, name, limits) as img:
        notes: list[str] = []
        fields = _text_fields(img, notes) + _exif_fields(img, notes)
        # Who wrote the file, as the name fields and chunk keys (fooocus_scheme) say.
        names = [f.text[:500] for f in fields if f.key in _NAME_KEYS]
        context = " ".join(names + [f.key for f in fields]).lower()
        marks = [m for f in fields if (m := _classify(f, context)) is not None]
        if img.format in _LOSSLESS:
            try:
                marks += _stealth(img)
            except _PILLOW_ERRORS as exc:
                notes.append(f"the pixels' low bits could not be read ({exc})")
        return Findings(tuple(marks), tuple(notes))


# -- XMP: IPTC digital source type ------------------------------------------------


class _Refused(Exception):
    """Raised from expat handlers to stop on a construct we do not accept."""


def xmp_packets(image: Image.Image) -> list[tuple[str, bytes]]:
    """The XMP packets of an open image, each with where it was found.

    JPEG APP1 segments (``http://ns.adobe.com/xap/1.0/``), PNG iTXt
    ``XML:com.adobe.xmp``, Pillow's ``info["xmp"]`` (WebP, TIFF, ...) and TIFF
    tag 700; identical packets are listed once.
    """
    found: list[tuple[str, bytes]] = []
    fmt = (image.format or "image").lower()
    for marker, content in getattr(image, "applist", []):
        if marker == "APP1" and content.startswith(_XMP_APP1):
            found.append(("jpeg:APP1", content[len(_XMP_APP1) :]))
    for key in ("XML:com.adobe.xmp", "xmp"):
        value = image.info.get(key)
        if isinstance(value, str):
            value = value.encode("utf-8")
        if isinstance(value, bytes) and value:
            found.append((f"{fmt}:{key}", value))
    tags = getattr(image, "tag_v2", None)
    if tags is not None:
        value = tags.get(700)
        if isinstance(value, bytes) and value:
            found.append(("tiff:700", value))
    unique: dict[bytes, str] = {}
    for location, packet in found:
        unique.setdefault(packet.strip(b"\x00 \t\r\n"), location)
    return [(location, packet) for packet, location in unique.items() if packet]


def _refuse(what: str) -> Any:
    def handler(*_args: Any) -> Any:
        raise _Refused(f"it declares {what}, which XMP never needs")

    return handler


def digital_source_type(xmp: bytes | str, *, location: str = "xmp") -> Findings[SourceTypeMark]:
    """Read ``Iptc4xmpExt:DigitalSourceType`` from an XMP packet.

    The packet is parsed as namespaced XML with DTDs, entity declarations and
    external entities refused (XMP is hostile input: "billion laughs" and
    external-entity attacks come in DTDs). Only the property itself counts, as
    an attribute or a child element of an ``rdf:Description`` directly under
    ``rdf:RDF`` (text or ``rdf:resource``): the same words in a comment, in
    another property or under another namespace are not reported.

    Parameters
    ----------
    xmp : bytes or str
        One XMP packet.
    location : str
        Where it came from, copied into each mark.

    Returns
    -------
    Findings of SourceTypeMark
        Values are reported as written, whatever the vocabulary term; a packet
        that cannot be parsed gives a note and no mark.

    Examples
    --------
    >>> packet = (
    ...     '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    ...     'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    ...     '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    ...     'Iptc4xmpExt:DigitalSourceType='
    ...     '"http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>'
    ...     "</rdf:RDF></x:xmpmeta>"
    ... )
    >>> [(m.term, m.ai) for m in digital_source_type(packet).marks]
    [('trainedAlgorithmicMedia', True)]
    """
    data = xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)
    data = data.strip(b"\x00 \t\r\n")
    if len(data) > MAX_XMP_BYTES:
        return Findings(
            notes=(
                f"the XMP in {location} is {len(data):,} bytes, over the "
                f"{MAX_XMP_BYTES:,}-byte limit; it was not read",
            )
        )
    values = _xmp_source_types(data)
    if isinstance(values, str):
        return Findings(notes=(f"the XMP in {location} was not read: {values}",))
    marks = []
    for value in dict.fromkeys(values):
        term = _term(value)
        in_vocabulary = value.startswith(_IPTC_VOCABULARY) or "/" not in value
        marks.append(
            SourceTypeMark(value, term, in_vocabulary and term in AI_SOURCE_TYPES, location)
        )
    return Findings(tuple(marks))


def _xmp_source_types(data: bytes) -> list[str] | str:
    """The DigitalSourceType values of a packet, or why it could not be parsed."""
    sep = " "
    rdf, description = f"{_NS_RDF}{sep}RDF", f"{_NS_RDF}{sep}Description"
    resource, li = f"{_NS_RDF}{sep}resource", f"{_NS_RDF}{sep}li"
    dst = f"{_NS_IPTC_EXT}{sep}DigitalSourceType"
    parser = expat.ParserCreate(namespace_separator=sep)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("a DTD")
    parser.EntityDeclHandler = _refuse("an entity")
    parser.UnparsedEntityDeclHandler = _refuse("an entity")
    parser.ExternalEntityRefHandler = _refuse("an external entity")
    stack: list[str] = []
    values: list[str] = []
    capture: dict[str, Any] | None = None

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal capture
        parent = stack[-1] if stack else None
        grandparent = stack[-2] if len(stack) > 1 else None
        if tag == description and parent == rdf and attrs.get(dst):
            values.append(attrs[dst].strip())
        if capture is None and tag == dst and parent == description and grandparent == rdf:
            capture = {
                "depth": len(stack),
                "text": [],
                "items": [],
                "resource": attrs.get(resource),
            }
        elif capture is not None and tag == li:
            capture["items"].append([])
        stack.append(tag)

    def text(chars: str) -> None:
        if capture is not None and sum(map(len, capture["text"])) < 4096:
            capture["text"].append(chars)
            if capture["items"]:
                capture["items"][-1].append(chars)

    def end(tag: str) -> None:
        nonlocal capture
        stack.pop()
        if capture is not None and len(stack) == capture["depth"]:
            found = [capture["resource"]] if capture["resource"] else []
            found += ["".join(item) for item in capture["items"]]
            if not found:
                found = ["".join(capture["text"])]
            values.extend(v.strip() for v in found if v and v.strip())
            capture = None

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        return str(exc)
    except expat.ExpatError as exc:
        return f"it is not well-formed XML ({expat.ErrorString(exc.code)}, line {exc.lineno})"
    except (ValueError, RecursionError, MemoryError) as exc:
        return f"it could not be parsed ({type(exc).__name__})"
    return values


# -- C2PA -------------------------------------------------------------------------


def _agent(value: Any) -> str | None:
    if isinstance(value, dict):
        name = str(value.get("name", "")).strip()
        version = str(value.get("version", "")).strip()
        return f"{name}/{version}" if name and version else name or None
    return str(value) if value else None


def _from_verification(v: Verification) -> C2paMark:
    actions: list[dict[str, str]] = []
    for action in v.actions:
        item = {"action": str(action.get("action", ""))}
        if action.get("digitalSourceType"):
            item["digitalSourceType"] = str(action["digitalSourceType"])
        if agent := _agent(action.get("softwareAgent")):
            item["softwareAgent"] = agent
        actions.append(item)
    source_types = tuple(
        dict.fromkeys(a["digitalSourceType"] for a in actions if "digitalSourceType" in a)
    )
    return C2paMark(
        state=_STATE_OF[v.status],
        manifest=v.manifest,
        claim_generator=v.claim_generator,
        signer=(v.signer or {}).get("common_name"),
        signed_at=v.signed_at,
        actions=tuple(actions),
        source_types=source_types,
        failures=tuple(f["code"] for f in v.failures),
    )


def c2pa_mark(
    data: bytes,
    *,
    name: str = "<image>",
    sidecar: bytes | None = None,
    trust_anchors: str | bytes | None = None,
    limits: ImageLimits | None = None,
) -> C2paMark:
    """Read the Content Credentials of a file with :func:`~takeback.provenance.c2pa.verify_photo`.

    Parameters
    ----------
    data : bytes
        The file.
    name : str
        Used in messages.
    sidecar : bytes, optional
        A sidecar manifest (``photo.jpg.c2pa``) for the file.
    trust_anchors : path or bytes, optional
        PEM certificates of trusted CAs; without them the best state is ``valid``.
    limits : ImageLimits, optional

    Returns
    -------
    C2paMark
        ``absent`` when the file has no manifest and no sidecar is given (a file
        without a JUMBF box is not even handed to the C2PA library), or when its
        format cannot carry one.

    Raises
    ------
    TrustAnchorError, FileAccessError
        The trust anchors cannot be used.
    """
    if sidecar is None and b"jumb" not in data:
        return C2paMark()
    try:
        with tempfile.TemporaryDirectory(prefix="takeback-marks-") as tmp:
            photo = Path(tmp) / "photo"
            photo.write_bytes(data)
            manifest = None
            if sidecar is not None:
                manifest = Path(tmp) / "photo.c2pa"
                manifest.write_bytes(sidecar)
            try:
                verification = verify_photo(
                    photo, manifest=manifest, trust_anchors=trust_anchors, limits=limits
                )
            except UnsupportedMediaError:
                return C2paMark(note=f"{name}: this file format cannot carry Content Credentials")
    except OSError as exc:
        raise FileAccessError(
            f"cannot write a temporary copy of {name} to check its Content Credentials "
            f"({exc.strerror}); check TMPDIR",
            path=name,
        ) from exc
    return _from_verification(verification)


# -- everything at once -----------------------------------------------------------


def read_marks(
    data: bytes,
    *,
    name: str,
    sidecar: bytes | None = None,
    trust_anchors: str | bytes | None = None,
    limits: ImageLimits | None = None,
) -> Marks:
    """Read every AI-generation mark a file carries.

    Parameters
    ----------
    data : bytes
        The encoded file, exactly as found.
    name : str
        The file's name, for messages and the report (pass a name, not a path).
    sidecar : bytes, optional
        A C2PA sidecar manifest for the file.
    trust_anchors : path or bytes, optional
        PEM certificates of the CAs to trust for Content Credentials.
    limits : ImageLimits, optional
        Size limits (:mod:`takeback.imageio`).

    Returns
    -------
    Marks
        ``found`` is False when no mark is present; damaged metadata is listed
        in ``notes``.

    Raises
    ------
    NotAnImageError, CorruptImageError, ImageTooLargeError, ImageTooSmallError
        The file is not a usable image.
    TrustAnchorError, FileAccessError
        The trust anchors cannot be used.
    """
    rgb = open_image(data, name=name, limits=limits)
    notes: list[str] = []
    with _pillow(data, name) as img:
        generator = generator_metadata(img, name=name)
        notes += generator.notes
        try:
            packets = xmp_packets(img)
        except _PILLOW_ERRORS as exc:
            packets = []
            notes.append(f"the XMP could not be extracted ({exc})")
        fmt = img.format
    source_types: list[SourceTypeMark] = []
    for location, packet in packets:
        found = digital_source_type(packet, location=location)
        source_types += found.marks
        notes += found.notes
    credentials = c2pa_mark(
        data, name=name, sidecar=sidecar, trust_anchors=trust_anchors, limits=limits
    )
    if credentials.note:
        notes.append(credentials.note)
    watermarks = decode_watermarks(np.asarray(rgb))
    return Marks(
        name=os.path.basename(name) or name,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        width=rgb.width,
        height=rgb.height,
        generator=generator.marks,
        source_types=tuple(source_types),
        c2pa=credentials,
        watermarks=watermarks,
        notes=tuple(dict.fromkeys(notes)),
    )
