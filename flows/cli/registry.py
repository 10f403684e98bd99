"""``wxc registry ...``: browse, pull, verify and roll back models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import RegistryOpt, TrustOpt, open_registry, out, print_json, registry_app
from wxmodels.registry.card import deployable_bytes


@registry_app.command("list")
def registry_list(
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """Models, their versions and aliases."""
    reg = open_registry(registry, config)
    t = Table(title=f"registry {reg.url}")
    for col in ("model", "version", "kind", "recipe", "size (bytes)", "created", "aliases"):
        t.add_column(col)
    for name in reg.names():
        aliases = reg.aliases(name)
        for m in reg.versions(name):
            tags = [a for a, v in aliases.items() if v == m["version"]]
            t.add_row(
                name,
                m["version"],
                m.get("kind", ""),
                m.get("recipe_label", ""),
                str(deployable_bytes(m.get("metrics", {})) or ""),
                m.get("created_at", ""),
                ", ".join(tags),
            )
    out.print(t)


@registry_app.command("show")
def registry_show(
    ref: str,
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """The manifest of NAME@ALIAS or NAME@VERSION."""
    print_json(open_registry(registry, config).manifest(ref))


@registry_app.command("pull")
def registry_pull(
    ref: str,
    dest: Annotated[
        Path | None, typer.Argument(help="Copy the files here (default: the cache's own copy).")
    ] = None,
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
    packed: Annotated[
        bool,
        typer.Option(
            "--packed",
            help="Download the compact model.wxpack and unpack it to model.onnx (verified).",
        ),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Use the local cache only (aliases as last seen online)."),
    ] = False,
    trusted_key: TrustOpt = None,
) -> None:
    """Fetch NAME@ALIAS through the local cache ($WXC_CACHE), verifying every sha256 (and the
    signature, where trusted keys are configured)."""
    reg = open_registry(registry, config, trusted_key)
    path = reg.pull(ref, dest, packed=packed, offline=offline)
    man = json.loads((path / "manifest.json").read_text())
    how = " from the pack" if packed else ""
    how += " (offline, from the cache)" if offline else ""
    signed = " and signature" if reg.trust.required else ""
    out.print(f"{man['name']}@{man['version']} -> {path}{how} (checksums{signed} verified)")


@registry_app.command("keygen")
def registry_keygen(
    directory: Annotated[Path, typer.Argument(help="Where to write the key pair.")],
) -> None:
    """Create an Ed25519 key pair for signing versions: publish with
    WXC_SIGNING_KEY_FILE=DIR/wxc-signing.pem; deployers trust DIR/wxc-signing.pub."""
    from wxmodels.registry.signing import generate_keypair

    priv, pub = generate_keypair(directory)
    out.print(f"private key {priv} (keep it secret; mode 0600)\npublic key {pub}")


@registry_app.command("gc")
def registry_gc(
    older_than: Annotated[
        float, typer.Option(help="Only what is at least this many hours old (in-flight writes).")
    ] = 1.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing.")] = False,
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """Remove what interrupted publications left (versions without a manifest)."""
    gone = open_registry(registry, config).gc(older_than=older_than * 3600, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for p in gone:
        out.print(f"{verb} {p}")
    out.print(f"{verb} {len(gone)} item(s)")


@registry_app.command("history")
def registry_history(
    ref: str,
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """The events of NAME@ALIAS, oldest first."""
    from wxmodels.registry import parse_ref

    name, alias = parse_ref(ref)
    t = Table(title=f"{ref}")
    for col in ("at", "version", "previous", "by", "reason", "run"):
        t.add_column(col)
    for e in open_registry(registry, config).history(name, alias):
        t.add_row(e.at, e.version, e.previous or "", e.by, e.reason, e.run)
    out.print(t)


@registry_app.command("rollback")
def registry_rollback(
    ref: str,
    reason: str = "manual rollback",
    registry: RegistryOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c")] = None,
) -> None:
    """Move NAME@ALIAS back to the version it pointed at before."""
    from wxmodels.registry import parse_ref

    name, alias = parse_ref(ref)
    reg = open_registry(registry, config)
    ev = reg.rollback(name, alias, reason=reason)
    out.print(f"{name}@{alias}: {ev.previous} -> {reg.resolve_alias(name, alias)}")
