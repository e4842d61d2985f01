"""The HTML report: one self-contained page (inline CSS, images as ``data:`` URIs).

The same template renders the page people open in a browser and the page
WeasyPrint turns into the PDF (``for_pdf=True`` drops the download link of the
JSON, which the PDF carries as an attached file instead). Every value is
escaped by Jinja2; nothing refers to a network address.
"""

from __future__ import annotations

import base64
import json
from functools import cache
from importlib import resources
from typing import Any

import jinja2

from .images import ReportImages

__all__ = ["JSON_LINK_ID", "flatten", "render_html"]

#: ``id`` of the link that carries ``report.json`` inside the HTML report.
JSON_LINK_ID = "takeback-report-json"
#: Longest value shown in a key/value table; the rest is in report.json.
_MAX_VALUE_CHARS = 600

_VERDICT_LABELS = {
    "derived": "Altered copy of the original",
    "identical": "Same picture as the original",
    "not_derived": "Not a copy of the original",
    "inconclusive": "Inconclusive",
}
_ROLE_LABELS = {
    "evidence:suspect": "Suspect image (evidentiary copy)",
    "evidence:original": "Original photo (evidentiary copy)",
    "evidence:screenshot": "Screenshot of the post (evidentiary copy)",
    "input:suspect": "Suspect image",
    "input:original": "Original photo",
    "input:screenshot": "Screenshot of the post",
    "working:mask": "Altered pixels (white), full resolution",
    "working:heatmap": "Change strength, full resolution",
    "working:aligned_original": "Original aligned to the suspect, full resolution",
    "working:side_by_side": "Side by side, as in this report",
    "working:overlay": "Aligned overlay, as in this report",
    "working:heatmap_view": "Heatmap, as in this report",
    "working:suspect_view": "Suspect, as in this report",
    "working:screenshot_view": "Screenshot, as in this report",
    "working:suspect_thumbnail": "Suspect thumbnail",
    "working:original_thumbnail": "Original thumbnail",
}


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > _MAX_VALUE_CHARS:
        return f"{text[:_MAX_VALUE_CHARS]}… ({len(text):,} characters; in full in report.json)"
    return text


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested JSON as ``(dotted.key, text)`` rows, for generic key/value tables.

    Examples
    --------
    >>> flatten({"a": {"b": 1, "c": [1, 2]}, "d": None})
    [('a.b', '1'), ('a.c', '1, 2'), ('d', '—')]
    """
    rows: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        if not obj and prefix:
            rows.append((prefix, "—"))
        for key, value in obj.items():
            rows += flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, list) and any(isinstance(v, dict | list) for v in obj):
        for i, value in enumerate(obj):
            rows += flatten(value, f"{prefix}[{i}]")
    elif isinstance(obj, list):
        rows.append((prefix, ", ".join(_text(v) for v in obj) if obj else "—"))
    else:
        rows.append((prefix or "value", _text(obj)))
    return rows


def _data_uri(data: bytes | None, media_type: str = "image/jpeg") -> str | None:
    if data is None:
        return None
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


@cache
def _environment() -> jinja2.Environment:
    templates = resources.files("takeback.evidence") / "templates"
    loader = jinja2.DictLoader(
        {
            name: (templates / name).read_text(encoding="utf-8")
            for name in ("report.html.j2", "report.css")
        }
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["text"] = _text
    env.filters["pct"] = lambda v: "—" if v is None else f"{float(v):.1%}"
    env.filters["role"] = lambda r: _ROLE_LABELS.get(r, r)
    env.filters["flatten"] = flatten
    return env


def render_html(
    document: dict[str, Any],
    images: ReportImages,
    *,
    report_json: bytes | None = None,
    for_pdf: bool = False,
) -> str:
    """Render the report page.

    Parameters
    ----------
    document : dict
        The ``report.json`` document.
    images : ReportImages
    report_json : bytes, optional
        The exact bytes of ``report.json``, offered as a download link (HTML
        only) so a single-file report still carries the machine-readable form.
    for_pdf : bool
        Render for WeasyPrint (no download link; page headers and numbers).

    Returns
    -------
    str
        A complete HTML document.
    """
    env = _environment()
    css = env.get_template("report.css").render()
    exam = document["examination"]
    alignment = exam.get("alignment")
    view = {
        "doc": document,
        "exam": exam,
        "case": document["case"],
        "summary": document["summary"],
        "verdict_label": _VERDICT_LABELS.get(document["summary"]["verdict"], "Unknown"),
        "alignment": alignment,
        "parameters": flatten(exam.get("parameters") or {}),
        "marks": flatten(exam.get("marks") or {}),
        "blind": flatten(exam.get("blind") or {}),
        "provenance": document.get("provenance") or {},
        "images": {
            name: _data_uri(getattr(images, name))
            for name in (
                "side_by_side",
                "overlay",
                "heatmap_view",
                "suspect_view",
                "screenshot_view",
            )
        },
        "screenshot": next(
            (a for a in document["artefacts"] if a["role"].endswith(":screenshot")), None
        ),
        "json_link_id": JSON_LINK_ID,
        "json_uri": None
        if for_pdf or report_json is None
        else _data_uri(report_json, "application/json"),
        "for_pdf": for_pdf,
        "css": css,
    }
    return env.get_template("report.html.j2").render(**view)
