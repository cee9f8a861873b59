"""Per-AIP keys and opaque names of encrypted targets: age's Bech32 text forms (checked against
pyrage), seeds, key files and key objects, identity files, hidden names and the name index."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from pathlib import Path

import pyrage
import pytest

from preserve.core.errors import DecryptionFailed, KeyUnavailable
from preserve.storage.crypt import age, keys, names
from preserve.storage.crypt.keys import AipKey

AIP = "0b6a9f3e-5d0c-4d7e-9b61-2f1c3a4d5e6f"
SHA = hashlib.sha256(b"film").hexdigest()
#: fixed keys, so the name tests are the same on every run
KEY = AipKey(bytes(range(32)))
OTHER = AipKey(bytes(range(1, 33)))


# --- key text forms -------------------------------------------------------------------------------


def test_bech32_matches_pyrage() -> None:
    for _ in range(25):
        ident = pyrage.x25519.Identity.generate()
        key = AipKey.from_identity(str(ident))
        assert key.identity == str(ident)
        assert key.recipient == str(ident.to_public())
        assert keys.recipient_public(key.recipient) == key.public
    ours = AipKey.generate()
    assert str(pyrage.x25519.Identity.from_str(ours.identity).to_public()) == ours.recipient
    pyrage.x25519.Recipient.from_str(ours.recipient)


def test_identity_forms_and_errors() -> None:
    key = AipKey.generate()
    assert key.identity.startswith("AGE-SECRET-KEY-1") and key.identity == key.identity.upper()
    assert key.recipient.startswith("age1") and key.recipient == key.recipient.lower()
    assert len(key.recipient) == 62 and len(key.identity) == 74
    assert keys.identity_secret(key.identity) == key.secret
    assert AipKey.from_identity(key.identity.lower()) == key  # one case or the other
    bad = [
        "",
        key.recipient,  # a recipient is not an identity
        key.identity[:-1] + ("Q" if key.identity[-1] != "Q" else "P"),  # checksum
        key.identity[:20] + key.identity[20:].lower(),  # mixed case
        key.identity[:-7] + key.identity[-6:],  # a character missing
        "AGE-SECRET-KEY-1" + "Q" * 58,
        "AGE-SECRET-KEY-1" + "B" * 58,  # not in the alphabet
    ]
    for text in bad:
        with pytest.raises(ValueError):
            AipKey.from_identity(text)
    with pytest.raises(ValueError):
        keys.recipient_public(key.identity)
    with pytest.raises(ValueError):
        AipKey(b"short")


def test_bech32m_is_not_bech32() -> None:
    # the same data with a bech32m checksum (constant 0x2bc830a3) must be refused
    key = AipKey.generate()
    hrp = "age"
    words = keys._convert(key.public, 8, 5, pad=True)
    assert words is not None
    check = keys._polymod([*keys._hrp_expand(hrp), *words, 0, 0, 0, 0, 0, 0]) ^ 0x2BC830A3
    text = hrp + "1" + "".join(keys._CHARSET[w] for w in [*words, *((check >> 5 * (5 - i)) & 31 for i in range(6))])
    with pytest.raises(ValueError):
        keys.recipient_public(text)


def test_repr_keeps_the_secret() -> None:
    key = AipKey.generate()
    shown = repr(key) + str(key)
    assert key.identity not in shown and key.secret.hex() not in shown and repr(key.secret) not in shown
    assert key.recipient in shown


def test_keyfile_text_is_age_keygen_format(tmp_path: Path) -> None:
    key = AipKey.generate()
    text = key.keyfile_text()
    assert re.fullmatch(
        r"# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n# public key: (age1[a-z0-9]{58})\n(AGE-SECRET-KEY-1[A-Z0-9]{58})\n",
        text,
    )
    assert f"# public key: {key.recipient}\n" in text
    path = tmp_path / "aip-key.txt"
    path.write_text(text)
    assert keys.read_identities(path) == [key.identity]


def test_object_seeds() -> None:
    seed = KEY.object_seed(f"{AIP}/data/objects/a.mkv", SHA)
    assert len(seed) == 32
    assert KEY.object_seed(f"{AIP}/data/objects/a.mkv", SHA.upper()) == seed
    others = {
        KEY.object_seed(f"{AIP}/data/objects/b.mkv", SHA),
        KEY.object_seed(f"{AIP}/data/objects/a.mkv", hashlib.sha256(b"other").hexdigest()),
        OTHER.object_seed(f"{AIP}/data/objects/a.mkv", SHA),
        KEY.object_seed(f"{AIP}/data/objects/a.mkv/{SHA}", SHA),
    }
    assert seed not in others and len(others) == 4
    for bad in ("", "abc", SHA[:-1], SHA + "0", "g" * 64):
        with pytest.raises(ValueError):
            KEY.object_seed("x", bad)
    assert len(KEY.names_key) == 64 and KEY.names_key != OTHER.names_key
    assert KEY.secret not in KEY.names_key


# --- recipients and identity files ----------------------------------------------------------------


def test_parse_recipients() -> None:
    a, b = AipKey.generate(), AipKey.generate()
    assert keys.parse_recipients([a.recipient, f" {b.recipient}\n"]) == [a.recipient, b.recipient]
    assert keys.parse_recipients([]) == []
    with pytest.raises(ValueError, match="recipient 1 "):
        keys.parse_recipients([a.recipient, b.identity])
    with pytest.raises(ValueError, match="recipient 0 "):
        keys.parse_recipients(["age1notakey"])
    with pytest.raises(ValueError, match="recipient 2 "):
        keys.parse_recipients([a.recipient, b.recipient, "ssh-ed25519 AAAA"])


def test_read_identities(tmp_path: Path) -> None:
    a, b = AipKey.generate(), AipKey.generate()
    path = tmp_path / "id.txt"
    path.write_text(f"# created: x\n# public key: {a.recipient}\n\n{a.identity}\n  {b.identity}  \n")
    assert keys.read_identities(path) == [a.identity, b.identity]


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "cannot be read"),
        (b"", "holds no age X25519 identity"),
        (b"# just a comment\nsecret-film-title\n", "holds no age X25519 identity"),
        (b"AGE-SECRET-KEY-1SECRETFILMTITLE\n", "line 1 .* is not a valid"),
        (b"\xff\xfe secret-film-title", "not text"),
    ],
)
def test_bad_identity_files(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = tmp_path / "id.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyUnavailable, match=reason) as err:
        keys.read_identities(path)
    assert "SECRET" not in str(err.value).replace("AGE-SECRET-KEY", "") and "secret-film" not in str(err.value)
    assert "secret-film" not in err.value.public


def test_identity_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(KeyUnavailable):
        keys.read_identities(tmp_path)


# --- key objects ----------------------------------------------------------------------------------


def test_wrap_unwrap() -> None:
    key = AipKey.generate()
    t1, t2 = AipKey.generate(), AipKey.generate()
    blob = keys.wrap(key, [t1.recipient, t2.recipient])
    assert age.is_age(blob)
    assert keys.unwrap(blob, [t1.identity]) == key
    assert keys.unwrap(blob, [AipKey.generate().identity, t2.identity]) == key
    # the key object is an age file holding the key file: our own decryptor reads it too
    text = age.decrypt_bytes(blob, t2.secret).decode()
    assert key.identity in text and key.recipient in text
    assert key.identity.encode() not in blob and key.secret not in blob


def test_unwrap_with_the_wrong_identity() -> None:
    blob = keys.wrap(AipKey.generate(), [AipKey.generate().recipient])
    with pytest.raises(KeyUnavailable, match="not encrypted to the identity"):
        keys.unwrap(blob, [AipKey.generate().identity])
    with pytest.raises(KeyUnavailable):
        keys.unwrap(blob, [])


def test_unwrap_damaged() -> None:
    target = AipKey.generate()
    blob = keys.wrap(AipKey.generate(), [target.recipient])
    flipped = bytearray(blob)
    flipped[-5] ^= 1
    for bad in (bytes(flipped), blob[:-3], b"not an age file at all", b"", blob + b"x" * 100, bytes(1 << 17)):
        with pytest.raises(DecryptionFailed):
            keys.unwrap(bad, [target.identity])


def test_unwrap_refuses_what_is_not_a_key_file() -> None:
    target = AipKey.generate()
    recipient = pyrage.x25519.Recipient.from_str(target.recipient)
    two = f"{AipKey.generate().identity}\n{AipKey.generate().identity}\n".encode()
    lying = f"# public key: {AipKey.generate().recipient}\n{AipKey.generate().identity}\n".encode()
    for text in (b"hello", b"AGE-SECRET-KEY-1XYZ\n", two, lying, b"\xff\xff"):
        with pytest.raises(DecryptionFailed):
            keys.unwrap(pyrage.encrypt(text, [recipient]), [target.identity])


def test_wrap_needs_recipients() -> None:
    with pytest.raises(ValueError):
        keys.wrap(AipKey.generate(), [])
    with pytest.raises(ValueError, match="recipient 0"):
        keys.wrap(AipKey.generate(), ["nope"])


# --- names ----------------------------------------------------------------------------------------

MEMBERS = [
    "data/objects/a.mkv",
    "bagit.txt",
    "data/objects/電影 最終版/第一卷.mov",
    unicodedata.normalize("NFC", "data/objects/Amélie – scène 1.wav"),
    "data/objects/🎬 reel.dpx",
    "data/objects/" + "x" * 300,
    "versions/v2/premis.xml",
]


@pytest.mark.parametrize("member", MEMBERS)
def test_hide_reveal(member: str) -> None:
    logical = f"{AIP}/{member}"
    physical = names.hide(KEY, AIP, logical)
    assert names.reveal(KEY, AIP, physical) == logical
    assert names.hide(KEY, AIP, logical) == physical  # deterministic: a repeated upload finds it
    assert names.is_opaque(AIP, physical)
    assert physical.startswith(f"{AIP}/")
    opaque = physical[len(AIP) + 1 :]
    assert re.fullmatch(r"[a-z2-7]+", opaque)
    assert len(physical.encode()) <= 1024
    words = {w.lower() for w in re.split(r"[/ ._–-]+", member) if len(w) >= 3}
    assert not any(w in opaque for w in words)


def test_names_differ_per_key_and_aip() -> None:
    logical = f"{AIP}/data/objects/a.mkv"
    other_aip = "1c2d3e4f-0000-4000-8000-000000000000"
    hidden = {
        names.hide(KEY, AIP, logical).split("/")[1],
        names.hide(OTHER, AIP, logical).split("/")[1],
        names.hide(KEY, other_aip, f"{other_aip}/data/objects/a.mkv").split("/")[1],
        names.hide(KEY, AIP, f"{AIP}/data/objects/b.mkv").split("/")[1],
    }
    assert len(hidden) == 4
    with pytest.raises(DecryptionFailed):
        names.reveal(OTHER, AIP, names.hide(KEY, AIP, logical))
    # a name moved under another AIP does not open there
    moved = names.hide(KEY, AIP, logical).replace(AIP, other_aip)
    with pytest.raises(DecryptionFailed):
        names.reveal(KEY, other_aip, moved)


def test_lengths_leak_little() -> None:
    short = names.hide(KEY, AIP, f"{AIP}/a")
    longer = names.hide(KEY, AIP, f"{AIP}/data/objects/abcdefghijklm")  # 30 bytes
    assert len(short) == len(longer)
    assert len(names.hide(KEY, AIP, f"{AIP}/" + "a" * 31)) > len(short)


def test_too_long_for_an_encrypted_target() -> None:
    limit = names.max_member_bytes(AIP)
    assert 500 < limit < 1024
    fits = "d/" + "電" * ((limit - 2) // 3)
    assert len(names.hide(KEY, AIP, f"{AIP}/{fits}").encode()) <= 1024
    longest = "d/" + "x" * (limit - 2)
    assert len(names.hide(KEY, AIP, f"{AIP}/{longest}").encode()) <= 1024
    secret_title = "data/objects/My Secret Film " + "y" * limit
    with pytest.raises(ValueError, match="too long for an encrypted target") as err:
        names.hide(KEY, AIP, f"{AIP}/{secret_title}")
    assert "Secret" not in str(err.value)


@pytest.mark.parametrize("logical", [AIP, f"{AIP}/", f"{AIP}x/data/a", "other/data/a", f"x/{AIP}/data/a"])
def test_hide_only_members_of_the_aip(logical: str) -> None:
    with pytest.raises(ValueError):
        names.hide(KEY, AIP, logical)


def test_what_is_not_opaque() -> None:
    physical = names.hide(KEY, AIP, f"{AIP}/data/objects/a.mkv")
    opaque = physical.split("/")[1]
    not_opaque = [
        f"{AIP}/{names.KEY_OBJECT}",
        f"{AIP}/{names.INDEX_OBJECT}",
        f"{AIP}/{opaque.upper()}",
        f"{AIP}/{opaque[:-1]}",
        f"{AIP}/{opaque}a",
        f"{AIP}/{opaque[:40]}",
        f"{AIP}/x/{opaque}",
        f"other/{opaque}",
        f"{AIP}/data/objects/a.mkv",
        opaque,
    ]
    for name in not_opaque:
        assert not names.is_opaque(AIP, name), name
        with pytest.raises(DecryptionFailed):
            names.reveal(KEY, AIP, name)
    # a well-formed name that was not made with the key
    forged = f"{AIP}/" + "a" * len(opaque)
    assert names.is_opaque(AIP, forged)
    with pytest.raises(DecryptionFailed):
        names.reveal(KEY, AIP, forged)


# --- the name index -------------------------------------------------------------------------------


def test_index_round_trip() -> None:
    entries = {names.hide(KEY, AIP, f"{AIP}/{m}"): (m, i * 1000) for i, m in enumerate(MEMBERS)}
    doc = names.index_document(entries)
    assert names.parse_index(doc) == entries
    parsed = json.loads(doc)
    assert "age -d -i" in parsed["how_to_read"] and "key.age" in parsed["how_to_read"]
    assert "電影".encode() in doc  # UTF-8, not escaped
    assert list(parsed["objects"]) == sorted(entries)
    assert names.index_document(dict(reversed(list(entries.items())))) == doc
    assert names.parse_index(names.index_document({})) == {}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"[]",
        b'{"format": "x", "objects": {}}',
        b'{"format": "preserve name index 1"}',
        b'{"format": "preserve name index 1", "objects": {"a": {"name": 1, "size": 2}}}',
        b'{"format": "preserve name index 1", "objects": {"a": {"name": "n", "size": -2}}}',
        b'{"format": "preserve name index 1", "objects": {"a": {"name": "n", "size": true}}}',
        b'{"format": "preserve name index 1", "objects": {"a": ["n", 2]}}',
        b"[" * 100_000,
    ],
)
def test_parse_index_garbage(data: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        names.parse_index(data)


def test_parse_index_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = names.index_document({"x": ("m", 1)})
    monkeypatch.setattr(names, "MAX_INDEX_BYTES", len(doc) - 1)
    with pytest.raises(DecryptionFailed, match="larger"):
        names.parse_index(doc)


def test_index_document_refuses_bad_entries() -> None:
    with pytest.raises(ValueError):
        names.index_document({"x": ("m", -1)})


def test_a_key_read_back_from_its_key_file_names_and_seeds_alike() -> None:
    # the same key re-read from its key file hides and seeds identically
    again = AipKey.from_identity(KEY.keyfile_text().splitlines()[2])
    assert again == KEY
    assert names.hide(again, AIP, f"{AIP}/bagit.txt") == names.hide(KEY, AIP, f"{AIP}/bagit.txt")
    assert again.object_seed("k", SHA) == KEY.object_seed("k", SHA)
