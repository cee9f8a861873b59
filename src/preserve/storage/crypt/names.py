"""Opaque object names on encrypted targets and the name index that maps them back. Pure: builds and
reads names and index documents, no I/O.

Under an AIP on an encrypted target::

    <aip>/key.age       the AIP's key object (its key, age-encrypted to the target's recipients)
    <aip>/index.age     the name index: opaque name -> member and plaintext size, age-encrypted to the AIP key
    <aip>/<opaque>      one object; <opaque> is lowercase unpadded base32 of AES-SIV(names key, padded member)

AES-SIV is deterministic, so the same member of the same AIP always gets the same name (a repeated
upload finds what it already sent), and only the AIP's key turns a name back into the member. The
member's UTF-8 is padded to a multiple of 32 bytes so names say little about lengths.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from preserve.core.errors import DecryptionFailed
from preserve.storage.crypt.keys import AipKey

KEY_OBJECT = "key.age"
INDEX_OBJECT = "index.age"
#: S3's limit on an object key, in UTF-8 bytes
MAX_KEY_BYTES = 1024
#: member names are padded to a multiple of this many bytes before they are encrypted
PAD = 32
#: the largest name index read
MAX_INDEX_BYTES = 64 << 20
INDEX_FORMAT = "preserve name index 1"
HOW_TO_READ = (
    "This is the name index of one AIP on an encrypted target. Each key of 'objects' is the name of "
    "an object on the target, under the AIP's folder; 'name' is the file of the AIP it holds and "
    "'size' its size in bytes. Every object, and this index, is an age file encrypted to the AIP's "
    "key. To read one with the stock age tool (https://age-encryption.org): first "
    "'age -d -i TARGET-IDENTITY.txt <aip>/key.age > aip-key.txt' (TARGET-IDENTITY.txt is one of the "
    "target's age identities, as age-keygen wrote it), then "
    "'age -d -i aip-key.txt <aip>/<object name> > FILE'. This index opens the same way: "
    "'age -d -i aip-key.txt <aip>/index.age'."
)

_SIV_TAG = 16
_OPAQUE = re.compile(r"[a-z2-7]+")


def hide(key: AipKey, aip_id: str, logical: str) -> str:
    """The opaque key ``<aip>/<opaque>`` an encrypted target stores the object ``logical`` under
    (``logical`` is the full key, ``<aip>/<member>``). ValueError if it is not under ``aip_id`` or
    the hidden name would pass S3's 1024-byte key limit."""
    member = _member(aip_id, logical)
    raw = member.encode()
    limit = max_member_bytes(aip_id)
    if len(raw) > limit:
        raise ValueError(
            f"a member name of {len(raw)} bytes is too long for an encrypted target: hidden, it would pass "
            f"the {MAX_KEY_BYTES}-byte object key limit (at most {limit} bytes fit under this AIP)"
        )
    padded = len(raw).to_bytes(2, "big") + raw
    padded += bytes(-len(padded) % PAD)
    sealed = AESSIV(key.names_key).encrypt(padded, _aad(aip_id))
    return f"{aip_id}/{base64.b32encode(sealed).decode('ascii').rstrip('=').lower()}"


def reveal(key: AipKey, aip_id: str, physical: str) -> str:
    """The full logical key ``<aip>/<member>`` of the opaque key ``physical`` (the inverse of
    :func:`hide`); DecryptionFailed for a name not made with this AIP's key."""
    sealed = _decode(aip_id, physical)
    if sealed is None:
        raise DecryptionFailed("an object name under the AIP is not an opaque name of an encrypted target")
    try:
        padded = AESSIV(key.names_key).decrypt(sealed, _aad(aip_id))
    except InvalidTag:
        raise DecryptionFailed(
            "an object name under the AIP was not made with this AIP's key (or is damaged)"
        ) from None
    n = int.from_bytes(padded[:2], "big")
    body, rest = padded[2 : 2 + n], padded[2 + n :]
    if len(body) != n or any(rest) or len(rest) >= PAD:
        raise DecryptionFailed("an object name under the AIP decrypts to a malformed name")
    try:
        member = body.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionFailed("an object name under the AIP decrypts to a malformed name") from None
    return f"{aip_id}/{member}"


def is_opaque(aip_id: str, physical: str) -> bool:
    """Whether ``physical`` has the form of a name :func:`hide` makes under ``aip_id`` (not the key
    object, not the index, not anything else)."""
    return _decode(aip_id, physical) is not None


def max_member_bytes(aip_id: str) -> int:
    """The longest member name (UTF-8 bytes) whose hidden key under ``aip_id`` fits the key limit."""
    room = MAX_KEY_BYTES - len(aip_id.encode()) - 1  # characters left for the opaque part
    sealed = room * 5 // 8  # the most bytes that many base32 characters carry
    blocks = (sealed - _SIV_TAG) // PAD
    return max(0, blocks * PAD - 2)


def index_document(entries: Mapping[str, tuple[str, int]]) -> bytes:
    """The name index of an AIP: JSON (UTF-8, sorted, one object a line) of each opaque name given
    (as the caller names it: the object's name in the AIP's folder) to its member, relative to the AIP, and its
    plaintext size, with a note telling a person how to decrypt objects with the stock age tool."""
    lines = []
    for physical in sorted(entries):
        member, size = entries[physical]
        if not isinstance(member, str) or isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError("a name index entry is (member name, size in bytes)")
        entry = json.dumps({"name": member, "size": size}, ensure_ascii=False, sort_keys=True)
        lines.append(f"  {json.dumps(physical, ensure_ascii=False)}: {entry}")
    objects = "{\n" + ",\n".join(lines) + "\n }" if lines else "{}"
    text = (
        "{\n"
        f' "format": {json.dumps(INDEX_FORMAT)},\n'
        f' "how_to_read": {json.dumps(HOW_TO_READ, ensure_ascii=False)},\n'
        f' "objects": {objects}\n'
        "}\n"
    )
    return text.encode("utf-8")


def parse_index(data: bytes) -> dict[str, tuple[str, int]]:
    """The entries of a name index document (see :func:`index_document`); DecryptionFailed for
    anything else."""
    if len(data) > MAX_INDEX_BYTES:
        raise DecryptionFailed(f"the AIP's name index is larger than {MAX_INDEX_BYTES} bytes; refused")
    try:
        doc: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DecryptionFailed("the AIP's name index is not a JSON document") from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT or not isinstance(doc.get("objects"), dict):
        raise DecryptionFailed("the AIP's name index is not a preserve name index")
    out: dict[str, tuple[str, int]] = {}
    for physical, entry in doc["objects"].items():
        member = entry.get("name") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(member, str) or isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise DecryptionFailed("the AIP's name index has a malformed entry")
        out[physical] = (member, size)
    return out


def _member(aip_id: str, logical: str) -> str:
    if not aip_id or "/" in aip_id:
        raise ValueError("an AIP id is one non-empty path segment")
    member = logical[len(aip_id) + 1 :]
    if not logical.startswith(f"{aip_id}/") or not member:
        raise ValueError(f"an object key to hide is not a member of AIP {aip_id}")
    return member


def _aad(aip_id: str) -> list[bytes]:
    return [b"preserve/object-name", aip_id.encode()]


def _decode(aip_id: str, physical: str) -> bytes | None:
    """The AES-SIV output an opaque name carries, or None if ``physical`` is not one under ``aip_id``."""
    opaque = physical[len(aip_id) + 1 :]
    if not aip_id or not physical.startswith(f"{aip_id}/") or not _OPAQUE.fullmatch(opaque):
        return None
    n = len(opaque) * 5 // 8
    if n < _SIV_TAG + PAD or (n - _SIV_TAG) % PAD or -(-n * 8 // 5) != len(opaque):
        return None
    try:
        sealed = base64.b32decode(opaque.upper() + "=" * (-len(opaque) % 8))
    except binascii.Error:
        return None
    if base64.b32encode(sealed).decode("ascii").rstrip("=").lower() != opaque:
        return None  # a non-canonical spelling (stray low bits)
    return sealed
