"""AI-generation marks: generator metadata, XMP, Content Credentials, invisible watermarks.

Every fixture is a benign real photo from scikit-image, or a picture made in
code, with the mark written the way the generator's own code writes it. The
invisible-watermark fixtures come from the reference encoder itself
(``invisible-watermark`` 0.2.0, installed without its torch dependency).
"""

from __future__ import annotations

import doctest
import gzip
import importlib
import importlib.util
import io
import json
import shutil
import struct
import sys
import time
import types
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from takeback.errors import CorruptImageError, NotAnImageError, TakeBackError
from takeback.examine import marks as marks_module
from takeback.examine import watermark as watermark_module
from takeback.examine.marks import (
    AI_SOURCE_TYPES,
    EXCERPT_CHARS,
    MARKS_SCHEMA,
    MAX_INFLATED_BYTES,
    C2paState,
    Marks,
    c2pa_mark,
    decode_user_comment,
    digital_source_type,
    generator_metadata,
    read_marks,
    stealth_metadata,
)
from takeback.examine.watermark import (
    P_LIKELY,
    P_VERY_LIKELY,
    PAYLOADS,
    Lattice,
    WatermarkLevel,
    binomial_tail,
    block_scores,
    decode_bits,
    decode_watermarks,
    threshold_for,
)
from takeback.provenance.keys import KeyFiles, LocalSigner, init_keys
from takeback.samples import SAMPLE_PHOTOS, sample_photo

from .conftest import UNRELATED_PHOTOS

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
PROMPT = "a photo of an astronaut riding a horse on the moon, film grain"
A1111 = (
    f"{PROMPT}\nNegative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, "
    "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.6.0"
)
PAYLOAD = {p.name: p for p in PAYLOADS}


# -- fixtures and helpers ----------------------------------------------------------


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(Image.open(sample_photo("astronaut.png")).convert("RGB"))


def png(arr: np.ndarray, info: PngImagePlugin.PngInfo | None = None, **kw: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "PNG", pnginfo=info, **kw)
    return out.getvalue()


def jpeg(arr: np.ndarray, *, quality: int = 90, subsampling: int = 2, **kw: Any) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "JPEG", quality=quality, subsampling=subsampling, **kw)
    return out.getvalue()


def text_png(arr: np.ndarray, **chunks: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key.replace("__", "-"), value)
    return png(arr, info)


def generators(marks: Marks) -> list[tuple[str, str, str]]:
    return [(m.generator, m.location, m.key) for m in marks.generator]


@pytest.fixture(scope="module")
def imwatermark() -> Iterator[types.ModuleType]:
    """The reference ``imwatermark`` package, importable without torch.

    ``imwatermark/__init__`` imports the rivaGan module, which needs torch;
    TakeBack never installs torch, so that one module is stubbed while the
    reference is imported, and every trace of it is removed afterwards.
    """
    assert importlib.util.find_spec("imwatermark") is not None, (
        "invisible-watermark==0.2.0 is needed (install.sh installs it with --no-deps)"
    )
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "imwatermark"}
    stub = types.ModuleType("imwatermark.rivaGan")
    stub.RivaWatermark = object  # type: ignore[attr-defined]
    sys.modules["imwatermark.rivaGan"] = stub
    try:
        yield importlib.import_module("imwatermark")
    finally:
        for key in [k for k in sys.modules if k.split(".")[0] == "imwatermark"]:
            del sys.modules[key]
        sys.modules.update(saved)


def mark_like_the_reference(
    imwatermark: types.ModuleType, rgb: np.ndarray, payload: str
) -> np.ndarray:
    """Watermark an RGB picture as the generator's own code does.

    SD 1.x / 2.x scripts: 8-bit BGR, ``set_watermark("bytes", ...)``. SDXL
    (Stability, diffusers) and FLUX: float32 BGR in 0-255, ``set_watermark("bits",
    ...)``, clamped; diffusers rounds to 8 bits, FLUX truncates (``.byte()``).
    """
    encoder = imwatermark.WatermarkEncoder()
    if payload in ("sd1", "sd2"):
        encoder.set_watermark("bytes", b"StableDiffusionV1" if payload == "sd1" else b"SDV2")
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        return cv2.cvtColor(encoder.encode(bgr, "dwtDct"), cv2.COLOR_BGR2RGB)
    message = (
        0xB3EC907BB19E if payload == "sdxl" else 0b001010101111111010000111100111001111010100101110
    )
    encoder.set_watermark("bits", [int(bit) for bit in bin(message)[2:]])
    bgr = np.ascontiguousarray(rgb[:, :, ::-1]).astype(np.float32)
    marked = np.clip(encoder.encode(bgr, "dwtDct"), 0, 255)[:, :, ::-1]
    marked = np.round(marked) if payload == "sdxl" else np.floor(marked)
    return np.ascontiguousarray(marked.astype(np.uint8))


# -- the public surface --------------------------------------------------------------


def test_exported_names_exist() -> None:
    for module in (marks_module, watermark_module):
        for name in module.__all__:
            assert hasattr(module, name), (module.__name__, name)


def test_docstring_examples_run() -> None:
    for module in (marks_module, watermark_module):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def test_a_plain_photo_has_no_marks() -> None:
    for name in ("coffee.png", "rocket.jpg"):
        marks = read_marks(sample_photo(name).read_bytes(), name=name)
        assert not marks.found and not marks.ai_indicated
        assert marks.generator == () and marks.source_types == ()
        assert marks.c2pa.state is C2paState.ABSENT
        assert marks.watermarks.checked and marks.watermarks.found == ()
        assert "no AI-generation mark found" in marks.summary()[0]


def test_to_dict_is_the_documented_json(astronaut: np.ndarray) -> None:
    marks = read_marks(text_png(astronaut, parameters=A1111), name="dir/fake.png")
    data = json.loads(json.dumps(marks.to_dict()))
    assert data["schema"] == MARKS_SCHEMA
    assert data["name"] == "fake.png"  # a name, never a path
    assert set(data) == {
        "schema", "name", "sha256", "format", "size", "found", "ai_indicated", "summary",
        "generator_metadata", "digital_source_type", "c2pa", "watermarks", "notes",
    }  # fmt: skip
    assert data["format"] == "PNG" and data["size"] == {"width": 512, "height": 512}
    assert data["found"] is True and data["ai_indicated"] is True
    assert set(data["generator_metadata"][0]) == {
        "generator", "location", "key", "excerpt", "truncated", "well_formed", "note",
    }  # fmt: skip
    assert data["c2pa"]["state"] == "absent"
    wm = data["watermarks"]
    assert wm["checked"] is True and wm["found"] == []
    assert [p["payload"] for p in wm["payloads"]] == ["sd1", "sd2", "sdxl", "flux"]
    assert set(wm["payloads"][2]) == {
        "payload", "generator", "bits", "agreement", "lattice", "by_lattice", "level",
        "thresholds", "p_value",
    }  # fmt: skip


# -- 1. generator metadata -------------------------------------------------------------


@pytest.mark.parametrize("chunk", ["tEXt", "iTXt", "zTXt"])
def test_automatic1111_parameters_in_a_png_chunk(astronaut: np.ndarray, chunk: str) -> None:
    info = PngImagePlugin.PngInfo()
    if chunk == "tEXt":
        info.add_text("parameters", A1111)
    elif chunk == "zTXt":
        info.add_text("parameters", A1111, zip=True)
    else:
        info.add_itxt("parameters", A1111)
    marks = read_marks(png(astronaut, info), name="fake.png")
    [mark] = marks.generator
    assert (mark.generator, mark.location, mark.key) == (
        "AUTOMATIC1111 web UI or compatible",
        "png:text",
        "parameters",
    )
    assert mark.well_formed and mark.excerpt is not None
    assert mark.excerpt.startswith(PROMPT) and "Steps: 20" in mark.excerpt
    assert marks.ai_indicated


@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-16-le"])
def test_automatic1111_parameters_in_exif_usercomment(astronaut: np.ndarray, encoding: str) -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111.encode(encoding)
    marks = read_marks(jpeg(astronaut, exif=exif), name="fake.jpg")
    [mark] = marks.generator
    assert (mark.generator, mark.location, mark.key) == (
        "AUTOMATIC1111 web UI or compatible",
        "exif:exif",
        "UserComment",
    )
    assert mark.excerpt is not None and mark.excerpt.startswith(PROMPT)


def test_usercomment_prefixes() -> None:
    assert (
        decode_user_comment(b"UNICODE\x00" + "\u00e9t\u00e9".encode("utf-16-be")) == "\u00e9t\u00e9"
    )
    assert decode_user_comment(b"\x00" * 8 + b"plain") == "plain"
    assert decode_user_comment(b"JIS\x00\x00\x00\x00\x00abc") == "abc"
    assert decode_user_comment(b"no prefix at all") == "no prefix at all"
    assert decode_user_comment(b"UNICODE\x00\x00") == ""  # odd length: no crash


def test_a_long_prompt_is_cut(astronaut: np.ndarray) -> None:
    long_prompt = "a quiet harbour at dawn, " * 400
    marks = read_marks(text_png(astronaut, parameters=long_prompt + "\n" + A1111), name="x.png")
    [mark] = marks.generator
    assert mark.truncated and mark.excerpt is not None
    assert len(mark.excerpt) <= EXCERPT_CHARS and mark.excerpt.endswith("\u2026")


def test_comfyui_prompt_and_workflow(astronaut: np.ndarray) -> None:
    prompt = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cup of coffee on a table"}},
    }
    workflow = {
        "last_node_id": 9,
        "nodes": [{"id": 3, "type": "KSampler"}, {"id": 6, "type": "CLIPTextEncode"}],
    }
    data = text_png(astronaut, prompt=json.dumps(prompt), workflow=json.dumps(workflow))
    found = generator_metadata(data, name="comfy.png")
    assert [(m.generator, m.key, m.well_formed) for m in found.marks] == [
        ("ComfyUI", "prompt", True),
        ("ComfyUI", "workflow", True),
    ]
    excerpt = found.marks[0].excerpt or ""
    assert "KSampler" in excerpt and "a cup of coffee on a table" in excerpt
    assert "2 nodes" in (found.marks[1].excerpt or "")


@pytest.mark.parametrize(
    ("key", "value", "generator"),
    [
        ("invokeai_metadata", json.dumps({"positive_prompt": PROMPT, "steps": 30}), "InvokeAI"),
        ("invokeai_graph", json.dumps({"id": "g", "nodes": {}, "edges": []}), "InvokeAI"),
        (
            "sd-metadata",
            json.dumps({"model": "stable diffusion", "image": {"prompt": PROMPT, "steps": 50}}),
            "InvokeAI (2.x)",
        ),
        ("Dream", f'"{PROMPT}" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms', "InvokeAI (1.x)"),
    ],
)
def test_invokeai(astronaut: np.ndarray, key: str, value: str, generator: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text(key, value)
    [mark] = generator_metadata(png(astronaut, info)).marks
    assert (mark.generator, mark.key) == (generator, key)
    assert mark.excerpt is not None and (PROMPT in mark.excerpt or key == "invokeai_graph")


def test_fooocus(astronaut: np.ndarray) -> None:
    scheme = {
        "prompt": PROMPT,
        "full_prompt": [PROMPT],
        "base_model": "juggernautXL_v8Rundiffusion.safetensors",
        "steps": 30,
        "version": "Fooocus v2.5.5",
    }
    data = text_png(astronaut, parameters=json.dumps(scheme), fooocus_scheme="fooocus")
    marks = generator_metadata(data).marks
    assert [(m.generator, m.key) for m in marks] == [
        ("Fooocus", "parameters"),
        ("Fooocus", "fooocus_scheme"),
    ]
    assert (marks[0].excerpt or "").startswith(PROMPT)
    # The "a1111" scheme writes AUTOMATIC1111-style text, still from Fooocus.
    data = text_png(astronaut, parameters=A1111, fooocus_scheme="a1111")
    assert {m.generator for m in generator_metadata(data).marks} == {"Fooocus"}


def test_fooocus_jpeg_exif(astronaut: np.ndarray) -> None:
    exif = Image.Exif()
    exif[0x9286] = A1111  # Fooocus writes these three in IFD0
    exif[0x0131] = "Fooocus v2.5.5"
    exif[0x927C] = "a1111"
    marks = generator_metadata(jpeg(astronaut, exif=exif)).marks
    assert {m.generator for m in marks} == {"Fooocus"}
    assert {m.key for m in marks} == {"UserComment", "Software", "MakerNote"}


def nai_json() -> dict[str, str]:
    comment = {"prompt": PROMPT, "steps": 28, "sampler": "k_euler", "scale": 5, "uc": "lowres"}
    return {
        "Title": "AI generated image",
        "Description": PROMPT,
        "Software": "NovelAI",
        "Source": "NovelAI Diffusion V3 7BCCAA2C",
        "Comment": json.dumps(comment),
    }


def test_novelai_text_chunks(astronaut: np.ndarray) -> None:
    marks = read_marks(text_png(astronaut, **nai_json()), name="nai.png")
    by_key = {m.key: m for m in marks.generator}
    assert set(by_key) == {"Title", "Description", "Software", "Source", "Comment"}
    assert {m.generator for m in by_key.values()} >= {"NovelAI"}
    assert by_key["Software"].generator == "NovelAI"
    assert by_key["Comment"].generator == "NovelAI"
    assert (by_key["Comment"].excerpt or "").startswith(PROMPT)
    assert "steps: 28" in (by_key["Comment"].excerpt or "")


def stealth_bits(magic: bytes, payload: bytes, *, declared_bits: int | None = None) -> np.ndarray:
    header = magic + struct.pack(">I", len(payload) * 8 if declared_bits is None else declared_bits)
    return np.unpackbits(np.frombuffer(header + payload, dtype=np.uint8))


def embed_lsb(
    rgba: np.ndarray, bits: np.ndarray, channel: str, order: str = "columns"
) -> np.ndarray:
    """Write bits into the lowest bit of alpha (or of R, G, B), as NovelAI and
    sd-webui-stealth-pnginfo do: column by column, top to bottom."""
    out = rgba.copy()
    planes = out[:, :, 3:4] if channel == "alpha" else out[:, :, :3]
    ordered = planes.transpose(1, 0, 2) if order == "columns" else planes
    flat = ordered.reshape(-1).copy()
    flat[: bits.size] = (flat[: bits.size] & 0xFE) | bits
    restored = flat.reshape(ordered.shape)
    planes[...] = restored.transpose(1, 0, 2) if order == "columns" else restored
    return out


def rgba_of(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def test_novelai_stealth_alpha_payload(astronaut: np.ndarray) -> None:
    payload = gzip.compress(json.dumps(nai_json()).encode())
    pixels = embed_lsb(rgba_of(astronaut), stealth_bits(b"stealth_pngcomp", payload), "alpha")
    marks = read_marks(png(pixels), name="nai.png")
    [mark] = marks.generator
    assert (mark.generator, mark.location, mark.key) == (
        "NovelAI",
        "pixels:alpha-lsb",
        "stealth_pngcomp",
    )
    assert mark.well_formed and mark.note is None
    assert (mark.excerpt or "").startswith(PROMPT)


def test_stealth_bit_order_is_column_major(astronaut: np.ndarray) -> None:
    payload = gzip.compress(json.dumps(nai_json()).encode())
    bits = stealth_bits(b"stealth_pngcomp", payload)
    rows_first = embed_lsb(rgba_of(astronaut), bits, "alpha", order="rows")
    assert stealth_metadata(png(rows_first)).marks == ()


def test_stealth_reader_matches_a_pixel_by_pixel_reading(astronaut: np.ndarray) -> None:
    """The vectorized reader against a naive loop over Pillow's pixel access."""
    rng = np.random.default_rng(7)
    pixels = rgba_of(astronaut[:300, :260])
    pixels[:, :, 3] = rng.integers(0, 256, pixels.shape[:2], dtype=np.uint8)
    img = Image.fromarray(pixels)
    access = img.load()
    assert access is not None
    width, height = img.size
    naive_alpha = [access[x, y][3] & 1 for x in range(width) for y in range(height)][:1000]  # type: ignore[index]
    naive_rgb = [
        access[x, y][c] & 1  # type: ignore[index]
        for x in range(width)
        for y in range(height)
        for c in range(3)
    ][:1000]
    lsb = marks_module._lsb_bits
    assert list(lsb(img, "alpha", 0, 1000)) == naive_alpha  # type: ignore[arg-type]
    assert list(lsb(img, "alpha", 333, 500)) == naive_alpha[333:833]  # type: ignore[arg-type]
    assert list(lsb(img, "rgb", 0, 1000)) == naive_rgb  # type: ignore[arg-type]
    assert list(lsb(img, "rgb", 301, 400)) == naive_rgb[301:701]  # type: ignore[arg-type]


def test_stealth_pnginfo_of_the_webui_extension(astronaut: np.ndarray) -> None:
    plain = embed_lsb(rgba_of(astronaut), stealth_bits(b"stealth_pnginfo", A1111.encode()), "alpha")
    [mark] = stealth_metadata(png(plain)).marks
    assert mark.generator == "AUTOMATIC1111 web UI or compatible (stealth-pnginfo extension)"
    assert mark.key == "stealth_pnginfo" and (mark.excerpt or "").startswith(PROMPT)
    rgb = embed_lsb(
        rgba_of(astronaut), stealth_bits(b"stealth_rgbcomp", gzip.compress(A1111.encode())), "rgb"
    )[:, :, :3]
    [mark] = stealth_metadata(png(np.ascontiguousarray(rgb))).marks
    assert (mark.location, mark.key) == ("pixels:rgb-lsb", "stealth_rgbcomp")


def test_flux_reference_exif(astronaut: np.ndarray) -> None:
    """black-forest-labs/flux ``save_image``: Software, Make, Model, ImageDescription."""
    exif = Image.Exif()
    exif[0x0131] = "AI generated;txt2img;flux"
    exif[0x010F] = "Black Forest Labs"
    exif[0x0110] = "flux-dev"
    exif[0x010E] = PROMPT
    marks = generator_metadata(jpeg(astronaut, exif=exif, quality=95, subsampling=0)).marks
    assert {m.generator for m in marks} == {"FLUX.1 (Black Forest Labs)"}
    assert {m.key for m in marks} == {"Software", "Make", "ImageDescription"}
    assert [m.excerpt for m in marks if m.key == "ImageDescription"] == [PROMPT]


@pytest.mark.parametrize(
    ("software", "generator"),
    [
        ("Midjourney", "Midjourney"),
        ("DALL\u00b7E 3", "DALL-E"),
        ("Adobe Firefly", "Adobe Firefly"),
        ("Adobe Photoshop 25.0 (Windows)", None),
        ("GIMP 2.10.36", None),
        ("Camera FV-5", None),
    ],
)
def test_exif_software_naming_a_generator(
    astronaut: np.ndarray, software: str, generator: str | None
) -> None:
    exif = Image.Exif()
    exif[0x0131] = software
    marks = generator_metadata(jpeg(astronaut, exif=exif)).marks
    assert [m.generator for m in marks] == ([generator] if generator else [])


def test_comfyui_webp_exif(astronaut: np.ndarray) -> None:
    prompt = {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red bicycle"}}}
    exif = Image.Exif()
    exif[0x0110] = "prompt:" + json.dumps(prompt)
    out = io.BytesIO()
    Image.fromarray(astronaut).save(out, "WEBP", exif=exif, lossless=True)
    [mark] = generator_metadata(out.getvalue()).marks
    assert (mark.generator, mark.key) == ("ComfyUI", "Model")
    assert "a red bicycle" in (mark.excerpt or "")


def test_captions_that_mention_a_generator_are_not_marks(astronaut: np.ndarray) -> None:
    data = text_png(astronaut, Description="not made with Midjourney", Comment="hello")
    assert generator_metadata(data).marks == ()


# -- 2. IPTC digital source type in XMP -------------------------------------------------


def xmp(body: str, extra_ns: str = "") -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/" {extra_ns}{body}'
        "</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )


ATTRIBUTE_FORM = xmp(f'Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia"/>')
ELEMENT_FORM = xmp(
    f"><Iptc4xmpExt:DigitalSourceType>{IPTC}compositeWithTrainedAlgorithmicMedia"
    "</Iptc4xmpExt:DigitalSourceType></rdf:Description>"
)
RESOURCE_FORM = xmp(
    f'><Iptc4xmpExt:DigitalSourceType rdf:resource="{IPTC}trainedAlgorithmicMedia"/>'
    "</rdf:Description>"
)


def test_digital_source_type_in_jpeg_xmp(astronaut: np.ndarray) -> None:
    marks = read_marks(jpeg(astronaut, xmp=ATTRIBUTE_FORM.encode()), name="x.jpg")
    [mark] = marks.source_types
    assert (mark.value, mark.term, mark.ai, mark.location) == (
        IPTC + "trainedAlgorithmicMedia",
        "trainedAlgorithmicMedia",
        True,
        "jpeg:APP1",
    )
    assert marks.ai_indicated and marks.generator == ()


@pytest.mark.parametrize("packet", [ELEMENT_FORM, RESOURCE_FORM])
def test_digital_source_type_in_png_itxt(astronaut: np.ndarray, packet: str) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet)
    marks = read_marks(png(astronaut, info), name="x.png")
    [mark] = marks.source_types
    assert mark.ai and mark.term in AI_SOURCE_TYPES
    assert mark.location == "png:XML:com.adobe.xmp"


def test_other_source_types_are_reported_as_is() -> None:
    packet = xmp(f'Iptc4xmpExt:DigitalSourceType="{IPTC}digitalCapture"/>')
    [mark] = digital_source_type(packet).marks
    assert (mark.term, mark.ai) == ("digitalCapture", False)
    odd = xmp('Iptc4xmpExt:DigitalSourceType="http://example.com/trainedAlgorithmicMedia"/>')
    [mark] = digital_source_type(odd).marks
    assert mark.value == "http://example.com/trainedAlgorithmicMedia" and not mark.ai


def test_a_plain_photo_source_type_is_found_but_not_ai(astronaut: np.ndarray) -> None:
    packet = xmp(f'Iptc4xmpExt:DigitalSourceType="{IPTC}digitalCapture"/>')
    marks = read_marks(jpeg(astronaut, xmp=packet.encode()), name="x.jpg")
    assert marks.found and not marks.ai_indicated


@pytest.mark.parametrize(
    "packet",
    [
        # the word in a comment
        xmp(f"/><!-- Iptc4xmpExt:DigitalSourceType {IPTC}trainedAlgorithmicMedia -->"),
        # in an unrelated attribute
        xmp(f'xmp:Label="{IPTC}trainedAlgorithmicMedia"/>'),
        # in a description text
        xmp(
            '><dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
            "Iptc4xmpExt:DigitalSourceType=trainedAlgorithmicMedia</rdf:li></rdf:Alt>"
            "</dc:description></rdf:Description>"
        ),
        # the right local name under another namespace
        xmp(
            f'fake:DigitalSourceType="{IPTC}trainedAlgorithmicMedia"/>',
            extra_ns='xmlns:fake="http://example.com/not-iptc/" ',
        ),
        # nested inside another property's structure, not a top-level property
        xmp(
            '><xmp:Thing rdf:parseType="Resource"><Iptc4xmpExt:DigitalSourceType>'
            f"{IPTC}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType></xmp:Thing>"
            "</rdf:Description>"
        ),
    ],
    ids=["comment", "other-attribute", "description-text", "other-namespace", "nested"],
)
def test_byte_search_traps_are_not_reported(astronaut: np.ndarray, packet: str) -> None:
    assert "trainedAlgorithmicMedia" in packet  # the words are there, the property is not
    found = digital_source_type(packet)
    assert found.marks == () and found.notes == ()
    assert not read_marks(jpeg(astronaut, xmp=packet.encode()), name="x.jpg").found


# A packet without its xpacket header, to follow a DOCTYPE.
_BODY = xmp(f'Iptc4xmpExt:DigitalSourceType="&lol9;{IPTC}trainedAlgorithmicMedia"/>')
_LOLS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(2, 10))
BILLION_LAUGHS = (
    f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol1 "lol">{_LOLS}]>' + _BODY.split("?>", 1)[1]
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY ext SYSTEM "file:///nonexistent/secret">]>'
    + xmp('xmp:Label="&ext;"/>').split("?>", 1)[1]
)


@pytest.mark.parametrize(
    ("packet", "why"),
    [
        (BILLION_LAUGHS, "DTD"),
        (EXTERNAL_ENTITY, "DTD"),
        (ATTRIBUTE_FORM[:-60], "not well-formed"),
        ("<x:xmpmeta", "not well-formed"),
        ("\x00\x00", "not well-formed"),
    ],
)
def test_hostile_or_malformed_xmp_gives_a_note(
    astronaut: np.ndarray, packet: str, why: str
) -> None:
    found = digital_source_type(packet, location="jpeg:APP1")
    assert found.marks == ()
    [note] = found.notes
    assert why in note and "jpeg:APP1" in note
    marks = read_marks(jpeg(astronaut, xmp=packet.encode()), name="x.jpg")
    assert not marks.found
    # An empty packet (only padding) is no packet at all.
    assert any(why in n for n in marks.notes) == bool(packet.strip("\x00"))


def test_oversized_xmp_is_not_parsed() -> None:
    found = digital_source_type(b" " * 10 + b"<a>" + b"x" * (5 * 1024 * 1024) + b"</a>")
    assert found.marks == () and "limit" in found.notes[0]


# -- 3. Content Credentials ----------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeyFiles:
    return init_keys(tmp_path_factory.mktemp("keys") / "keys", name="Marks Test")


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, keys: KeyFiles) -> dict[str, bytes]:
    from takeback.provenance.c2pa import sign_photo

    tmp = tmp_path_factory.mktemp("signed")
    photo = Path(shutil.copy(sample_photo("rocket.jpg"), tmp / "rocket.jpg"))
    signer = LocalSigner.from_files(keys.key, keys.certificate)
    ai = IPTC + "trainedAlgorithmicMedia"
    embedded = sign_photo(photo, signer, embed=True, source_type=ai, output=tmp / "ai.jpg")
    sidecar = sign_photo(photo, signer, source_type="digitalCapture", output=tmp / "rocket.c2pa")
    return {
        "embedded": Path(embedded.output).read_bytes(),
        "photo": photo.read_bytes(),
        "sidecar": Path(sidecar.output).read_bytes(),
    }


def test_c2pa_embedded_ai_source_type(signed: dict[str, bytes], keys: KeyFiles) -> None:
    marks = read_marks(signed["embedded"], name="ai.jpg")
    c2 = marks.c2pa
    assert c2.state is C2paState.VALID and c2.manifest == "embedded"
    assert c2.source_types == (IPTC + "trainedAlgorithmicMedia",) and c2.ai
    assert (c2.claim_generator or "").startswith("TakeBack/")
    assert c2.signer == "Marks Test"
    assert c2.actions[0]["action"] == "c2pa.created"
    assert (c2.actions[0].get("softwareAgent") or "").startswith("TakeBack")
    assert marks.found and marks.ai_indicated
    trusted = c2pa_mark(signed["embedded"], trust_anchors=str(keys.ca_certificate))
    assert trusted.state is C2paState.TRUSTED
    assert c2pa_mark(signed["embedded"], trust_anchors=keys.ca_certificate.read_bytes()).state is (
        C2paState.TRUSTED
    )


def test_c2pa_sidecar_and_tampering(signed: dict[str, bytes]) -> None:
    marks = read_marks(signed["photo"], name="rocket.jpg", sidecar=signed["sidecar"])
    assert marks.c2pa.state is C2paState.VALID and marks.c2pa.manifest == "sidecar"
    assert marks.c2pa.source_types == (IPTC + "digitalCapture",)
    assert marks.found and not marks.ai_indicated
    assert read_marks(signed["photo"], name="rocket.jpg").c2pa.state is C2paState.ABSENT
    pixels = np.asarray(Image.open(io.BytesIO(signed["photo"])))
    edited = jpeg(pixels, quality=95)
    bad = read_marks(edited, name="edited.jpg", sidecar=signed["sidecar"]).c2pa
    assert bad.state is C2paState.INVALID and bad.failures


def test_c2pa_on_a_format_that_cannot_carry_it(
    astronaut: np.ndarray, signed: dict[str, bytes]
) -> None:
    out = io.BytesIO()
    Image.fromarray(astronaut).save(out, "BMP")
    marks = read_marks(out.getvalue(), name="x.bmp", sidecar=signed["sidecar"])
    assert marks.c2pa.state is C2paState.ABSENT
    assert any("cannot carry Content Credentials" in n for n in marks.notes)


# -- 4. invisible watermarks ----------------------------------------------------------------


def test_thresholds_come_from_the_binomial_tail() -> None:
    assert binomial_tail(48, 34) == P_LIKELY
    assert binomial_tail(48, 36) == P_VERY_LIKELY
    for payload in PAYLOADS:
        assert payload.likely == threshold_for(payload.length, P_LIKELY), payload.name
        assert payload.very_likely == threshold_for(payload.length, P_VERY_LIKELY), payload.name
    assert [(p.name, p.length, p.likely, p.very_likely) for p in PAYLOADS] == [
        ("sd1", 136, 85, 89),
        ("sd2", 32, 25, 26),
        ("sdxl", 48, 34, 36),
        ("flux", 46, 33, 35),
    ]


def test_payloads_are_the_reference_ones() -> None:
    assert np.packbits(PAYLOAD["sd1"].bits).tobytes() == b"StableDiffusionV1"
    assert np.packbits(PAYLOAD["sd2"].bits).tobytes() == b"SDV2"
    assert int("".join(map(str, PAYLOAD["sdxl"].bits)), 2) == 0xB3EC907BB19E
    # FLUX: bin() of 0b0010...1110 drops the two leading zeros: 46 bits.
    assert (
        "".join(map(str, PAYLOAD["flux"].bits)) == "1010101111111010000111100111001111010100101110"
    )


def test_decoder_is_bit_exact_with_the_reference_decoder(imwatermark: types.ModuleType) -> None:
    rng = np.random.default_rng(3)
    pictures = [np.asarray(Image.open(sample_photo(n)).convert("RGB")) for n in SAMPLE_PHOTOS[:4]]
    pictures += [np.full((256, 264, 3), v, np.uint8) for v in (0, 126, 127, 200)]  # ties everywhere
    pictures += [cv2.GaussianBlur(rng.integers(0, 256, (272, 256, 3), dtype=np.uint8), (0, 0), 2)]
    for rgb in pictures:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        for length in (136, 48, 46, 32):
            reference = imwatermark.WatermarkDecoder("bits", length).decode(bgr, "dwtDct")
            assert list(decode_bits(rgb, length)) == [bool(b) for b in reference]


@pytest.mark.parametrize("payload", ["sd1", "sd2", "sdxl", "flux"])
def test_reference_marks_are_found(
    imwatermark: types.ModuleType, astronaut: np.ndarray, payload: str
) -> None:
    marked = mark_like_the_reference(imwatermark, astronaut, payload)
    marks = read_marks(png(marked), name="generated.png")
    match = next(m for m in marks.watermarks.matches if m.payload.name == payload)
    assert match.level is WatermarkLevel.VERY_LIKELY
    assert match.agreement >= match.payload.length - 2
    assert match.p_value < 1e-6
    assert [m.payload.name for m in marks.watermarks.found] == [payload]
    assert marks.ai_indicated and marks.generator == ()


def test_the_float_lattice_reads_float_pipeline_marks(
    imwatermark: types.ModuleType,
) -> None:
    """A yellow-orange picture (negative U) marked by the SDXL code reads inverted on the
    reference lattice and right on the float lattice."""
    chelsea = np.asarray(Image.open(sample_photo("chelsea.png")).convert("RGB"))
    marked = mark_like_the_reference(imwatermark, chelsea, "sdxl")
    [match] = decode_watermarks(marked, payloads=(PAYLOAD["sdxl"],)).matches
    assert match.by_lattice["reference"] < 24 <= 44 <= match.by_lattice["float"]
    assert match.lattice is Lattice.FLOAT and match.found


def test_unmarked_pictures_are_not_found() -> None:
    rng = np.random.default_rng(11)
    pictures = {n: np.asarray(Image.open(sample_photo(n)).convert("RGB")) for n in SAMPLE_PHOTOS}
    pictures |= {
        n: np.asarray(Image.open(sample_photo(n)).convert("RGB")) for n in UNRELATED_PHOTOS
    }
    pictures["noise"] = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    pictures["flat"] = np.full((300, 300, 3), (200, 120, 40), np.uint8)
    cols, rows = np.meshgrid(np.arange(300), np.arange(400))
    pictures["gradient"] = np.dstack([rows // 2, cols, 255 - cols]).astype(np.uint8)
    for name, rgb in pictures.items():
        scan = decode_watermarks(np.ascontiguousarray(rgb))
        assert scan.checked and scan.found == (), (name, [m.to_dict() for m in scan.matches])


def test_jpeg_444_at_95_keeps_the_mark_and_420_with_resize_loses_it(
    imwatermark: types.ModuleType, astronaut: np.ndarray
) -> None:
    marked = mark_like_the_reference(imwatermark, astronaut, "flux")
    # FLUX's reference code saves JPEG at quality 95 without chroma subsampling.
    kept = read_marks(jpeg(marked, quality=95, subsampling=0), name="flux.jpg")
    assert [m.payload.name for m in kept.watermarks.found] == ["flux"]
    small = cv2.resize(marked, (384, 384), interpolation=cv2.INTER_AREA)
    lost = read_marks(jpeg(small, quality=85, subsampling=2), name="repost.jpg")
    assert lost.watermarks.found == () and not lost.ai_indicated


def test_small_pictures_are_not_checked() -> None:
    scan = decode_watermarks(np.zeros((200, 200, 3), np.uint8))
    assert not scan.checked and scan.matches == () and "256x256" in (scan.reason or "")
    marks = read_marks(png(np.zeros((200, 200, 3), np.uint8)), name="small.png")
    assert not marks.watermarks.checked and not marks.found
    with pytest.raises(TypeError):
        decode_watermarks(np.zeros((300, 300, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(M, N, 3\)"):
        decode_watermarks(np.zeros((300, 300), np.uint8))


def test_block_scores_has_one_score_per_8x8_block() -> None:
    scores = block_scores(np.zeros((260, 333, 3), np.uint8))
    assert {k: v.shape for k, v in scores.items()} == {
        Lattice.REFERENCE: (32 * 41,),
        Lattice.FLOAT: (32 * 41,),
    }


def test_a_12_megapixel_picture_is_read_in_well_under_a_second(astronaut: np.ndarray) -> None:
    big = np.ascontiguousarray(cv2.resize(astronaut, (4000, 3000)))
    decode_watermarks(big)  # warm up
    start = time.perf_counter()
    scan = decode_watermarks(big)
    assert time.perf_counter() - start < 1.0  # ~50 ms alone on one core; generous when shared
    assert scan.checked and scan.found == ()


# -- hostile input ----------------------------------------------------------------------------


def chunk(kind: bytes, body: bytes, *, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_not_an_image() -> None:
    with pytest.raises(NotAnImageError):
        read_marks(b"this is a text file, not a picture", name="notes.txt")
    with pytest.raises(NotAnImageError):
        read_marks(b"", name="empty.png")
    with pytest.raises(NotAnImageError):
        generator_metadata(b"GIF89a nonsense")


def test_truncated_png_with_a_huge_text_chunk() -> None:
    header = png(np.zeros((64, 64, 3), np.uint8))[:33]  # signature + IHDR
    data = header + struct.pack(">I", 0x7FFF0000) + b"tEXtparameters\x00" + b"Steps: 20, " * 100
    with pytest.raises(CorruptImageError) as info:
        read_marks(data, name="cut.png")
    assert info.value.code == "corrupt_image" and "cut.png" in info.value.message


def test_a_text_chunk_that_inflates_too_far(astronaut: np.ndarray) -> None:
    bomb = zlib.compress(b"\x00" * (64 * 1024 * 1024), 9)
    data = png(astronaut[:64, :64])
    data = data[:33] + chunk(b"zTXt", b"parameters\x00\x00" + bomb) + data[33:]
    with pytest.raises(TakeBackError):
        read_marks(data, name="bomb.png")


@pytest.mark.parametrize(
    "garbage",
    [
        b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x10" + b"\xff\x01" * 40,
        b"Exif\x00\x00XX\x00\x2a\x00\x00\x00\x08",
        b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xf0",
        # an Exif IFD pointer far outside the segment
        b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\x01\x00\x69\x87\x04\x00\x01\x00"
        b"\x00\x00\xff\xff\x00\x00",
        # a Software string longer than the segment
        b"Exif\x00\x00II\x2a\x00\x08\x00\x00\x00\x01\x00\x31\x01\x02\x00\xff\xff"
        b"\x00\x00\x1a\x00\x00\x00",
    ],
)
def test_broken_exif_is_not_a_crash(astronaut: np.ndarray, garbage: bytes) -> None:
    base = jpeg(astronaut)
    segment = b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage
    marks = read_marks(base[:2] + segment + base[2:], name="broken.jpg")
    assert not marks.found
    json.dumps(marks.to_dict())


def test_exif_that_pillow_cannot_parse_is_a_note(astronaut: np.ndarray) -> None:
    class BrokenExif(Image.Image):
        format = "JPEG"

        def getexif(self) -> Image.Exif:
            raise SyntaxError("not a TIFF file (header b'XX\\x00*' not valid)")

    found = generator_metadata(BrokenExif())
    assert found.marks == ()
    assert found.notes and "EXIF data is damaged" in found.notes[0]


def test_a_stealth_payload_longer_than_the_image(astronaut: np.ndarray) -> None:
    bits = stealth_bits(b"stealth_pngcomp", b"", declared_bits=0xFFFFFFF0)
    marks = read_marks(png(embed_lsb(rgba_of(astronaut), bits, "alpha")), name="bad.png")
    [mark] = marks.generator
    assert mark.key == "stealth_pngcomp" and not mark.well_formed
    assert "more than the image holds" in (mark.note or "")


def test_a_stealth_gzip_bomb_is_capped(astronaut: np.ndarray) -> None:
    bomb = gzip.compress(b"A" * (16 * 1024 * 1024), 9)  # 16 MiB from 16 kB
    assert len(bomb) * 8 < 512 * 512 - 200
    pixels = embed_lsb(rgba_of(astronaut), stealth_bits(b"stealth_pngcomp", bomb), "alpha")
    [mark] = stealth_metadata(png(pixels)).marks
    assert f"{MAX_INFLATED_BYTES:,}" in (mark.note or "")
    assert mark.excerpt is not None and len(mark.excerpt) <= EXCERPT_CHARS
    damaged = embed_lsb(
        rgba_of(astronaut), stealth_bits(b"stealth_pngcomp", b"\x1f\x8bnot gzip"), "alpha"
    )
    [mark] = stealth_metadata(png(damaged)).marks
    assert "damaged" in (mark.note or "")


def test_deeply_nested_json_does_not_crash(astronaut: np.ndarray) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    marks = read_marks(text_png(astronaut, prompt=deep, workflow="{not json"), name="deep.png")
    assert [(m.key, m.well_formed) for m in marks.generator] == [
        ("prompt", False),
        ("workflow", False),
    ]


def test_mutated_files_give_a_result_or_a_takeback_error(astronaut: np.ndarray) -> None:
    """Nothing from Pillow, expat, zlib or c2pa leaks, whatever bytes are damaged."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + A1111.encode("utf-16-be")
    exif[0x0131] = "NovelAI"
    small = astronaut[:96, :96]
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    info.add_text("prompt", json.dumps({"1": {"class_type": "KSampler", "inputs": {}}}))
    info.add_itxt("XML:com.adobe.xmp", ATTRIBUTE_FORM, zip=True)
    seeds = [jpeg(small, exif=exif, xmp=ATTRIBUTE_FORM.encode()), png(small, info)]
    rng = np.random.default_rng(2024)
    outcomes = {"result": 0, "error": 0}
    for base in seeds:
        for _ in range(60):
            data = bytearray(base)
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
                data[pos] = int(rng.integers(0, 256))
            if rng.random() < 0.3:
                data = data[: int(rng.integers(8, len(data)))]
            try:
                json.dumps(read_marks(bytes(data), name="mutated").to_dict())
                outcomes["result"] += 1
            except TakeBackError:
                outcomes["error"] += 1
    assert outcomes["result"] > 0 and outcomes["error"] > 0
