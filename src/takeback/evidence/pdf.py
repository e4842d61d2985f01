"""The PDF report: WeasyPrint, PDF/A-3b, ``report.json`` attached as associated file.

Nothing is fetched while rendering: the page is self-contained (inline CSS,
``data:`` images) and the URL fetcher refuses every other address, so a stray
reference stops the rendering instead of reaching the network or the disk.
Fonts are the locally installed DejaVu fonts, embedded (subset) in the PDF.

:func:`embedded_files` reads the attached files back without a PDF library: a
PDF keeps each attachment in a stream of ``/Type /EmbeddedFile`` (never inside
a compressed object stream), so it can be found and inflated with ``zlib``.
"""

from __future__ import annotations

import re
import warnings
import zlib
from datetime import datetime
from functools import cache
from typing import Any

from .errors import PackageWriteError

__all__ = ["ATTACHMENT_NAME", "PDF_VARIANT", "embedded_files", "render_pdf"]

#: The PDF flavour written: PDF/A-3b allows attached (associated) files.
PDF_VARIANT = "pdf/a-3b"
#: File name of the attached JSON inside the PDF.
ATTACHMENT_NAME = "report.json"


def _weasyprint() -> Any:
    """Import WeasyPrint lazily and quietly.

    It warns at import time when the system lacks the optional HarfBuzz subset
    library (it then subsets fonts with fontTools, which works). It also sets
    Pillow's process-wide ``ImageFile.LOAD_TRUNCATED_IMAGES`` at import, which
    would make every later decode accept truncated files: the setting is put
    back (the report only embeds images TakeBack itself encoded).
    """
    from PIL import ImageFile

    truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*HarfBuzz")
        import weasyprint
        import weasyprint.urls
    ImageFile.LOAD_TRUNCATED_IMAGES = truncated
    return weasyprint


@cache
def _fetcher_class() -> type:
    urls = _weasyprint().urls

    class LocalOnlyFetcher(urls.URLFetcher):  # type: ignore[name-defined]
        """Serve ``data:`` URIs; refuse (and stop the rendering on) anything else."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            if not url.startswith("data:"):
                raise urls.FatalURLFetchingError(
                    f"the report refers to {url[:80]!r}; only data: URIs are allowed"
                )
            return super().fetch(url, headers)

    return LocalOnlyFetcher


def render_pdf(html: str, report_json: bytes, *, created: datetime) -> bytes:
    """Render ``html`` as PDF/A-3b with ``report_json`` attached (relationship Data).

    Parameters
    ----------
    html : str
        A self-contained page (from :func:`~takeback.evidence.html.render_html`
        with ``for_pdf=True``).
    report_json : bytes
        The exact bytes of ``report.json``.
    created : datetime
        Timezone-aware creation time of the attachment.

    Returns
    -------
    bytes
        The PDF.

    Raises
    ------
    PackageWriteError
        WeasyPrint failed, or the page referred to something outside itself.
    """
    weasyprint = _weasyprint()
    fetcher = _fetcher_class()(allowed_protocols={"data"}, timeout=1)
    try:
        with warnings.catch_warnings():
            # WeasyPrint leaves its bundled sRGB profile open (closed by the GC).
            warnings.filterwarnings("ignore", category=ResourceWarning, message=r".*sRGB2014\.icc")
            attachment = weasyprint.Attachment(
                string=report_json,
                name=ATTACHMENT_NAME,
                description="Machine-readable evidence report (takeback.evidence/1)",
                created=created,
                modified=created,
                relationship="Data",
                url_fetcher=fetcher,
            )
            document = weasyprint.HTML(string=html, url_fetcher=fetcher, base_url=None)
            pdf = document.write_pdf(pdf_variant=PDF_VARIANT, attachments=[attachment])
    except weasyprint.urls.FatalURLFetchingError as exc:
        raise PackageWriteError(f"the PDF report was not written: {exc}") from None
    except (ValueError, OSError) as exc:
        raise PackageWriteError(f"the PDF report could not be rendered ({exc})") from exc
    return bytes(pdf)


_EMBEDDED = re.compile(rb"/Type\s*/EmbeddedFile\b")
_LENGTH = re.compile(rb"/Length\s+(\d+)\b(?!\s+\d+\s+R)")


def embedded_files(pdf: bytes) -> list[bytes]:
    """The contents of the files attached to a PDF, in file order.

    Only what TakeBack writes is supported: direct ``/Length``, no filter or
    ``/FlateDecode``. Streams that cannot be read are skipped.

    Examples
    --------
    >>> embedded_files(b"%PDF-1.7 no attachments")
    []
    """
    found: list[bytes] = []
    for match in _EMBEDDED.finditer(pdf):
        start = pdf.rfind(b"obj", 0, match.start())
        keyword = pdf.find(b"stream", match.end())
        if start < 0 or keyword < 0:
            continue
        header = pdf[start:keyword]
        length = _LENGTH.search(header)
        if length is None:
            continue
        body = keyword + len(b"stream")
        if pdf[body : body + 2] == b"\r\n":
            body += 2
        elif pdf[body : body + 1] in (b"\n", b"\r"):
            body += 1
        data = pdf[body : body + int(length.group(1))]
        if b"/FlateDecode" in header:
            try:
                data = zlib.decompress(data)
            except zlib.error:
                continue
        elif b"/Filter" in header:
            continue
        found.append(data)
    return found
