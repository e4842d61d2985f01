"""``takeback keys init``, ``takeback sign`` and ``takeback verify``: Content Credentials.

A thin shell over :mod:`takeback.provenance.keys` and
:mod:`takeback.provenance.c2pa`. The main app registers them with
:func:`register` (or ``app.add_typer(keys_app, name="keys")``,
``app.command("sign")(sign_cmd)``, ``app.command("verify")(verify_cmd)``).

Output follows ``docs/cli.md``: results on standard output (one JSON object with
``--json``), messages on standard error. A verdict of ``verify`` (trusted,
valid, invalid, none) is a result: the exit code is 0 for all four.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer
from rich.markup import escape

__all__ = ["keys_app", "register", "sign_cmd", "verify_cmd"]

keys_app = typer.Typer(
    help="Manage signing keys for Content Credentials.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (see docs/provenance.md).")
]


def _cli() -> ModuleType:
    """The main CLI module, imported late (it imports this module to register it)."""
    from . import cli

    return cli


@keys_app.command("init")
def keys_init_cmd(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Where to write the keys [default: $TAKEBACK_HOME/keys, else the "
            "platform data directory].",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str, typer.Option(help="Your name as the signer (shown when a photo is verified).")
    ] = "TakeBack user",
    force: Annotated[bool, typer.Option("--force", help="Replace existing keys.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a local certificate authority and a signing certificate (P-256).

    Writes ca.key and signer.key (mode 0600, directory 0700), ca.pem and
    signer.pem. Give ca.pem to whoever should trust your signatures
    (takeback verify --trust-anchors ca.pem); keep the .key files private.

    \b
    Examples:
      takeback keys init --name "Alex Doe"
      takeback keys init --dir ./keys --json
    """
    from .provenance.keys import init_keys

    cli = _cli()
    with cli._guard(json_out):
        files = init_keys(directory, name=name, force=force)
    if json_out:
        cli._emit(files.to_dict())
        return
    cli.out.print(
        f"signing key   {escape(str(files.key))}  (private: never share it)\n"
        f"certificate   {escape(str(files.certificate))}  ({escape(files.subject)}, "
        f"valid until {files.not_after:%Y-%m-%d})\n"
        f"local CA      {escape(str(files.ca_certificate))}  (share it: verifiers use it "
        "with --trust-anchors)\n"
        f"CA key        {escape(str(files.ca_key))}  (private)"
    )


def sign_cmd(
    photo: Annotated[Path, typer.Argument(help="The photo to sign.", show_default=False)],
    embed: Annotated[
        bool,
        typer.Option(
            "--embed",
            help="Write a new copy of the photo with the manifest inside, instead of "
            "a sidecar .c2pa file.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write [default: PHOTO.c2pa, or NAME.signed.EXT with --embed].",
            show_default=False,
        ),
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            help="PEM private key [default: signer.key of `takeback keys init`].",
            show_default=False,
        ),
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option(
            help="PEM certificate chain, signer first [default: signer.pem of "
            "`takeback keys init`].",
            show_default=False,
        ),
    ] = None,
    source_type: Annotated[
        str,
        typer.Option(
            help="What the photo is: digitalCapture (straight from a camera), "
            "computationalCapture (phone processing), minorHumanEdits, humanEdits, "
            "digitalCreation.",
        ),
    ] = "digitalCapture",
    force: Annotated[bool, typer.Option("--force", help="Replace the output file.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Sign a photo with Content Credentials (C2PA). The photo itself is never changed:
    the manifest goes to a sidecar PHOTO.c2pa, or with --embed into a new copy.

    \b
    Examples:
      takeback sign me.jpg
      takeback sign me.jpg --embed -o me-signed.jpg
      takeback sign me.jpg --key my.key --cert my-chain.pem
    """
    from .provenance.c2pa import sign_photo
    from .provenance.keys import SIGNER_CERT_FILE, SIGNER_KEY_FILE, LocalSigner, default_keys_dir

    cli = _cli()
    if (key is None) != (cert is None):
        cli._warn("give both --key and --cert, or neither (to use `takeback keys init` keys)")
        raise typer.Exit(int(cli.ExitCode.USAGE))
    with cli._guard(json_out):
        if key is None or cert is None:
            home = default_keys_dir()
            key, cert = home / SIGNER_KEY_FILE, home / SIGNER_CERT_FILE
        signer = LocalSigner.from_files(key, cert)
        result = sign_photo(
            photo,
            signer,
            embed=embed,
            output=output,
            force=force,
            source_type=source_type,
            limits=cli._limits(),
        )
    if json_out:
        cli._emit(result.to_dict())
    elif embed:
        cli.out.print(
            f"{escape(result.path)}: signed; the signed copy is {escape(result.output)} "
            "(the original is unchanged)"
        )
    else:
        cli.out.print(
            f"{escape(result.path)}: signed; manifest written to {escape(result.output)} "
            "(the photo is unchanged; keep the two together)"
        )


def verify_cmd(
    photo: Annotated[Path, typer.Argument(help="The photo to check.", show_default=False)],
    manifest: Annotated[
        Path | None,
        typer.Option(
            help="A sidecar manifest [default: the embedded one, else PHOTO.c2pa].",
            show_default=False,
        ),
    ] = None,
    trust_anchors: Annotated[
        Path | None,
        typer.Option(
            "--trust-anchors",
            help="PEM file of CA certificates to trust (e.g. the signer's ca.pem).",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a photo's Content Credentials: trusted, valid (untrusted signer),
    invalid (the photo or the manifest was changed) or none.

    \b
    Examples:
      takeback verify me.jpg
      takeback verify me.jpg --trust-anchors alex-ca.pem --json
    """
    from .provenance.c2pa import Verdict, verify_photo

    cli = _cli()
    with cli._guard(json_out):
        result = verify_photo(
            photo, manifest=manifest, trust_anchors=trust_anchors, limits=cli._limits()
        )
    if json_out:
        cli._emit(result.to_dict())
        return
    path = escape(result.path)
    signer = result.signer or {}
    who = escape(str(signer.get("common_name") or "an unnamed signer"))
    if signer.get("issuer"):
        who += f" (issued by {escape(str(signer['issuer']))})"
    when = ""
    if result.signed_at:
        clock = "timestamp" if result.time_source == "timestamp" else "the signer's clock"
        when = f"; signed {escape(result.signed_at)} ({clock})"
    where = f" ({result.manifest} manifest)" if result.manifest else ""
    if result.status is Verdict.TRUSTED:
        cli.out.print(f"{path}: trusted. Signed by {who}, who chains to a trust anchor{when}.")
    elif result.status is Verdict.VALID:
        hint = "" if trust_anchors else " Give --trust-anchors to check who signed."
        cli.out.print(
            f"{path}: valid. The Content Credentials are intact and match the file{where}, "
            f"but the signer {who} is not vouched for by a trust anchor: anyone can make "
            f"such a certificate{when}.{hint}"
        )
    elif result.status is Verdict.INVALID:
        lines = [f"{path}: INVALID. The Content Credentials{where} do not match the file:"]
        lines += [f"  {escape(f['code'])}: {escape(f['explanation'])}" for f in result.failures]
        cli.out.print("\n".join(lines))
    else:
        cli.out.print(
            f"{path}: none. No Content Credentials (embedded or sidecar). A re-saved, "
            "re-encoded or screenshotted copy loses them."
        )
    for action in result.actions if result.status is not Verdict.INVALID else []:
        source = str(action.get("digitalSourceType", "")).rsplit("/", 1)[-1]
        cli.out.print(
            f"  action {escape(str(action.get('action')))}"
            + (f" ({escape(source)})" if source else "")
        )


def register(app: typer.Typer) -> None:
    """Add ``keys``, ``sign`` and ``verify`` to the main ``takeback`` app."""
    app.add_typer(keys_app, name="keys")
    app.command("sign")(sign_cmd)
    app.command("verify")(verify_cmd)
