"""The public API stays small and explicit; no third-party error leaks out of it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import takeback
from takeback import errors
from takeback.errors import TakeBackError


def test_public_names_are_exactly_all() -> None:
    public = {
        n
        for n in dir(takeback)
        if not n.startswith("_") and not inspect.ismodule(getattr(takeback, n))
    }
    assert public == set(takeback.__all__) - {"__version__"}
    for name in takeback.__all__:
        assert getattr(takeback, name) is not None


def test_every_module_declares_all_and_it_resolves() -> None:
    for info in pkgutil.walk_packages(takeback.__path__, "takeback."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        assert names is not None, f"{info.name} has no __all__"
        for name in names:
            assert hasattr(module, name), f"{info.name}.__all__ names missing {name}"


def test_error_tree_codes_are_unique_and_documented() -> None:
    classes = [
        c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, TakeBackError)
    ]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    doc = errors.__doc__ or ""
    for cls in classes:
        assert cls.__name__ in doc and cls.code in doc, cls.__name__


def _all_error_classes() -> set[type[TakeBackError]]:
    """Every TakeBackError subclass defined anywhere in the package."""
    for info in pkgutil.walk_packages(takeback.__path__, "takeback."):
        if not info.name.endswith("__main__"):
            importlib.import_module(info.name)
    todo, seen = [TakeBackError], set()
    while todo:
        cls = todo.pop()
        seen.add(cls)
        todo.extend(c for c in cls.__subclasses__() if c.__module__.startswith("takeback"))
    return seen


def test_cli_contract_lists_every_error_code() -> None:
    contract = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    for cls in _all_error_classes():
        if cls.code not in {"error", "input_error", "image_error"}:
            assert f"`{cls.code}`" in contract, f"{cls.__module__}.{cls.__name__}: {cls.code}"


def _open_junk_bank(directory: Path) -> None:
    (directory / "bank.sqlite3").write_bytes(b"x" * 4096)
    takeback.SqliteStore.open(directory)


@pytest.mark.parametrize(
    "call",
    [
        lambda tmp: takeback.fingerprint_file(tmp / "missing.jpg"),
        lambda tmp: takeback.fingerprint_file(tmp),
        lambda tmp: takeback.fingerprint_bytes(b"\x00" * 100),
        lambda tmp: takeback.fingerprint_bytes(b"\xff\xd8\xff" + b"\x00" * 5000),
        lambda tmp: takeback.PdqHash.from_hex("zz"),
        lambda tmp: takeback.SqliteStore.open(tmp / "none"),
        lambda tmp: _open_junk_bank(tmp / "junk"),
    ],
)
def test_only_takeback_errors_escape(tmp_path: Path, call) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "junk").mkdir()
    with pytest.raises(TakeBackError):
        call(tmp_path)
