"""Encrypted replicas against the stock age tool (age and age-keygen, as an archivist without
preserve would use them): our ciphertext opens with `age -d`, `age -r` output opens with ours, and a
key object opens in the two documented steps."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from preserve.core.errors import KeyUnavailable
from preserve.storage.crypt import age, keys, names
from preserve.storage.crypt.keys import AipKey

pytestmark = pytest.mark.skipif(
    shutil.which("age") is None or shutil.which("age-keygen") is None, reason="age/age-keygen not installed"
)

AIP = "5f0e8c1a-7b2d-4c3e-9a8f-6d5c4b3a2f1e"


def keygen(path: Path) -> tuple[str, str]:
    """A fresh identity file from age-keygen: (identity, recipient)."""
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    identity = keys.read_identities(path)[0]
    recipient = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True).stdout
    return identity, recipient.strip()


def age_decrypt(identity_file: Path, data: bytes) -> bytes:
    done = subprocess.run(["age", "-d", "-i", str(identity_file)], input=data, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


def test_our_ciphertext_opens_with_age(tmp_path: Path) -> None:
    identity, recipient = keygen(tmp_path / "id.txt")
    assert AipKey.from_identity(identity).recipient == recipient  # our Bech32 agrees with age-keygen
    for size in (0, 5, age.CHUNK, 3 * (1 << 20) + 5):
        data = os.urandom(size)
        enc = age.Encryptor(
            io.BytesIO(data), keys.recipient_public(recipient), os.urandom(32), size, hashlib.sha256(data).hexdigest()
        )
        pieces = []
        while piece := enc.read(1 << 20):
            pieces.append(piece)
        assert age_decrypt(tmp_path / "id.txt", b"".join(pieces)) == data


def test_age_ciphertext_opens_with_ours(tmp_path: Path) -> None:
    identity, recipient = keygen(tmp_path / "id.txt")
    secret = keys.identity_secret(identity)
    for size in (0, 1, 2 * age.CHUNK, 2 * (1 << 20) + 77):
        data = os.urandom(size)
        cipher = subprocess.run(["age", "-r", recipient], input=data, capture_output=True, check=True).stdout
        pieces = [cipher[i : i + 100_003] for i in range(0, len(cipher), 100_003)]
        assert b"".join(age.decrypt_chunks(pieces, secret)) == data


def test_key_object_opens_in_the_documented_two_steps(tmp_path: Path) -> None:
    target_id = tmp_path / "target-id.txt"
    _, target_recipient = keygen(target_id)
    _, second = keygen(tmp_path / "escrow-id.txt")
    key = AipKey.generate()
    (tmp_path / "key.age").write_bytes(keys.wrap(key, [target_recipient, second]))
    member = "data/objects/電影.mkv"
    film = os.urandom(age.CHUNK * 2 + 11)
    seed = key.object_seed(f"{AIP}/{member}", hashlib.sha256(film).hexdigest())
    physical = names.hide(key, AIP, f"{AIP}/{member}")
    obj = tmp_path / physical.split("/")[1]
    obj.write_bytes(age.encrypt_bytes(film, key.public, seed))
    index = names.index_document({physical: (member, len(film))})
    (tmp_path / "index.age").write_bytes(age.encrypt_bytes(index, key.public, os.urandom(32)))

    # step 1: the target's identity opens the key object into a key file
    run = {"capture_output": True, "check": True, "cwd": tmp_path}
    subprocess.run(["age", "-d", "-i", "target-id.txt", "-o", "aip-key.txt", "key.age"], **run)
    assert keys.read_identities(tmp_path / "aip-key.txt") == [key.identity]
    # step 2: that key file opens the objects and the index
    assert subprocess.run(["age", "-d", "-i", "aip-key.txt", obj.name], **run).stdout == film
    opened = subprocess.run(["age", "-d", "-i", "aip-key.txt", "index.age"], **run).stdout
    assert names.parse_index(opened) == {physical: (member, len(film))}
    # and preserve's own path agrees: the escrow identity unwraps the same key
    assert keys.unwrap((tmp_path / "key.age").read_bytes(), keys.read_identities(tmp_path / "escrow-id.txt")) == key


def test_two_recipients_second_identity(tmp_path: Path) -> None:
    first, r1 = keygen(tmp_path / "one.txt")
    second, r2 = keygen(tmp_path / "two.txt")
    data = os.urandom(age.CHUNK * 5 + 3)
    cipher = subprocess.run(["age", "-r", r1, "-r", r2], input=data, capture_output=True, check=True).stdout
    assert age.decrypt_bytes(cipher, keys.identity_secret(second)) == data
    assert age.decrypt_bytes(cipher, keys.identity_secret(first)) == data
    with pytest.raises(KeyUnavailable):
        age.decrypt_bytes(cipher, AipKey.generate().secret)


def test_age_refuses_our_damaged_ciphertext(tmp_path: Path) -> None:
    _, recipient = keygen(tmp_path / "id.txt")
    data = os.urandom(age.CHUNK + 9)
    cipher = bytearray(age.encrypt_bytes(data, keys.recipient_public(recipient), os.urandom(32)))
    cipher[age.PREFIX_BYTES + 100] ^= 1
    done = subprocess.run(["age", "-d", "-i", str(tmp_path / "id.txt")], input=bytes(cipher), capture_output=True)
    assert done.returncode != 0
