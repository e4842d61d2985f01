"""``takeback log ...`` end to end: the Typer app ``log_app`` (registered by cli.py)
through ``CliRunner``, and the offline verifier in a separate process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from takeback.bank.model import BankEntry
from takeback.cli_log import log_app
from takeback.provenance.log import log_registrations

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(log_app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def one_json(stdout: str) -> dict[str, Any]:
    [line] = [x for x in stdout.splitlines() if x.strip()]
    return json.loads(line)


@pytest.fixture
def bank(tmp_path: Path) -> Path:
    bank = tmp_path / "bank"
    entries = [
        BankEntry(
            label=f"photo{i}.jpg", sha256=f"{i + 1:064x}", id=i + 1, added_at="2026-03-01T12:00:00Z"
        )
        for i in range(5)
    ]
    code, _, _ = run("init", "--bank", str(bank), "--origin", "example.org/cli")
    assert code == 0
    log_registrations(bank, entries)
    return bank


def test_init_prints_the_public_key(tmp_path: Path) -> None:
    code, out, err = run("init", "--bank", str(tmp_path / "b"), "--origin", "example.org/x")
    assert code == 0 and out.startswith("example.org/x+") and "public key" in err
    code, out2, _ = run("init", "--bank", str(tmp_path / "b"), "--json")
    info = one_json(out2)
    assert info["vkey"] == out.strip() and info["size"] == 0 and info["origin"] == "example.org/x"


def test_checkpoint_show_proof_verify(bank: Path, tmp_path: Path) -> None:
    code, out, _ = run("checkpoint", "--bank", str(bank))
    assert code == 0 and out.startswith("example.org/cli\n5\n") and "\u2014 example.org/cli " in out
    code, out, _ = run("checkpoint", "--bank", str(bank), "--json")
    cp = one_json(out)
    assert set(cp) == {"origin", "size", "root", "note", "created_at", "timestamp", "tsa_url"}
    assert cp["size"] == 5 and cp["timestamp"] is None

    code, out, _ = run("show", "2", "--bank", str(bank), "--json")
    shown = one_json(out)
    assert shown["sha256"] == f"{3:064x}" and shown["bank_id"] == 3
    assert shown["registered_at"] == "2026-03-01T12:00:00Z" and "label_salt" not in shown
    code, out, _ = run("show", f"{3:064x}", "--reveal", "--bank", str(bank), "--json")
    assert one_json(out)["index"] == 2 and len(str(one_json(out)["label_salt"])) == 32
    code, out, _ = run("show", "2", "--bank", str(bank))
    assert code == 0 and "label_commitment" in out

    proof = tmp_path / "entry2.tlog-proof"
    code, out, _ = run("proof", "2", "-o", str(proof), "--bank", str(bank), "--json")
    info = one_json(out)
    assert code == 0 and info["file"] == str(proof) and info["tree_size"] == 5
    assert proof.read_bytes().startswith(b"c2sp.org/tlog-proof@v1\nextra ")
    code, out, _ = run("proof", "2", "--bank", str(bank))
    assert out.encode() == proof.read_bytes()

    vkey = (bank / "log.vkey").read_text().strip()
    code, out, _ = run("verify", str(proof), "--key", vkey, "--json")
    verdict = one_json(out)
    assert code == 0 and verdict["verdict"] == "verified" and verdict["ok"] is True
    assert set(verdict) == {
        "verdict",
        "ok",
        "message",
        "index",
        "entry",
        "origin",
        "tree_size",
        "root",
        "timestamp",
    }
    code, out, _ = run(
        "verify", str(proof), "--key", str(bank / "log.vkey"), "--sha256", f"{3:064x}"
    )
    assert code == 0 and out.startswith("verified:")
    code, out, _ = run("verify", str(proof), "--key", vkey, "--sha256", f"{4:064x}", "--json")
    assert code == 1 and one_json(out)["verdict"] == "wrong_entry"
    # revealing the label: the right one verifies, another does not
    _, out, _ = run("show", "2", "--reveal", "--bank", str(bank), "--json")
    salt = str(one_json(out)["label_salt"])
    code, _, _ = run("verify", str(proof), "--key", vkey, "--label", "photo2.jpg", "--salt", salt)
    assert code == 0
    code, out, _ = run(
        "verify", str(proof), "--key", vkey, "--label", "photo3.jpg", "--salt", salt, "--json"
    )
    assert code == 1 and one_json(out)["verdict"] == "wrong_entry"
    code, _, _ = run("verify", str(proof), "--key", vkey, "--label", "photo2.jpg")
    assert code == 2


def test_verify_failures_have_verdicts_and_exit_1(bank: Path, tmp_path: Path) -> None:
    proof = tmp_path / "p.tlog-proof"
    run("proof", "0", "-o", str(proof), "--bank", str(bank))
    vkey = (bank / "log.vkey").read_text().strip()
    truncated = tmp_path / "t.tlog-proof"
    truncated.write_bytes(proof.read_bytes()[:100])
    code, out, _ = run("verify", str(truncated), "--key", vkey, "--json")
    assert code == 1 and one_json(out)["verdict"] == "malformed"
    code, out, _ = run("init", "--bank", str(tmp_path / "other"), "--origin", "example.org/cli")
    other_key = out.strip()
    code, out, _ = run("verify", str(proof), "--key", other_key)
    assert code == 1 and out.startswith("NOT VERIFIED (bad_signature)")
    code, out, _ = run("verify", str(tmp_path / "missing"), "--key", vkey, "--json")
    assert code == 1 and one_json(out)["error"]["code"] == "malformed_proof"
    code, out, _ = run("verify", str(proof), "--key", "not-a-key", "--json")
    assert code == 1 and one_json(out)["error"]["code"] == "malformed_proof"


def test_consistency_command(bank: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.checkpoint"
    _, out, _ = run("checkpoint", "--bank", str(bank))
    old.write_text(out)
    log_registrations(bank, [BankEntry(label="new.jpg", sha256="ee" * 32, id=99)])
    code, out, _ = run(
        "consistency", str(old), "--bank", str(bank), "-o", str(tmp_path / "c.proof"), "--json"
    )
    res = one_json(out)
    assert (
        code == 0 and res["verdict"] == "verified" and (res["old_size"], res["new_size"]) == (5, 6)
    )
    new = tmp_path / "new.checkpoint"
    _, out, _ = run("checkpoint", "--bank", str(bank))
    new.write_text(out)
    vkey = (bank / "log.vkey").read_text().strip()
    code, out, _ = run(
        "consistency", str(old), str(new), "--proof", str(tmp_path / "c.proof"), "--key", vkey
    )
    assert code == 0 and out.startswith("verified:")
    # swapped: the newer checkpoint given as the old one
    code, out, _ = run("consistency", str(new), str(old), "--bank", str(bank), "--json")
    assert code == 1 and one_json(out)["verdict"] == "stale"
    code, _, _ = run("consistency", str(old), "--proof", str(tmp_path / "c.proof"))
    assert code == 2


def test_missing_log_is_a_bank_error(tmp_path: Path) -> None:
    code, out, err = run("checkpoint", "--bank", str(tmp_path / "none"), "--json")
    assert code == 3 and one_json(out)["error"]["code"] == "log_missing"
    assert "takeback log init" in err
    code, out, _ = run("show", "7", "--bank", str(tmp_path / "none"))
    assert code == 3
    code, _, _ = run("verify", str(tmp_path / "x"), "--bank", str(tmp_path / "none"))
    assert code == 2  # no key to verify with


def test_show_missing_entry(bank: Path) -> None:
    code, out, _ = run("show", "50", "--bank", str(bank), "--json")
    assert code == 3 and one_json(out)["error"]["code"] == "log_entry_missing"


def test_offline_verify_in_a_fresh_process_without_a_bank(bank: Path, tmp_path: Path) -> None:
    proof = tmp_path / "p.tlog-proof"
    run("proof", "4", "-o", str(proof), "--bank", str(bank))
    vkey = (bank / "log.vkey").read_text().strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKEBACK_")}
    env["TAKEBACK_HOME"] = str(tmp_path / "empty-home")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from takeback.cli_log import log_app; log_app()",
            "verify",
            str(proof),
            "--key",
            vkey,
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["index"] == 4
    assert not (tmp_path / "empty-home").exists()


def test_log_commands_share_the_main_exit_codes() -> None:
    from takeback import cli, cli_log

    assert cli_log.ExitCode is cli.ExitCode
