"""Tests of the hash-list exchange formats (``takeback.bank.exchange``).

Round trips are property tests over random entries; malformed input is tested
case by case (every hostile case must give an ImportFormatError naming the
line, never another exception); interoperability is tested against the real
python-threatexchange package when it is installed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import tracemalloc
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from takeback.bank.exchange import (
    FORMATS,
    MAX_LINE_BYTES,
    SKIPPED_SIGNAL_TYPES,
    TAKEBACK_CSV_COLUMNS,
    TE_CSV_COLUMNS,
    ImportReport,
    detect_format,
    read_entries,
    write_entries,
)
from takeback.bank.model import BankEntry
from takeback.errors import FileAccessError, ImportFormatError, InputError
from takeback.fingerprint.types import PdqHash

# Two of python-threatexchange's PdqSignal.get_examples().
PDQ_A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
PDQ_B = "30a10efd71cc3d429013d48d0ffffc52e34e0e17ada952a9d29685211ea9e5af"
MD5_A = "d41d8cd98f00b204e9800998ecf8427e"
SHA_A = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
CSV_HEADER = ",".join(TE_CSV_COLUMNS)
EXT = {"pdq": "txt", "te-csv": "csv", "jsonl": "jsonl"}
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def put(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def export(entries: list[BankEntry], fmt: str) -> str:
    out = io.StringIO(newline="")
    write_entries(entries, out, fmt=fmt)
    return out.getvalue()


def roundtrip(folder: Path, entries: list[BankEntry], fmt: str) -> ImportReport:
    path = folder / f"bank.{EXT[fmt]}"
    with open(path, "w", encoding="utf-8", newline="") as out:
        write_entries(entries, out, fmt=fmt)
    return read_entries(path)


def bare(entry: BankEntry) -> BankEntry:
    return dataclasses.replace(entry, id=None, seq=None)


def strict_error(path: Path, **kwargs: Any) -> ImportFormatError:
    with pytest.raises(ImportFormatError) as info:
        read_entries(path, **kwargs)
    return info.value


# --------------------------------------------------------------------------- strategies

TRICKY_TEXT = [
    "beach.jpg",
    "a,b",
    'say "hi"',
    "two\nlines",
    "cr\rlf\r\n",
    " padded ",
    "=HYPERLINK(1)",
    "#not a comment",
    "ünïcødé 😀 写真",
    "line\u2028separator\x85",
    '{"json": 1}',
    "tab\there",
]
text_fields = st.one_of(
    st.sampled_from(TRICKY_TEXT),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1),
)
times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)).map(
    lambda moment: moment.isoformat() + "Z"
)


def hex_digest(nbytes: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=nbytes, max_size=nbytes).map(bytes.hex)


@st.composite
def bank_entries(
    draw: st.DrawFn, *, needs: tuple[str, ...] = ("pdq", "md5", "sha256")
) -> BankEntry:
    # One of ``needs`` is always drawn (filtering entries without any made
    # whole lists fail too often: Hypothesis' filter_too_much health check).
    present = draw(st.sampled_from(needs))
    values = {
        "sha256": hex_digest(32),
        "md5": hex_digest(16),
        "pdq": st.binary(min_size=32, max_size=32).map(PdqHash),
    }
    digests = {k: draw(v if k == present else st.none() | v) for k, v in values.items()}
    entry = BankEntry(
        label=draw(text_fields),
        sha256=digests["sha256"],
        md5=digests["md5"],
        pdq=digests["pdq"],
        quality=draw(st.none() | st.integers(0, 100)),
        width=draw(st.none() | st.integers(1, 2**31 - 1)),
        height=draw(st.none() | st.integers(1, 2**31 - 1)),
        added_at=draw(times),
        source=draw(st.none() | text_fields),
        id=draw(st.none() | st.integers(1, 2**40)),
        seq=draw(st.none() | st.integers(1, 2**40)),
    )
    return entry


# --------------------------------------------------------------------------- round trips


def test_formats_are_the_command_line_names() -> None:
    assert FORMATS == ("pdq", "te-csv", "jsonl")


@PROPERTY
@given(entries=st.lists(bank_entries(), max_size=8))
def test_jsonl_round_trip_keeps_every_field_but_id_and_seq(
    tmp_path: Path, entries: list[BankEntry]
) -> None:
    report = roundtrip(tmp_path, entries, "jsonl")
    assert report.entries == [bare(e) for e in entries]
    assert report.errors == [] and report.lines_read == len(entries) + 1


@PROPERTY
@given(entries=st.lists(bank_entries(needs=("pdq", "md5")), max_size=8))
def test_te_csv_round_trip_keeps_every_field(tmp_path: Path, entries: list[BankEntry]) -> None:
    report = roundtrip(tmp_path, entries, "te-csv")
    assert report.entries == [bare(e) for e in entries]


@PROPERTY
@given(entries=st.lists(bank_entries(), max_size=8))
def test_pdq_round_trip_keeps_the_hashes_and_reexport_is_identical(
    tmp_path: Path, entries: list[BankEntry]
) -> None:
    report = roundtrip(tmp_path, entries, "pdq")
    assert [e.pdq for e in report.entries] == [e.pdq for e in entries if e.pdq is not None]
    assert export(report.entries, "pdq") == export(entries, "pdq")


def test_write_counts_only_what_the_format_carries() -> None:
    entries = [
        BankEntry(label="both", pdq=PdqHash.from_hex(PDQ_A), md5=MD5_A),
        BankEntry(label="md5 only", md5=MD5_A),
        BankEntry(label="sha256 only", sha256=SHA_A),
    ]
    counts = {fmt: write_entries(entries, io.StringIO(), fmt=fmt) for fmt in FORMATS}
    assert counts == {"pdq": 1, "te-csv": 2, "jsonl": 3}


def test_te_csv_writes_one_row_per_entry_pdq_first_then_photo_md5() -> None:
    entries = [
        BankEntry(
            label="a,b",
            pdq=PdqHash.from_hex(PDQ_A),
            md5=MD5_A,
            quality=87,
            added_at="2026-11-22T03:30:00Z",
        ),
        BankEntry(label="m", md5=MD5_A, added_at="2026-11-22T03:30:00Z", source="x"),
    ]
    text = export(entries, "te-csv")
    assert text.splitlines()[0] == ",".join(TE_CSV_COLUMNS + TAKEBACK_CSV_COLUMNS)
    assert text.split("\r\n")[1:] == [
        f'pdq,{PDQ_A},,,,"a,b",,{MD5_A},87,,,2026-11-22T03:30:00Z,',
        f"photo_md5,{MD5_A},,,,m,,{MD5_A},,,,2026-11-22T03:30:00Z,x",
        "",
    ]


def test_jsonl_export_is_a_header_then_to_dict_per_line() -> None:
    entry = BankEntry(label="ü", pdq=PdqHash.from_hex(PDQ_A), id=7, seq=9)
    lines = export([entry], "jsonl").splitlines()
    assert json.loads(lines[0]) == {"format": "takeback-bank", "version": 1}
    assert json.loads(lines[1]) == entry.to_dict()
    assert lines[1].isascii()  # non-ASCII is escaped: safe for any line splitter


def test_pdq_export_is_bare_lowercase_hex_lines() -> None:
    entries = [BankEntry(label="x", pdq=PdqHash.from_hex(PDQ_A.upper())), BankEntry(label="y")]
    assert export(entries, "pdq") == PDQ_A + "\n"


def test_unknown_format_name_is_an_input_error(tmp_path: Path) -> None:
    path = put(tmp_path, "a.txt", PDQ_A)
    with pytest.raises(InputError, match="unknown format 'csv'"):
        read_entries(path, fmt="csv")
    with pytest.raises(InputError, match="unknown format"):
        write_entries([], io.StringIO(), fmt="xml")


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.csv", "te-csv"),
        ("A.CSV", "te-csv"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.txt", "pdq"),
        ("a.pdq", "pdq"),
    ],
)
def test_detect_by_extension_without_reading(name: str, fmt: str) -> None:
    assert detect_format(Path("/nonexistent") / name) == fmt


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (b"", "pdq"),
        (b"# only a comment\n\n", "pdq"),
        (f"# partner list\n{PDQ_A}\n".encode(), "pdq"),
        (f"pdq {PDQ_A}\n".encode(), "pdq"),
        (b"raw_text hello, world\n", "pdq"),
        (f"\xef\xbb\xbf{CSV_HEADER}\r\n".encode("latin-1"), "te-csv"),
        (b'{"format": "takeback-bank", "version": 1}\n', "jsonl"),
        (b'\n{"pdq": null}', "jsonl"),
    ],
)
def test_detect_by_sniffing(tmp_path: Path, content: bytes, fmt: str) -> None:
    assert detect_format("list", first_bytes=content) == fmt
    assert detect_format(put(tmp_path, "list", content)) == fmt


def test_detect_refuses_content_of_no_format(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match=r"cannot tell the format of junk.bin .*--format"):
        detect_format(put(tmp_path, "junk.bin", b"\n\nGIF89a\x00\x01garbage"))
    with pytest.raises(FileAccessError):
        detect_format(tmp_path / "missing")


def test_read_detects_the_format_itself(tmp_path: Path) -> None:
    entry = BankEntry(label="x", pdq=PdqHash.from_hex(PDQ_A), added_at="2026-11-22T03:30:00Z")
    for fmt in FORMATS:
        path = put(tmp_path, f"export-{fmt}", export([entry], fmt))  # no extension
        assert [e.pdq for e in read_entries(path).entries] == [entry.pdq]


# --------------------------------------------------------------------------- pdq format


def test_pdq_reads_hex_comments_blanks_crlf_bom_and_case(tmp_path: Path) -> None:
    content = f"\ufeff# from partner\r\n\r\n  {PDQ_A.upper()}  \r\n{PDQ_B}"
    report = read_entries(put(tmp_path, "partner.txt", content))
    assert [str(e.pdq) for e in report.entries] == [PDQ_A, PDQ_B]
    assert [e.label for e in report.entries] == ["partner.txt:3", "partner.txt:4"]
    assert {e.source for e in report.entries} == {"imported from partner.txt"}
    assert report.lines_read == 4 and report.errors == [] and report.skipped == {}


def test_pdq_reads_pytx_typed_lines(tmp_path: Path) -> None:
    content = "\n".join(
        [
            f"pdq {PDQ_A}",
            f"PDQ\t{PDQ_B}",
            f"photo_md5 {MD5_A.upper()}",
            f"video_md5 {MD5_A}",
            "url https://example.com/a,b",
            "raw_text The quick brown fox",
            "raw_text jumps",
        ]
    )
    report = read_entries(put(tmp_path, "pytx.txt", content))
    assert [(e.pdq and str(e.pdq), e.md5) for e in report.entries] == [
        (PDQ_A, None),
        (PDQ_B, None),
        (None, MD5_A),
    ]
    assert report.skipped == {"raw_text": 2, "url": 1, "video_md5": 1}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("abc", "'abc' is not a PDQ hash: expected 64 hex digits"),
        (MD5_A, "is not a PDQ hash"),
        (PDQ_A + "0", "is not a PDQ hash"),
        ("g" * 64, "is not a PDQ hash"),
        ("pdq " + PDQ_A[:-1], "is not a PDQ hash"),
        ("photo_md5 " + PDQ_A, "is not an MD5 digest: expected 32 hex digits"),
        ("md5 " + MD5_A, "'md5' is not a signal type TakeBack reads"),
        (f"{PDQ_A} photo.jpg", "expected one PDQ hash on the line"),
        (f"{PDQ_A},90,photo.jpg", "is not a PDQ hash"),
    ],
)
def test_pdq_bad_line_names_file_line_and_problem(tmp_path: Path, line: str, message: str) -> None:
    path = put(tmp_path, "partner.txt", f"# header\n{PDQ_A}\n{line}\n{PDQ_B}\n")
    error = strict_error(path)
    assert error.line == 3 and error.path == str(path)
    assert str(error).startswith("partner.txt line 3: ")
    assert message in str(error)
    assert str(error).endswith("; fix the line or pass --skip-bad")


def test_pdq_error_message_is_exactly_the_documented_one(tmp_path: Path) -> None:
    error = strict_error(put(tmp_path, "partner.txt", f"{PDQ_A}\n\nabc\n"))
    assert str(error) == (
        "partner.txt line 3: 'abc' is not a PDQ hash: expected 64 hex digits; "
        "fix the line or pass --skip-bad"
    )


def test_label_and_source_given_by_the_caller_fill_in_where_the_line_has_none(
    tmp_path: Path,
) -> None:
    own = BankEntry(label="own", pdq=PdqHash.from_hex(PDQ_A), source="own source")
    unsourced = BankEntry(label="other", pdq=PdqHash.from_hex(PDQ_B), source=None)
    expected = {
        "pdq": [("Partner X", "partner X, 2026-11")] * 2,
        "te-csv": [("own", "own source"), ("other", "partner X, 2026-11")],
        "jsonl": [("own", "own source"), ("other", "partner X, 2026-11")],
    }
    for fmt in FORMATS:
        path = put(tmp_path, f"x.{EXT[fmt]}", export([own, unsourced], fmt))
        report = read_entries(path, label="Partner X", source="partner X, 2026-11")
        assert [(e.label, e.source) for e in report.entries] == expected[fmt], fmt
    lines = [json.dumps({"pdq": PDQ_A, "label": None}), json.dumps({"pdq": PDQ_B})]
    report = read_entries(put(tmp_path, "y.jsonl", "\n".join(lines)), label="L", source="S")
    assert [(e.label, e.source) for e in report.entries] == [("L", "S"), ("L", "S")]
    rows = f"signal_type,signal_str,label,collab\npdq,{PDQ_A},,c\npdq,{PDQ_B},mine,c\n"
    report = read_entries(put(tmp_path, "y.csv", rows), label="L", source="S")
    assert [(e.label, e.source) for e in report.entries] == [("L", "S"), ("mine", "S")]


def test_entries_of_one_import_share_its_time(tmp_path: Path) -> None:
    report = read_entries(put(tmp_path, "a.txt", f"{PDQ_A}\n{PDQ_B}\n"))
    first, second = report.entries
    assert first.added_at == second.added_at
    assert datetime.fromisoformat(first.added_at).tzinfo is not None


# --------------------------------------------------------------------------- te-csv format


def dataset_cmd_csv(rows: list[tuple[str, str, str, str, str]]) -> str:
    """A CSV written the way ``threatexchange dataset -P --csv`` writes it."""
    out = io.StringIO()
    writer = csv.DictWriter(out, list(TE_CSV_COLUMNS))
    writer.writeheader()
    for row in rows:
        writer.writerow(dict(zip(TE_CSV_COLUMNS, row, strict=True)))
    return out.getvalue()


def test_te_csv_reads_a_dataset_cmd_export(tmp_path: Path) -> None:
    content = dataset_cmd_csv(
        [
            ("raw_text", 'We the People, "in Order"', "Sample Signals", "INVESTIGATION_SEED", ""),
            ("pdq", PDQ_A, "Sample Signals", "INVESTIGATION_SEED", ""),
            ("pdq", PDQ_B, "NCII, partner", "POSITIVE_CLASS", "ncii reviewed"),
            ("photo_md5", MD5_A, "Old pytx", "POSITIVE_CLASS", ""),
            ("video_md5", MD5_A, "Sample Signals", "INVESTIGATION_SEED", ""),
            ("url_md5", MD5_A, "Sample Signals", "INVESTIGATION_SEED", ""),
        ]
    )
    report = read_entries(put(tmp_path, "partner.csv", content))
    assert [(e.pdq and str(e.pdq), e.md5, e.label) for e in report.entries] == [
        (PDQ_A, None, "partner.csv:3"),
        (PDQ_B, None, "partner.csv:4"),
        (None, MD5_A, "partner.csv:5"),
    ]
    assert [e.source for e in report.entries] == [
        "imported from partner.csv (collab 'Sample Signals', category INVESTIGATION_SEED)",
        "imported from partner.csv (collab 'NCII, partner', category POSITIVE_CLASS, "
        "tags ncii reviewed)",
        "imported from partner.csv (collab 'Old pytx', category POSITIVE_CLASS)",
    ]
    assert all(e.quality is None and e.sha256 is None for e in report.entries)
    assert report.skipped == {"raw_text": 1, "url_md5": 1, "video_md5": 1}


def test_te_csv_accepts_any_column_order_extra_columns_and_header_case(tmp_path: Path) -> None:
    content = (
        "\ufeffNote, Signal_Str ,collab,SIGNAL_TYPE,quality\n"
        f"hello,{PDQ_A},c,pdq,42\n"
        f"short row,{PDQ_B},c,pdq\n"  # a trailing column left out: read as empty
    )
    report = read_entries(put(tmp_path, "p.csv", content))
    assert [(str(e.pdq), e.quality) for e in report.entries] == [(PDQ_A, 42), (PDQ_B, None)]


@pytest.mark.parametrize(
    "header",
    ["signal_type,collab,category,tags", "signal,hash", "pdq," + PDQ_A],
)
def test_te_csv_without_required_columns_fails_even_with_skip_bad(
    tmp_path: Path, header: str
) -> None:
    path = put(tmp_path, "p.csv", f"\n{header}\npdq,{PDQ_A}\n")
    error = strict_error(path, skip_bad=True)
    assert error.line == 2
    assert "ThreatExchange CSV starts with the header signal_type,signal_str" in str(error)


def test_te_csv_semicolons_get_a_hint_and_duplicates_are_refused(tmp_path: Path) -> None:
    error = strict_error(put(tmp_path, "p.csv", "signal_type;signal_str\npdq;x\n"))
    assert "separate the fields with commas" in str(error)
    error = strict_error(put(tmp_path, "q.csv", "signal_type,signal_str,label,Label\n"))
    assert "names the column 'label' twice" in str(error)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (f"pdq,{PDQ_A[:60]},,,,x,,,,,,,", "is not a PDQ hash"),
        (f"pdq,{PDQ_A},,,,x,,,101,,,,", "quality must be between 0 and 100, not 101"),
        (f"pdq,{PDQ_A},,,,x,,,-1,,,,", "quality must be a whole number"),
        (f"pdq,{PDQ_A},,,,x,,,87.5,,,,", "quality must be a whole number"),
        (f"pdq,{PDQ_A},,,,x,,,abc,,,,", "quality must be a whole number"),
        (f"pdq,{PDQ_A},,,,x,,,,0,,,", "width must be between 1"),
        (f"pdq,{PDQ_A},,,,x,,,,,١٢,,", "height must be a whole number"),
        (f"pdq,{PDQ_A},,,,x,{SHA_A[:-2]},,,,,,", "is not an SHA-256 digest: expected 64"),
        (f"pdq,{PDQ_A},,,,x,,{MD5_A}0,,,,,", "is not an MD5 digest: expected 32"),
        (f"photo_md5,{MD5_A},,,,x,,{'0' * 32},,,,,", "md5 column differs"),
        (f"pdq,{PDQ_A},,,,x,,,,,,yesterday,", "added_at 'yesterday' is not an ISO 8601 time"),
        (f"pdq,{PDQ_A},,,,x,,,,,,2026-11-22T03:30:00,", "has no time zone"),
        (f",{PDQ_A},,,,x,,,,,,,", "signal_type is empty"),
        (f"tmk,{PDQ_A},,,,x,,,,,,,", "signal type 'tmk' is not one TakeBack reads"),
        (f"pdq,{PDQ_A},,,,a,b,,,,,,,", "the row has 14 fields but the header names 13"),
        (f'pdq,{PDQ_A},,,,"x"y,,,,,,,', "is not valid CSV"),
    ],
)
def test_te_csv_bad_row_names_the_line(tmp_path: Path, row: str, message: str) -> None:
    header = ",".join(TE_CSV_COLUMNS + TAKEBACK_CSV_COLUMNS)
    good = f"pdq,{PDQ_B},,,,ok,,,,,,,"
    path = put(tmp_path, "partner.csv", f"{header}\r\n{good}\r\n{row}\r\n{good}\r\n")
    error = strict_error(path)
    assert error.line == 3 and str(error).startswith("partner.csv line 3: ")
    assert message in str(error)
    report = read_entries(path, skip_bad=True)
    assert [e.label for e in report.entries] == ["ok", "ok"]
    assert [e.line for e in report.errors] == [3] and report.bad_lines == 1


def test_te_csv_line_numbers_count_newlines_inside_quoted_fields(tmp_path: Path) -> None:
    rows = ["signal_type,signal_str,label", f'pdq,{PDQ_A},"three\nline\nlabel"', f"pdq,{PDQ_B},"]
    content = "\n".join([*rows, "pdq,bad,x", ""])
    path = put(tmp_path, "p.csv", content)
    report = read_entries(path, skip_bad=True)
    assert [e.label for e in report.entries] == ["three\nline\nlabel", "p.csv:5"]
    assert [e.line for e in report.errors] == [6]
    assert report.lines_read == 6


def test_te_csv_unclosed_quote_is_reported_where_the_record_starts(tmp_path: Path) -> None:
    path = put(tmp_path, "p.csv", f'signal_type,signal_str,label\npdq,{PDQ_A},"open\nmore\n')
    error = strict_error(path)
    assert error.line == 2 and "not valid CSV (unexpected end of data)" in str(error)


def test_te_csv_header_only_and_blank_rows_give_no_entries(tmp_path: Path) -> None:
    report = read_entries(put(tmp_path, "p.csv", f"{CSV_HEADER}\r\n\r\n,,,,\r\n"))
    assert report.entries == [] and report.errors == [] and report.lines_read == 3


# --------------------------------------------------------------------------- jsonl format


def test_jsonl_without_header_with_repeated_header_and_defaults(tmp_path: Path) -> None:
    lines = [
        json.dumps({"pdq": PDQ_A.upper()}),
        "",
        json.dumps({"format": "takeback-bank", "version": 1}),  # cat a.jsonl b.jsonl
        json.dumps({"md5": MD5_A, "label": None, "source": None, "id": "ignored", "seq": [1]}),
        json.dumps({"sha256": SHA_A, "added_at": "2026-11-22T04:30:00+01:00", "future": 1}),
    ]
    report = read_entries(put(tmp_path, "b.jsonl", "\n".join(lines)))
    first, second, third = report.entries
    assert (str(first.pdq), first.label, first.source) == (
        PDQ_A,
        "b.jsonl:1",
        "imported from b.jsonl",
    )
    assert (second.md5, second.label, second.source, second.id) == (MD5_A, "b.jsonl:4", None, None)
    assert (third.sha256, third.added_at) == (SHA_A, "2026-11-22T03:30:00Z")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"format": "hma-bank", "version": 1}, "the header says format 'hma-bank'"),
        ({"format": "takeback-bank", "version": 2}, "newer than this TakeBack reads (1)"),
        ({"format": "takeback-bank", "version": "1"}, "the header has version '1'"),
        ({"format": "takeback-bank"}, "the header has version None"),
    ],
)
def test_jsonl_foreign_or_newer_header_fails_even_with_skip_bad(
    tmp_path: Path, header: dict[str, object], message: str
) -> None:
    path = put(tmp_path, "b.jsonl", json.dumps(header) + "\n" + json.dumps({"pdq": PDQ_A}))
    error = strict_error(path, skip_bad=True)
    assert error.line == 1 and message in str(error)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("[1, 2]", "expected a JSON object {...}, found an array"),
        ('"pdq"', "found a string"),
        ("42", "found a number"),
        ("null", "found null"),
        ('{"pdq": "', "the line is not valid JSON (Unterminated string"),
        ("{'pdq': 1}", "not valid JSON (Expecting property name enclosed in double quotes"),
        (f'{{"pdq": "{PDQ_A}"}} {{}}', "more than one JSON value (extra data at column"),
        ('{"label": "x"}', "has no pdq, md5 or sha256"),
        (f'{{"pdq": "{PDQ_A[:62]}"}}', "is not a PDQ hash: expected 64 hex digits"),
        ('{"pdq": 12}', "pdq must be a string or null, found 12"),
        (f'{{"md5": "{MD5_A}00"}}', "is not an MD5 digest: expected 32 hex digits"),
        (f'{{"sha256": "{MD5_A}"}}', "is not an SHA-256 digest: expected 64 hex digits"),
        (f'{{"pdq": "{PDQ_A}", "label": 5}}', "label must be a string or null, found 5"),
        (f'{{"pdq": "{PDQ_A}", "quality": 101}}', "quality must be between 0 and 100, not 101"),
        (f'{{"pdq": "{PDQ_A}", "quality": -1}}', "quality must be between 0 and 100, not -1"),
        (f'{{"pdq": "{PDQ_A}", "quality": "87"}}', 'found "87"'),
        (
            f'{{"pdq": "{PDQ_A}", "quality": true}}',
            "quality must be a whole number between 0 and 100 or null, found true",
        ),
        (f'{{"pdq": "{PDQ_A}", "quality": 87.0}}', "found 87.0"),
        (f'{{"pdq": "{PDQ_A}", "quality": NaN}}', "found NaN"),
        (f'{{"pdq": "{PDQ_A}", "width": 0}}', "width must be between 1 and 2147483647"),
        (f'{{"pdq": "{PDQ_A}", "height": {2**31}}}', "height must be between 1"),
        (
            f'{{"pdq": "{PDQ_A}", "added_at": 1732246200}}',
            "added_at must be a string or null, found 1732246200",
        ),
        (f'{{"pdq": "{PDQ_A}", "added_at": "2026-11-22"}}', "has no time zone"),
        (f'{{"pdq": "{PDQ_A}", "added_at": "0001-01-01T00:00:00+01:00"}}', "is not an ISO 8601"),
        (f'{{"pdq": "{PDQ_A}", "label": "a\\u0000b"}}', "the label contains a NUL character"),
        (f'{{"pdq": "{PDQ_A}", "source": "\\ud800"}}', "the source is not valid Unicode"),
        ("[" * 100_000, "not valid JSON (nested too deeply)"),
        ('{"quality": ' + "9" * 5000 + "}", "not valid JSON (Exceeds the limit"),
    ],
)
def test_jsonl_bad_line_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    good = json.dumps({"pdq": PDQ_B, "label": "ok"})
    path = put(
        tmp_path,
        "bank.jsonl",
        f'{{"format":"takeback-bank","version":1}}\n{good}\n{line}\n{good}\n',
    )
    error = strict_error(path)
    assert error.line == 3 and str(error).startswith("bank.jsonl line 3: ")
    assert message in str(error)
    report = read_entries(path, skip_bad=True)
    assert [e.label for e in report.entries] == ["ok", "ok"]
    assert [e.line for e in report.errors] == [3]


# --------------------------------------------------------------------------- hostile files


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_file_is_valid_and_has_no_entries(tmp_path: Path, fmt: str) -> None:
    report = read_entries(put(tmp_path, f"empty.{EXT[fmt]}", b""))
    assert report == ImportReport(entries=[], errors=[], lines_read=0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_binary_junk_is_an_import_error(tmp_path: Path, fmt: str) -> None:
    junk = random.Random(7).randbytes(200_000)
    path = put(tmp_path, f"photo.{EXT[fmt]}", junk)
    error = strict_error(path)
    assert error.line is not None and str(error).startswith(f"photo.{EXT[fmt]} line ")
    try:
        report = read_entries(path, skip_bad=True, max_errors_reported=5)
    except ImportFormatError:  # te-csv: no usable header is fatal
        assert fmt == "te-csv"
    else:
        assert report.entries == [] and len(report.errors) == 5 and report.bad_lines > 5


@pytest.mark.parametrize("fmt", FORMATS)
def test_not_utf8_names_the_byte_and_line(tmp_path: Path, fmt: str) -> None:
    lines = {
        "pdq": [PDQ_A, "caf\xe9"],
        "te-csv": [CSV_HEADER, f"pdq,{PDQ_A},caf\xe9,,"],
        "jsonl": [json.dumps({"pdq": PDQ_A}), '{"label": "caf\xe9"}'],
    }[fmt]
    path = put(tmp_path, f"l.{EXT[fmt]}", "\n".join(lines).encode("latin-1"))
    error = strict_error(path)
    assert error.line == 2
    assert "the line is not UTF-8 text (byte 0xe9 at position" in str(error)
    assert "save the file as UTF-8" in str(error)


@pytest.mark.parametrize("fmt", FORMATS)
def test_utf16_file_is_refused_with_advice(tmp_path: Path, fmt: str) -> None:
    path = put(tmp_path, f"l.{EXT[fmt]}", f"{PDQ_A}\n".encode("utf-16"))
    error = strict_error(path, skip_bad=True)
    assert error.line == 1 and "UTF-16 text; save it as UTF-8" in str(error)


@pytest.mark.parametrize("fmt", FORMATS)
def test_nul_bytes_are_refused(tmp_path: Path, fmt: str) -> None:
    first = {"pdq": PDQ_A, "te-csv": CSV_HEADER, "jsonl": json.dumps({"pdq": PDQ_A})}[fmt]
    path = put(tmp_path, f"l.{EXT[fmt]}", f"{first}\nab\x00cd\n".encode())
    error = strict_error(path)
    assert error.line == 2 and "NUL bytes; this looks like a binary file" in str(error)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("newline_after", [True, False])
def test_huge_line_is_refused_and_skipped_in_constant_memory(
    tmp_path: Path, fmt: str, newline_after: bool
) -> None:
    first = {
        "pdq": f"# list\n{PDQ_A}",
        "te-csv": f"{CSV_HEADER}\npdq,{PDQ_A},,,",
        "jsonl": json.dumps({"pdq": PDQ_A}) + "\n",
    }[fmt]
    huge = b"a" * (20 * MAX_LINE_BYTES + 12345)
    last = {"pdq": PDQ_B, "te-csv": f"pdq,{PDQ_B},,,", "jsonl": json.dumps({"pdq": PDQ_B})}[fmt]
    tail = f"\n{last}\n".encode() if newline_after else b""
    path = put(tmp_path, f"l.{EXT[fmt]}", first.encode() + b"\n" + huge + tail)
    bad_line = first.count("\n") + 2
    error = strict_error(path)
    assert error.line == bad_line and f"longer than {MAX_LINE_BYTES} bytes" in str(error)
    tracemalloc.start()
    try:
        report = read_entries(path, skip_bad=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * MAX_LINE_BYTES  # a few chunks, never the whole line
    assert [e.line for e in report.errors] == [bad_line]
    expected = [PDQ_A, PDQ_B] if newline_after else [PDQ_A]
    assert [str(e.pdq) for e in report.entries] == expected
    assert report.lines_read == bad_line + (1 if newline_after else 0)


def test_a_line_of_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    comment = b"#" + b"x" * (MAX_LINE_BYTES - 1)
    path = put(tmp_path, "l.txt", comment + b"\n" + PDQ_A.encode() + b"\n" + comment)
    assert [str(e.pdq) for e in read_entries(path).entries] == [PDQ_A]


@pytest.mark.parametrize("name", ["chunks.txt", "chunks"])  # "chunks": sniffed first
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_lines_across_read_chunks_keep_their_numbers(
    tmp_path: Path, name: str, newline: str
) -> None:
    # 1 MiB chunks (after a 64 KiB head when sniffing) cut lines anywhere: put a
    # comment with multi-byte characters and a bad line across every boundary.
    lines = []
    size = 0
    bad = []
    for boundary in (1 << 16, 1 << 20, (1 << 20) + (1 << 16), 2 << 20):
        while size + 70 < boundary - 40:
            lines.append(PDQ_A)
            size += len(PDQ_A) + len(newline)
        filler = "#" + "x" * (boundary - 31 - size - 1 - len(newline))
        lines.append(filler)
        size += len(filler) + len(newline)
        comment = "# " + "é" * 30  # 62 bytes from boundary - 31: a "é" is cut in two
        lines.append(comment)
        size += len(comment.encode()) + len(newline)
        lines.append(PDQ_B[:-1] + "x")
        size += len(PDQ_B) + len(newline)
        bad.append(len(lines))
    path = put(tmp_path, name, newline.join([*lines, PDQ_B]))
    report = read_entries(path, skip_bad=True)
    assert [e.line for e in report.errors] == bad
    assert len(report.entries) == lines.count(PDQ_A) + 1
    assert report.entries[-1].label == f"{name}:{len(lines) + 1}"
    assert report.lines_read == len(lines) + 1


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    with open(path, "wb") as out:
        for _ in range(40):
            out.write((b"#" + b"c" * 999 + b"\n") * 1000)  # 40 MB of comments
        out.write(PDQ_A.encode())
    tracemalloc.start()
    try:
        report = read_entries(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(report.entries) == 1 and report.lines_read == 40_001
    assert peak < 12 * 2**20


def test_skip_bad_collects_errors_in_order_and_caps_them(tmp_path: Path) -> None:
    lines = [PDQ_A if i % 3 else f"bad{i}" for i in range(1, 301)]
    path = put(tmp_path, "p.txt", "\n".join(lines))
    report = read_entries(path, skip_bad=True, max_errors_reported=10)
    assert len(report.entries) == 200 and report.bad_lines == 100
    assert [e.line for e in report.errors] == list(range(3, 31, 3))
    assert str(report.errors[0]) == (
        "p.txt line 3: 'bad3' is not a PDQ hash: expected 64 hex digits"
    )
    assert report.lines_read == 300


@PROPERTY
@given(
    kinds=st.lists(st.sampled_from(["good", "bad", "blank", "comment", "skip"]), max_size=40),
    skip_bad=st.booleans(),
)
@example(kinds=["bad", "good"], skip_bad=False)
def test_line_numbers_are_exact(tmp_path: Path, kinds: list[str], skip_bad: bool) -> None:
    text = {"good": PDQ_A, "bad": PDQ_A[1:], "blank": "  ", "comment": "# c", "skip": "url x"}
    path = put(tmp_path, "p.txt", "\n".join(text[k] for k in kinds))
    good = [i for i, k in enumerate(kinds, 1) if k == "good"]
    bad = [i for i, k in enumerate(kinds, 1) if k == "bad"]
    if bad and not skip_bad:
        assert strict_error(path).line == bad[0]
        return
    report = read_entries(path, skip_bad=skip_bad)
    assert [e.label for e in report.entries] == [f"p.txt:{i}" for i in good]
    assert [e.line for e in report.errors] == bad
    assert report.skipped == ({"url": kinds.count("skip")} if "skip" in kinds else {})


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=600),
        st.lists(
            st.sampled_from(
                [
                    PDQ_A,
                    "pdq " + PDQ_A,
                    CSV_HEADER,
                    f"pdq,{PDQ_A},,,",
                    f"photo_md5,{MD5_A}",
                    '"',
                    '{"pdq": "' + PDQ_A + '"}',
                    '{"format": "takeback-bank", "version": 1}',
                    "{",
                    "[]",
                    "\x00",
                    "\udcff",
                    "é",
                    ",",
                    "\r",
                    "\ufeff",
                    "9" * 20,
                    "url x",
                    '{"quality": 1e999}',
                    '{"added_at": "9999-12-31T23:59:59-01:00"}',
                ]
            ),
            max_size=12,
        ).map(lambda parts: "\n".join(parts).encode("utf-8", "surrogateescape")),
    ),
    fmt=st.sampled_from((*FORMATS, None)),
    skip_bad=st.booleans(),
)
def test_nothing_but_import_format_errors_escape(
    tmp_path: Path, content: bytes, fmt: str | None, skip_bad: bool
) -> None:
    path = put(tmp_path, "fuzz", content)
    try:
        report = read_entries(path, fmt=fmt, skip_bad=skip_bad)
    except ImportFormatError as exc:
        assert str(exc).startswith(("fuzz line ", "cannot tell the format of fuzz"))
        return
    assert isinstance(report, ImportReport)
    for entry in report.entries:
        assert entry.pdq is not None or entry.md5 is not None or entry.sha256 is not None


# --------------------------------------------------------------------------- files


def test_missing_file_and_directory_are_file_access_errors(tmp_path: Path) -> None:
    with pytest.raises(FileAccessError, match=r"missing\.txt does not exist"):
        read_entries(tmp_path / "missing.txt")
    with pytest.raises(FileAccessError, match="is a directory"):
        read_entries(tmp_path, fmt="pdq")


def test_a_device_is_refused_rather_than_read_forever() -> None:
    with pytest.raises(FileAccessError, match="a device or socket"):
        read_entries("/dev/zero", fmt="pdq", skip_bad=True)


def test_unreadable_file_is_a_file_access_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = put(tmp_path, "secret.txt", PDQ_A)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads anything: refuse the open as the kernel would
        import builtins

        real_open = builtins.open

        def refuse(file: object, *args: object, **kwargs: object) -> object:
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

        monkeypatch.setattr(builtins, "open", refuse)
    with pytest.raises(FileAccessError, match="permission denied"):
        read_entries(path)


def test_a_pipe_is_read_and_sniffed(tmp_path: Path) -> None:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    content = f"{PDQ_A}\npdq {PDQ_B}\n"

    def feed() -> None:  # in small pieces, as a slow producer would
        with open(path, "w", encoding="utf-8") as out:
            for piece in (content[:10], content[10:70], content[70:]):
                out.write(piece)
                out.flush()
                time.sleep(0.05)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        report = read_entries(path)
    finally:
        writer.join(timeout=10)
    assert [str(e.pdq) for e in report.entries] == [PDQ_A, PDQ_B]


def test_reading_a_million_hashes_is_fast(tmp_path: Path) -> None:
    rng = random.Random(3)
    lines = 200_000
    path = tmp_path / "big.txt"
    path.write_text("".join(f"{rng.randbytes(32).hex()}\n" for _ in range(lines)))
    start = time.process_time()
    report = read_entries(path)
    elapsed = time.process_time() - start
    assert len(report.entries) == lines
    # ~5 s per million lines on a busy 2-core machine; the bound leaves room for slow CI.
    assert elapsed < 10, f"{lines} lines took {elapsed:.1f} s"


# --------------------------------------------------------------------------- python-threatexchange


def test_skipped_types_are_pytx_signal_type_names() -> None:
    pytest.importorskip("threatexchange")
    from threatexchange.cli.main import _DEFAULT_SIGNAL_TYPES

    names = {s.get_name() for s in _DEFAULT_SIGNAL_TYPES}
    assert names - {"pdq"} <= SKIPPED_SIGNAL_TYPES
    assert "photo_md5" not in names  # gone from pytx 1.x; still read for older partners


def test_pytx_local_file_api_reads_our_pdq_export(tmp_path: Path) -> None:
    pytest.importorskip("threatexchange")
    from threatexchange.exchanges.impl.file_api import (
        FileCollaborationConfig,
        LocalFileSignalExchangeAPI,
    )
    from threatexchange.signal_type.pdq.signal import PdqSignal

    rng = random.Random(5)
    entries = [BankEntry(label=str(i), pdq=PdqHash(rng.randbytes(32))) for i in range(50)]
    path = tmp_path / "export.txt"
    with open(path, "w", encoding="utf-8", newline="") as out:
        write_entries(entries, out, fmt="pdq")
    collab = FileCollaborationConfig(
        name="takeback", api="local_file", enabled=True, filename=str(path), signal_type="pdq"
    )
    api = LocalFileSignalExchangeAPI.for_collab(collab)
    (delta,) = api.fetch_iter([PdqSignal], None)
    by_type = LocalFileSignalExchangeAPI.naive_convert_to_signal_type(
        [PdqSignal], collab, delta.updates
    )
    assert set(by_type[PdqSignal]) == {str(e.pdq) for e in entries}
    for line in path.read_text().splitlines():
        assert PdqSignal.validate_signal_str(line) == line


def test_we_read_lines_in_the_pytx_local_file_format(tmp_path: Path) -> None:
    """``TYPE SIGNAL`` lines, as LocalFileSignalExchangeAPI.report_opinion appends them.

    (report_opinion itself cannot be called: pytx 1.2.17 opens the file with the
    invalid mode "wta" and raises ValueError.)
    """
    pytest.importorskip("threatexchange")
    from threatexchange.exchanges.impl.file_api import (
        FileCollaborationConfig,
        LocalFileSignalExchangeAPI,
    )
    from threatexchange.signal_type.md5 import VideoMD5Signal
    from threatexchange.signal_type.pdq.signal import PdqSignal

    signals = [(PdqSignal, PDQ_A), (VideoMD5Signal, MD5_A), (PdqSignal, PDQ_B)]
    path = put(tmp_path, "pytx.txt", "".join(f"{t.get_name()} {s}\n" for t, s in signals))
    collab = FileCollaborationConfig(name="p", api="local_file", enabled=True, filename=str(path))
    (delta,) = LocalFileSignalExchangeAPI.for_collab(collab).fetch_iter([PdqSignal], None)
    assert set(delta.updates) == {(t.get_name(), s) for t, s in signals}  # pytx agrees
    report = read_entries(path)
    assert [str(e.pdq) for e in report.entries] == [PDQ_A, PDQ_B]
    assert report.skipped == {"video_md5": 1}


def test_we_read_csv_written_as_dataset_cmd_does_with_pytx_metadata(tmp_path: Path) -> None:
    pytest.importorskip("threatexchange")
    from threatexchange.exchanges.fetch_state import FetchedSignalMetadata
    from threatexchange.signal_type.pdq.signal import PdqSignal

    agg = FetchedSignalMetadata().get_as_aggregate_opinion()
    rows = [
        ("pdq", example, "Sample Signals", agg.category.name, " ".join(agg.tags))
        for example in PdqSignal.get_examples()
    ]
    report = read_entries(put(tmp_path, "sample.csv", dataset_cmd_csv(rows)))
    assert [str(e.pdq) for e in report.entries] == PdqSignal.get_examples()


def run_pytx(home: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "threatexchange.cli.main", *args],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_real_threatexchange_cli_round_trip(tmp_path: Path) -> None:
    """TakeBack pdq export -> pytx local_file collab -> ``dataset -P --csv`` -> TakeBack."""
    pytest.importorskip("threatexchange")
    rng = random.Random(11)
    entries = [BankEntry(label=str(i), pdq=PdqHash(rng.randbytes(32))) for i in range(20)]
    export_path = tmp_path / "takeback-export.txt"
    with open(export_path, "w", encoding="utf-8", newline="") as out:
        write_entries(entries, out, fmt="pdq")
    home = tmp_path / "home"
    home.mkdir()
    run_pytx(
        home,
        "config",
        "collab",
        "edit",
        "local_file",
        "--create",
        "--filename",
        str(export_path),
        "--signal-type",
        "pdq",
        "takeback",
    )
    run_pytx(home, "fetch")
    csv_path = put(tmp_path, "dataset.csv", run_pytx(home, "dataset", "-P", "--csv"))
    report = read_entries(csv_path)
    assert sorted(str(e.pdq) for e in report.entries) == sorted(str(e.pdq) for e in entries)
    assert {e.source for e in report.entries} == {
        "imported from dataset.csv (collab 'takeback', category INVESTIGATION_SEED)"
    }


def test_real_threatexchange_sample_dataset_is_read(tmp_path: Path) -> None:
    """The sample data pytx ships: pdq rows read, every other signal type skipped."""
    pytest.importorskip("threatexchange")
    from threatexchange.signal_type.pdq.signal import PdqSignal

    home = tmp_path / "home"
    home.mkdir()
    csv_path = put(tmp_path, "sample.csv", run_pytx(home, "dataset", "-P", "--csv"))
    report = read_entries(csv_path)
    assert sorted(str(e.pdq) for e in report.entries) == sorted(PdqSignal.get_examples())
    assert set(report.skipped) <= SKIPPED_SIGNAL_TYPES and report.skipped


# --------------------------------------------------------------------------- docs/formats.md


def doc_blocks(start: str) -> list[str]:
    """The fenced code blocks of docs/formats.md that start with ``start``."""
    doc = (Path(__file__).parents[1] / "docs" / "formats.md").read_text(encoding="utf-8")
    return [b for b in re.findall(r"```\n(.*?)```", doc, re.S) if b.startswith(start)]


def test_the_documented_examples_are_what_the_code_does(tmp_path: Path) -> None:
    (pdq_example,) = doc_blocks("# hashes from partner X")
    report = read_entries(put(tmp_path, "list.txt", pdq_example))
    assert [e.label for e in report.entries] == ["list.txt:2", "list.txt:3", "list.txt:4"]
    assert report.skipped == {"video_md5": 1}

    (partner,) = doc_blocks(f"{CSV_HEADER}\nraw_text")
    (takeback,) = doc_blocks(",".join(TE_CSV_COLUMNS + TAKEBACK_CSV_COLUMNS) + "\npdq")
    report = read_entries(put(tmp_path, "partner.csv", partner))
    assert [e.label for e in report.entries] == ["partner.csv:3"]
    assert report.skipped == {"raw_text": 1, "video_md5": 1}

    beach = BankEntry(
        label="beach, 2019.jpg",
        sha256=SHA_A,
        md5=MD5_A,
        pdq=PdqHash.from_hex(PDQ_A),
        quality=87,
        width=4032,
        height=3024,
        added_at="2026-11-22T03:30:00Z",
        id=1,
        seq=1,
    )
    old = BankEntry(
        label="old.gif",
        md5=MD5_A,
        added_at="2026-11-22T03:31:00Z",
        source="imported from partner.txt",
    )
    photo = BankEntry(
        label="写真.png",
        pdq=PdqHash.from_hex(PDQ_B),
        added_at="2026-11-22T03:31:00Z",
        source="imported from partner.txt",
        id=2,
        seq=2,
    )
    assert export([beach, old], "te-csv") == takeback.replace("\n", "\r\n")
    assert read_entries(put(tmp_path, "export.csv", takeback)).entries == [bare(beach), old]
    (jsonl_example,) = doc_blocks('{"format"')
    assert export([beach, photo], "jsonl") == jsonl_example
    assert read_entries(put(tmp_path, "e.jsonl", jsonl_example)).entries == [
        bare(beach),
        bare(photo),
    ]
