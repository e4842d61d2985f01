"""The chain-of-custody log: one JSON object per step, each hashed over the previous.

A step (one line of ``custody.jsonl``)::

    {"seq": 1, "action": "acquire", "what": "...", "when": "2026-05-01T10:00:00.000Z",
     "actor": {"software": "takeback 0.1.0", "operator": "Alex Doe"},
     "inputs": [{"name": "downloaded.jpg", "sha256": "..."}],
     "outputs": [{"path": "evidence/suspect.jpg", "sha256": "...", "size": 123}],
     "prev": "<hash of step seq-1, or 64 zeros>", "hash": "<this step's hash>"}

``hash`` is the SHA-256 of the canonical JSON (:func:`~takeback.evidence.model.canonical_json`:
sorted keys, no spaces, UTF-8) of the step without its ``hash`` key. Changing,
removing or reordering a step breaks the chain at that step. Steps hold no
floating-point numbers, so the canonical form is the same in every language.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .model import canonical_json, sha256_hex, utc_now

__all__ = ["GENESIS", "CustodyLog", "check_chain", "parse_custody", "step_hash"]

#: The ``prev`` of the first step.
GENESIS = "0" * 64

_KEYS = ("seq", "action", "what", "when", "actor", "inputs", "outputs", "prev", "hash")
#: Actions that bring files in from outside: their inputs come from no earlier step.
_ENTRY_ACTIONS = frozenset({"acquire", "read"})


def step_hash(step: dict[str, Any]) -> str:
    """The hash of a custody step: SHA-256 of its canonical JSON without ``hash``."""
    return sha256_hex(canonical_json({k: v for k, v in step.items() if k != "hash"}))


@dataclass
class CustodyLog:
    """Builds a hash-chained custody log, step by step.

    Parameters
    ----------
    actor : dict
        Who performs the steps: ``{"software": "takeback 0.1.0", "operator": ...}``.
    clock : callable, optional
        Returns the ISO 8601 UTC time of a step (tests fix it).

    Examples
    --------
    >>> log = CustodyLog(actor={"software": "takeback", "operator": None})
    >>> step = log.record("read", "read a file", inputs=[{"name": "a.jpg", "sha256": "00"}])
    >>> step["seq"], step["prev"] == GENESIS, check_chain(log.steps)
    (1, True, [])
    """

    actor: dict[str, Any]
    clock: Callable[[], str] = utc_now
    steps: list[dict[str, Any]] = field(default_factory=list)

    @property
    def head(self) -> str:
        """Hash of the last step (:data:`GENESIS` when empty)."""
        return str(self.steps[-1]["hash"]) if self.steps else GENESIS

    def record(
        self,
        action: str,
        what: str,
        *,
        inputs: Iterable[dict[str, Any]] = (),
        outputs: Iterable[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """Append one step and return it (with its ``hash``)."""
        step: dict[str, Any] = {
            "seq": len(self.steps) + 1,
            "action": action,
            "what": what,
            "when": self.clock(),
            "actor": dict(self.actor),
            "inputs": [dict(i) for i in inputs],
            "outputs": [dict(o) for o in outputs],
            "prev": self.head,
        }
        step["hash"] = step_hash(step)
        self.steps.append(step)
        return step

    def to_jsonl(self) -> bytes:
        """``custody.jsonl``: one canonical JSON object per line."""
        return b"".join(canonical_json(step) + b"\n" for step in self.steps)


def parse_custody(data: bytes, *, name: str = "custody.jsonl") -> tuple[list[Any], list[str]]:
    """Parse a custody log; return its steps and the lines that could not be read.

    Blank lines are skipped (and reported: the writer never produces them).
    """
    steps: list[Any] = []
    problems: list[str] = []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [], [f"{name} is not UTF-8 text: the log was damaged"]
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            problems.append(f"{name} line {number} is blank: the log was edited")
            continue
        try:
            steps.append(json.loads(line))
        except ValueError:
            problems.append(f"{name} line {number} is not JSON: the log was damaged or edited")
            return steps, problems
    return steps, problems


def _label(step: dict[str, Any]) -> str:
    return f"step {step.get('seq')} ({step.get('action')!s}: {str(step.get('what', ''))[:60]})"


def check_chain(steps: list[Any], *, name: str = "custody.jsonl") -> list[str]:
    """Check the chain: numbering, links, step hashes and where inputs came from.

    Parameters
    ----------
    steps : list
        Parsed steps (from :func:`parse_custody` or the ``custody.steps`` of
        ``report.json``).
    name : str
        How to name the log in messages.

    Returns
    -------
    list of str
        Problems, first broken step first; empty if the chain holds. Checking
        stops at the first step that is out of place (a removed or reordered
        step), since every later link then fails too.
    """
    problems: list[str] = []
    prev = GENESIS
    known: set[str] = set()
    for index, step in enumerate(steps):
        line = index + 1
        if not isinstance(step, dict) or any(k not in step for k in _KEYS):
            missing = [k for k in _KEYS if not isinstance(step, dict) or k not in step]
            problems.append(
                f"{name} step {line} lacks {', '.join(missing)}: not a TakeBack custody step"
            )
            return problems
        if step["seq"] != line:
            problems.append(
                f"{name} line {line} holds step {step['seq']!r} where step {line} belongs: "
                "steps were removed or reordered (later steps not checked)"
            )
            return problems
        if step["prev"] != prev:
            problems.append(
                f"{name} {_label(step)} does not follow the step before it (its prev hash "
                f"is {str(step['prev'])[:16]}…, the step before hashes to {prev[:16]}…): "
                "a step was removed, inserted or edited before it (later steps not checked)"
            )
            return problems
        actual = step_hash(step)
        if step["hash"] != actual:
            problems.append(
                f"{name} {_label(step)}: its content does not match its hash "
                f"(recorded {str(step['hash'])[:16]}…, computed {actual[:16]}…): "
                "the step was edited"
            )
        if step["action"] not in _ENTRY_ACTIONS:
            for item in step["inputs"]:
                digest = item.get("sha256") if isinstance(item, dict) else None
                if digest not in known:
                    problems.append(
                        f"{name} {_label(step)} uses an input (SHA-256 {str(digest)[:16]}…) "
                        "that no earlier step produced"
                    )
        for item in [*step["inputs"], *step["outputs"]]:
            if isinstance(item, dict) and isinstance(item.get("sha256"), str):
                known.add(item["sha256"])
        prev = str(step["hash"])
    return problems
