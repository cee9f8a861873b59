"""The per-AIP keys of encrypted targets: X25519 keys in age's Bech32 text forms, what is derived
from them (object seeds, the name key), their key objects (the key file age-encrypted to a target's
recipients) and a target's identity file. Side effects: reads identity files; nothing else.

An AIP key is an ordinary age identity. Its key object is the key file ``age-keygen`` would write,
encrypted with age to every recipient of the target, so without preserve a person opens an object
in two steps: ``age -d -i target-identity.txt key.age > aip-key.txt``, then
``age -d -i aip-key.txt <object>``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyrage
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from preserve.core.errors import DecryptionFailed, KeyUnavailable
from preserve.storage.crypt.age import derive

RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
#: the largest identity file or decrypted key object read
MAX_KEY_TEXT = 1 << 20
#: the largest key object opened (one is a few hundred bytes per recipient)
MAX_KEY_OBJECT = 64 << 10

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, repr=False)
class AipKey:
    """One AIP's key on one encrypted target: an X25519 secret (age identity)."""

    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ValueError("an AIP key is a 32-byte X25519 secret")

    def __repr__(self) -> str:
        return f"AipKey(recipient={self.recipient!r})"

    @classmethod
    def generate(cls) -> AipKey:
        return cls(os.urandom(32))

    @classmethod
    def from_identity(cls, text: str) -> AipKey:
        """The key of an ``AGE-SECRET-KEY-1...`` string; ValueError if it is not one."""
        return cls(identity_secret(text))

    @property
    def public(self) -> bytes:
        """The X25519 public key objects are encrypted to."""
        return X25519PrivateKey.from_private_bytes(self.secret).public_key().public_bytes_raw()

    @property
    def identity(self) -> str:
        """The key as age writes identities: ``AGE-SECRET-KEY-1...``."""
        return _bech32_encode(IDENTITY_HRP, self.secret).upper()

    @property
    def recipient(self) -> str:
        """The public key as age writes recipients: ``age1...``."""
        return _bech32_encode(RECIPIENT_HRP, self.public)

    def object_seed(self, logical_key: str, sha256: str) -> bytes:
        """The 32-byte seed of the age encryption of the object ``logical_key`` whose plaintext has
        SHA-256 ``sha256`` (hex): the same object always encrypts to the same bytes, and a changed
        plaintext or name never reuses a seed."""
        digest = sha256.lower()
        if not _SHA256_HEX.fullmatch(digest):
            raise ValueError("an object seed needs the plaintext's SHA-256 as 64 hex digits")
        name = logical_key.encode()
        return derive(self.secret, f"object-seed/{len(name)}:{logical_key}/{digest}", 32)

    @property
    def names_key(self) -> bytes:
        """The 64-byte AES-SIV key that hides the AIP's object names."""
        return derive(self.secret, "object-names/aes-siv", 64)

    def keyfile_text(self) -> str:
        """The key as ``age-keygen`` writes a key file (usable with ``age -d -i``)."""
        created = dt.datetime.now(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"# created: {created}\n# public key: {self.recipient}\n{self.identity}\n"


def identity_secret(identity: str) -> bytes:
    """The 32-byte X25519 secret of an ``AGE-SECRET-KEY-1...`` identity; ValueError if malformed."""
    data = _bech32_decode(IDENTITY_HRP, identity.strip())
    if data is None or len(data) != 32:
        raise ValueError("not an age X25519 identity (AGE-SECRET-KEY-1...)")
    return data


def recipient_public(recipient: str) -> bytes:
    """The 32-byte X25519 public key of an ``age1...`` recipient; ValueError if malformed."""
    data = _bech32_decode(RECIPIENT_HRP, recipient.strip())
    if data is None or len(data) != 32:
        raise ValueError("not an age X25519 recipient (age1...)")
    return data


def parse_recipients(texts: Iterable[str]) -> list[str]:
    """The age X25519 recipients given (stripped), checked; ValueError naming the first bad one
    by its position."""
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"recipient {i} is not a string")
        try:
            recipient_public(text)
        except ValueError:
            raise ValueError(
                f"recipient {i} is not an age X25519 recipient (age1... as age-keygen prints it)"
            ) from None
        out.append(text.strip())
    return out


def read_identities(path: Path) -> list[str]:
    """The identities (``AGE-SECRET-KEY-1...`` lines) of an age-keygen key file; KeyUnavailable when
    it is missing, unreadable or holds none. Never quotes the file."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_KEY_TEXT + 1)
    except OSError as exc:
        raise KeyUnavailable(f"the age identity file {path} cannot be read ({exc.strerror or exc})") from None
    if len(raw) > MAX_KEY_TEXT:
        raise KeyUnavailable(f"the age identity file {path} is larger than {MAX_KEY_TEXT} bytes: not an identity file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyUnavailable(f"the age identity file {path} is not text: not an identity file") from None
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("AGE-SECRET-KEY-1"):
            try:
                identity_secret(line)
            except ValueError:
                raise KeyUnavailable(
                    f"line {number} of the age identity file {path} is not a valid age X25519 identity"
                ) from None
            found.append(line)
    if not found:
        raise KeyUnavailable(
            f"the age identity file {path} holds no age X25519 identity (an AGE-SECRET-KEY-1... line, "
            "as written by age-keygen)"
        )
    return found


def wrap(key: AipKey, recipients: Sequence[str]) -> bytes:
    """The key object of ``key``: its key file, age-encrypted to every one of ``recipients``."""
    checked = parse_recipients(recipients)
    if not checked:
        raise ValueError("a key object needs at least one recipient")
    targets = [pyrage.x25519.Recipient.from_str(r) for r in checked]
    return bytes(pyrage.encrypt(key.keyfile_text().encode(), targets))


def unwrap(blob: bytes, identities: Sequence[str]) -> AipKey:
    """The AIP key in the key object ``blob``, opened with one of ``identities``. KeyUnavailable when
    it is not encrypted to any of them, DecryptionFailed when it is damaged or not a key object."""
    if not identities:
        raise KeyUnavailable("no age identity to open the AIP's key object with")
    if len(blob) > MAX_KEY_OBJECT:
        raise DecryptionFailed(f"the AIP's key object is larger than {MAX_KEY_OBJECT} bytes: not a key object")
    try:
        opened = [pyrage.x25519.Identity.from_str(i.strip()) for i in identities]
    except pyrage.IdentityError:
        raise KeyUnavailable("an age identity given to open the AIP's key object is malformed") from None
    try:
        text = bytes(pyrage.decrypt(bytes(blob), opened))
    except pyrage.DecryptError as exc:
        if "no matching keys" in str(exc).lower():
            raise KeyUnavailable(
                "the AIP's key object is not encrypted to the identity configured for this target "
                "(it is none of the recipients the key was wrapped to, or the key object's header is damaged)"
            ) from None
        raise DecryptionFailed(
            f"the AIP's key object is damaged or not an age file ({exc}); restore it from the catalog or escrow"
        ) from None
    return _key_of_keyfile(text)


def _key_of_keyfile(raw: bytes) -> AipKey:
    """The one key of a decrypted key object (an age-keygen key file)."""
    try:
        text = raw[:MAX_KEY_TEXT].decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionFailed("the AIP's key object does not hold a key file") from None
    keys = [line.strip() for line in text.splitlines() if line.strip().upper().startswith("AGE-SECRET-KEY-1")]
    if len(keys) != 1:
        raise DecryptionFailed(f"the AIP's key object holds {len(keys)} identities, not one")
    try:
        key = AipKey.from_identity(keys[0])
    except ValueError:
        raise DecryptionFailed("the AIP's key object holds a malformed identity") from None
    for line in text.splitlines():
        stated = line.removeprefix("# public key:").strip()
        if line.startswith("# public key:") and stated != key.recipient:
            raise DecryptionFailed("the AIP's key object states a public key that is not its identity's")
    return key


# --- Bech32 (BIP-173; age uses it without the 90-character limit) ------------------------------

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: Iterable[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_GENERATORS):
            if (top >> i) & 1:
                check ^= generator
    return check


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert(data: Iterable[int], source: int, target: int, *, pad: bool) -> list[int] | None:
    """Regroup ``source``-bit values as ``target``-bit values; None if the padding is invalid."""
    acc = bits = 0
    out = []
    mask = (1 << target) - 1
    keep = (1 << (source + target - 1)) - 1
    for value in data:
        acc = ((acc << source) | value) & keep
        bits += source
        while bits >= target:
            bits -= target
            out.append((acc >> bits) & mask)
    if pad:
        if bits:
            out.append((acc << (target - bits)) & mask)
    elif bits >= source or (acc << (target - bits)) & mask:
        return None
    return out


def _bech32_encode(hrp: str, data: bytes) -> str:
    words = _convert(data, 8, 5, pad=True)
    assert words is not None
    checksum = _polymod([*_hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 1
    words += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[w] for w in words)


def _bech32_decode(hrp: str, text: str) -> bytes | None:
    """The bytes of a Bech32 string with human-readable part ``hrp`` (any case, not mixed); None if
    it is not one."""
    if text.lower() != text and text.upper() != text:
        return None
    text = text.lower()
    sep = text.rfind("1")
    if text[:sep] != hrp or len(text) - sep - 1 < 6 or not text.isascii():
        return None
    try:
        words = [_CHARSET.index(c) for c in text[sep + 1 :]]
    except ValueError:
        return None
    if _polymod([*_hrp_expand(hrp), *words]) != 1:
        return None
    data = _convert(words[:-6], 5, 8, pad=False)
    return None if data is None else bytes(data)
