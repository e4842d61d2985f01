"""RFC 3161 timestamps on checkpoints, against a local ``openssl ts`` authority.

The authority is a tiny HTTP server on 127.0.0.1 that answers each query with
``openssl ts -reply``, using a CA and a TSA certificate made here; it is
stopped when the module's tests end.
"""

from __future__ import annotations

import datetime as dt
import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from takeback.bank.model import BankEntry
from takeback.provenance.log import RegistrationLog, log_registrations, verify_proof
from takeback.provenance.log_errors import TimestampError
from takeback.provenance.log_format import EntryData
from takeback.provenance.log_tsa import TsaClient, check_token

assert shutil.which("openssl") is not None, "the openssl command is needed (Debian package openssl)"


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name = (
        name if issuer is None else x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])])
    )
    signing_key = key if issuer is None else issuer[1]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
            critical=False,
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        ).add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
    return builder.sign(signing_key, hashes.SHA256())


def _pem(path: Path, obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> None:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            obj.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


@pytest.fixture(scope="module")
def tsa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(URL, CA PEM, an unrelated CA PEM) of a local timestamp authority."""
    d = tmp_path_factory.mktemp("tsa")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("TakeBack Test TSA CA", ca_key, None, ca=True)
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa_cert = _cert("TakeBack Test TSA", tsa_key, ("TakeBack Test TSA CA", ca_key), ca=False)
    other_key = ec.generate_private_key(ec.SECP256R1())
    _pem(d / "other-ca.pem", _cert("Unrelated CA", other_key, None, ca=True))
    _pem(d / "ca.pem", ca)
    _pem(d / "tsa.pem", tsa_cert)
    _pem(d / "tsa.key", tsa_key)
    (d / "serial").write_text("01\n")
    (d / "openssl.cnf").write_text(
        f"""[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = {d}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
    )
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with lock:
                (d / "q.tsq").write_bytes(body)
                proc = subprocess.run(
                    [
                        "openssl",
                        "ts",
                        "-reply",
                        "-config",
                        str(d / "openssl.cnf"),
                        "-queryfile",
                        str(d / "q.tsq"),
                        "-out",
                        str(d / "r.tsr"),
                    ],
                    capture_output=True,
                    check=False,
                )
                reply = (d / "r.tsr").read_bytes() if proc.returncode == 0 else b""
            self.send_response(200 if reply else 500)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa", d / "ca.pem", d / "other-ca.pem"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_checkpoint_gets_a_verified_timestamp(
    tsa: tuple[str, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca, other_ca = tsa
    monkeypatch.setenv("TAKEBACK_TSA_URL", url)
    monkeypatch.setenv("TAKEBACK_TSA_CA", str(ca))
    with RegistrationLog.create(tmp_path / "bank") as log:
        log.append([EntryData(1_700_000_000, bytes(32), None, None, bytes(32))])
        cp = log.checkpoint()
        assert cp.tsa_token is not None and cp.tsa_url == url
        assert cp.to_dict()["timestamp"] is not None
        note = cp.note.to_bytes()
        proof = log.proof_file(0)
        key = log.verifier
    good = check_token(cp.tsa_token, note, ca_file=str(ca))
    assert good.status == "verified", good.message
    assert check_token(cp.tsa_token, note).status == "unverified"
    # the token does not cover another checkpoint
    assert check_token(cp.tsa_token, note + b" ").status == "invalid"
    # nor does it verify under another authority's CA
    assert check_token(cp.tsa_token, note, ca_file=str(other_ca)).status == "invalid"
    assert check_token(b"garbage", note).status == "invalid"
    result = verify_proof(proof, key, tsa_token=cp.tsa_token, tsa_ca=str(ca))
    assert result.ok and result.timestamp is not None
    assert result.timestamp.status == "verified"


def test_existing_checkpoint_is_timestamped_later(
    tsa: tuple[str, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAKEBACK_TSA_URL", raising=False)
    with RegistrationLog.create(tmp_path / "bank") as log:
        first = log.checkpoint()
        assert first.tsa_token is None
        again = log.checkpoint(tsa=TsaClient(tsa[0], str(tsa[1])))
        assert again.note == first.note and again.tsa_token is not None


def test_unreachable_authority_is_an_error(tmp_path: Path) -> None:
    client = TsaClient("http://127.0.0.1:9/nothing")
    with pytest.raises(TimestampError), RegistrationLog.create(tmp_path / "bank") as log:
        log.checkpoint(tsa=client)
    assert TsaClient.from_env({}) is None


def test_registration_survives_a_failing_authority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAKEBACK_TSA_URL", "http://127.0.0.1:9/nothing")
    entry = BankEntry(label="a.jpg", sha256="cd" * 32, id=1)
    with pytest.raises(TimestampError, match="registered as log entries 0-0"):
        log_registrations(tmp_path / "bank", [entry])
    with RegistrationLog.open(tmp_path / "bank") as log:
        assert log.size == 1
        [cp] = log.checkpoints()
        assert cp.checkpoint.size == 1 and cp.tsa_token is None
    assert TsaClient.from_env({"TAKEBACK_TSA_URL": "http://x"}) == TsaClient("http://x")
