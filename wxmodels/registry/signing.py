"""Signed versions: an Ed25519 signature over the exact bytes of a version's manifest.

The manifest lists the sha256 and size of every file of the version and the content hash the
version id is derived from, so one signature over its bytes covers the whole version, and a
partial pull (``--packed``, which leaves the torch weights out) verifies as well as a full one.
The signature travels beside the manifest as ``manifest.sig`` (JSON: algorithm, key id,
base64 signature), uploaded before the manifest, which is written last.

Keys:
    * signing (publication): ``$WXC_SIGNING_KEY`` (a PEM private key) or
      ``$WXC_SIGNING_KEY_FILE`` (its path); the promote task can export it from a Prefect
      Secret block (``promote.signing_key_block``). Unset: versions are published unsigned.
    * trust (pulls): ``$WXC_TRUSTED_KEYS`` (PEM public-key files or directories of them,
      separated by ``:``), ``promote.trusted_keys`` or ``--trusted-key``. When any trusted key
      is configured, a pull refuses unsigned versions, versions signed by another key, and
      signatures that do not match.

``wxc registry keygen DIR`` writes a key pair (private key mode 0600).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wxmodels.errors import ChecksumError, RegistryError
from wxmodels.registry.names import SIGNATURE

__all__ = [
    "SIGNATURE",
    "Signer",
    "TrustStore",
    "generate_keypair",
    "key_id",
    "signer_from_env",
    "trust_from",
]

ALG = "ed25519"


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name of a public key: sha256 of its raw 32 bytes, 16 hex digits."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    """Signs manifests with one private key."""

    key: Ed25519PrivateKey

    @property
    def key_id(self) -> str:
        return key_id(self.key.public_key())

    def sign(self, manifest: bytes) -> bytes:
        """The ``manifest.sig`` document for the exact bytes ``manifest``."""
        sig = base64.b64encode(self.key.sign(manifest)).decode()
        return json.dumps({"alg": ALG, "key_id": self.key_id, "signature": sig}).encode()


def _load_private(pem: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise RegistryError(f"{where}: not a PEM private key without password ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise RegistryError(f"{where}: the signing key must be an Ed25519 key")
    return key


def signer_from_env() -> Signer | None:
    """The publication key from ``$WXC_SIGNING_KEY`` / ``$WXC_SIGNING_KEY_FILE``, if set."""
    text = os.environ.get("WXC_SIGNING_KEY")
    if text:
        return Signer(_load_private(text.encode(), "$WXC_SIGNING_KEY"))
    path = os.environ.get("WXC_SIGNING_KEY_FILE")
    if path:
        try:
            pem = Path(path).read_bytes()
        except OSError as e:
            raise RegistryError(f"$WXC_SIGNING_KEY_FILE {path}: {e.strerror}") from None
        return Signer(_load_private(pem, path))
    return None


@dataclass(frozen=True)
class TrustStore:
    """Public keys a deployer trusts, by key id. Empty: signatures are not required."""

    keys: dict[str, Ed25519PublicKey]

    @property
    def required(self) -> bool:
        return bool(self.keys)

    def verify(self, manifest: bytes, signature: bytes | None, what: str) -> str | None:
        """Check ``signature`` (the ``manifest.sig`` bytes, ``None`` if absent) over the exact
        ``manifest`` bytes; returns the key id, ``None`` when nothing is required and the
        version is unsigned. Raises :class:`ChecksumError` when trust is configured and the
        version is unsigned, signed by an unknown key, or the signature does not match."""
        if signature is None:
            if self.required:
                raise ChecksumError(
                    f"{what} is not signed, and trusted keys are configured: refusing it"
                )
            return None
        try:
            doc = json.loads(signature)
            kid, sig = doc["key_id"], base64.b64decode(doc["signature"], validate=True)
            if doc.get("alg") != ALG:
                raise ValueError(f"algorithm {doc.get('alg')!r}")
        except (ValueError, KeyError, TypeError) as e:
            raise ChecksumError(f"{what}: unreadable signature ({e})") from None
        if not self.required:
            return None
        key = self.keys.get(kid)
        if key is None:
            raise ChecksumError(
                f"{what} is signed by key {kid}, which is not among the trusted keys "
                f"({', '.join(sorted(self.keys))}): refusing it"
            )
        try:
            key.verify(sig, manifest)
        except InvalidSignature:
            raise ChecksumError(
                f"{what}: the manifest's signature does not match (the manifest was changed "
                "after signing): refusing it"
            ) from None
        return kid


def _load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as e:
        raise RegistryError(f"trusted key {path}: not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise RegistryError(f"trusted key {path}: not an Ed25519 key")
    return key


def trust_from(paths: Iterable[str | Path] = (), *, env: bool = True) -> TrustStore:
    """Trusted keys from files or directories of ``*.pub``/``*.pem`` public keys, plus
    ``$WXC_TRUSTED_KEYS`` when ``env``."""
    items = [str(p) for p in paths]
    if env and os.environ.get("WXC_TRUSTED_KEYS"):
        items += [p for p in os.environ["WXC_TRUSTED_KEYS"].split(os.pathsep) if p]
    keys: dict[str, Ed25519PublicKey] = {}
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            files = sorted([*p.glob("*.pub"), *p.glob("*.pem")])
        elif p.exists():
            files = [p]
        else:
            raise RegistryError(f"trusted key {p} does not exist")
        for f in files:
            k = _load_public(f)
            keys[key_id(k)] = k
    return TrustStore(keys)


def generate_keypair(directory: str | Path, name: str = "wxc-signing") -> tuple[Path, Path]:
    """Write ``<name>.pem`` (private, mode 0600) and ``<name>.pub`` into ``directory``;
    refuses to overwrite."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    priv, pub = d / f"{name}.pem", d / f"{name}.pub"
    for p in (priv, pub):
        if p.exists():
            raise RegistryError(f"{p} exists: refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv, pub
