"""The age v1 format of encrypted replicas: round trips at chunk boundaries, sizes, determinism, the
source check before the final chunk, any read size, every kind of damage detected, multi-stanza
headers as the age tool writes them, constant memory, and pyrage (the reference Rust age) agreeing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import random
import threading
import tracemalloc
from collections.abc import Iterator

import pyrage
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from preserve.core.errors import DecryptionFailed, KeyUnavailable, VerificationError
from preserve.storage.crypt import age
from preserve.storage.crypt.age import CHUNK, HEADER_BYTES, PREFIX_BYTES
from preserve.storage.crypt.keys import AipKey

SEALED = CHUNK + 16
SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, random.Random(16).randrange(4 * 65536)]


@pytest.fixture(scope="module")
def identity() -> tuple[bytes, bytes]:
    """(secret, public) of an X25519 key pair."""
    secret = X25519PrivateKey.generate()
    return secret.private_bytes_raw(), secret.public_key().public_bytes_raw()


def encrypt(data: bytes, public: bytes, seed: bytes | None = None) -> bytes:
    enc = age.Encryptor(io.BytesIO(data), public, seed or os.urandom(32), len(data), hashlib.sha256(data).hexdigest())
    return enc.read()


class Zeros(io.RawIOBase):
    """``n`` zero bytes, made as they are read (never held)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return bytes(size)


def zeros_sha256(n: int) -> str:
    h = hashlib.sha256()
    block = bytes(1 << 20)
    for _ in range(n >> 20):
        h.update(block)
    h.update(bytes(n & ((1 << 20) - 1)))
    return h.hexdigest()


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_and_sizes(identity: tuple[bytes, bytes], size: int) -> None:
    secret, public = identity
    data = os.urandom(size)
    cipher = encrypt(data, public)
    assert age.is_age(cipher)
    assert len(cipher) == age.ciphertext_size(size)
    assert age.plaintext_size(len(cipher)) == size
    assert age.decrypt_bytes(cipher, secret) == data
    # the reference implementation reads it too, and we read what it writes
    ident = pyrage.x25519.Identity.from_str(AipKey(secret).identity)
    assert pyrage.decrypt(cipher, [ident]) == data
    assert age.decrypt_bytes(pyrage.encrypt(data, [ident.to_public()]), secret) == data


def test_header_layout(identity: tuple[bytes, bytes]) -> None:
    cipher = encrypt(b"x", identity[1])
    assert HEADER_BYTES == 168 and PREFIX_BYTES == 184
    header = cipher[:HEADER_BYTES]
    lines = header.split(b"\n")
    assert lines[0] == b"age-encryption.org/v1"
    assert lines[1].startswith(b"-> X25519 ") and len(lines[1]) == 10 + 43
    assert len(lines[2]) == 43
    assert lines[3].startswith(b"--- ") and len(lines[3]) == 4 + 43 and lines[4] == b""


def test_size_functions_agree_everywhere() -> None:
    for plain in [*range(0, 3 * CHUNK + 40, 997), *(k * CHUNK + d for k in range(5) for d in (-1, 0, 1))]:
        if plain >= 0:
            assert age.plaintext_size(age.ciphertext_size(plain)) == plain
    valid = []
    for cipher in range(PREFIX_BYTES - 2, PREFIX_BYTES + 3 * SEALED + 40):
        try:
            plain = age.plaintext_size(cipher)
        except ValueError:
            continue
        assert age.ciphertext_size(plain) == cipher
        valid.append(plain)
    # sizes no age file has: a payload shorter than a tag, an empty final chunk after a full one
    for bad in (PREFIX_BYTES - 1, PREFIX_BYTES + 15, PREFIX_BYTES + SEALED + 16, PREFIX_BYTES + SEALED + 3):
        with pytest.raises(ValueError):
            age.plaintext_size(bad)
    # every plaintext size up to there, each once, in order
    assert valid == list(range(3 * CHUNK + 24))
    with pytest.raises(ValueError):
        age.ciphertext_size(-1)


def test_deterministic_per_seed(identity: tuple[bytes, bytes]) -> None:
    public = identity[1]
    data = os.urandom(2 * CHUNK + 3)
    seed = os.urandom(32)
    first = encrypt(data, public, seed)
    assert encrypt(data, public, seed) == first
    assert age.encrypt_bytes(data, public, seed) == first
    other = encrypt(data, public, os.urandom(32))
    assert other != first and len(other) == len(first)
    # nothing random is shared between the two: header, nonce and every chunk differ
    assert first[:HEADER_BYTES] != other[:HEADER_BYTES]
    assert first[HEADER_BYTES:PREFIX_BYTES] != other[HEADER_BYTES:PREFIX_BYTES]
    assert first[PREFIX_BYTES : PREFIX_BYTES + 64] != other[PREFIX_BYTES : PREFIX_BYTES + 64]


def test_derive() -> None:
    seed = bytes(range(32))
    assert age.derive(seed, "a", 16) == age.derive(seed, "a", 16)
    assert len(age.derive(seed, "a", 64)) == 64
    assert age.derive(seed, "a", 32) != age.derive(seed, "b", 32)
    assert age.derive(seed, "a", 32) != age.derive(bytes(32), "a", 32)
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"", info=b"preserve/a").derive(seed)
    assert age.derive(seed, "a", 32) == expected


@pytest.mark.parametrize("step", [1, 7, 4096, SEALED, SEALED + 1, 1 << 20, -1])
def test_any_read_size_gives_the_same_bytes(identity: tuple[bytes, bytes], step: int) -> None:
    data = os.urandom(2 * CHUNK + 100)
    seed = os.urandom(32)
    whole = encrypt(data, identity[1], seed)
    enc = age.Encryptor(io.BytesIO(data), identity[1], seed, len(data), None)
    pieces = []
    while piece := enc.read(step):
        if step > 0 and len(pieces) * step + len(piece) < len(whole):
            assert len(piece) == step  # exactly what was asked for, until the end
        pieces.append(piece)
    assert b"".join(pieces) == whole
    assert enc.read(10) == b""


def test_encryptor_is_a_stream(identity: tuple[bytes, bytes]) -> None:
    data = os.urandom(CHUNK + 5)
    seed = os.urandom(32)
    source = io.BytesIO(data)
    with age.Encryptor(source, identity[1], seed, len(data), None) as enc:
        assert enc.readable() and not enc.seekable()
        buffered = io.BufferedReader(enc, buffer_size=1000)  # readinto works
        assert buffered.read() == age.encrypt_bytes(data, identity[1], seed)
    assert source.closed


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: d[:-1], id="shorter"),
        pytest.param(lambda d: d + b"!", id="longer"),
        pytest.param(lambda d: d[:-1] + bytes([d[-1] ^ 1]), id="other-digest"),
        pytest.param(lambda d: bytes([d[0] ^ 1]) + d[1:], id="first-byte-changed"),
    ],
)
def test_changed_source_fails_before_the_final_chunk(identity: tuple[bytes, bytes], make) -> None:
    data = os.urandom(3 * CHUNK + 10)
    enc = age.Encryptor(
        io.BytesIO(make(data)), identity[1], os.urandom(32), len(data), hashlib.sha256(data).hexdigest(), label="src-1"
    )
    got = 0
    with pytest.raises(VerificationError, match=r"source src-1 .*changed since it was hashed"):
        while piece := enc.read(4096):
            got += len(piece)
    # nothing of the final chunk came out: the object can never be completed
    assert got <= PREFIX_BYTES + 3 * SEALED
    with pytest.raises(VerificationError):  # and it stays failed
        enc.read(4096)


LARGE = 3 * age.BATCH_CHUNKS * CHUNK + 12345  # reads of it span several batches (hashed aside)


def _hasher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("age-sha256")]


@pytest.mark.parametrize("step", [age.BATCH_CHUNKS * SEALED + 1, 5 << 20, -1])
@pytest.mark.parametrize("into", [False, True], ids=["read", "readinto"])
def test_large_reads_give_the_same_bytes(identity: tuple[bytes, bytes], step: int, into: bool) -> None:
    secret, public = identity
    data = os.urandom(LARGE)
    seed = os.urandom(32)
    small = age.Encryptor(io.BytesIO(data), public, seed, len(data), None)
    whole = b"".join(iter(lambda: small.read(4096), b""))
    enc = age.Encryptor(io.BytesIO(data), public, seed, len(data), hashlib.sha256(data).hexdigest())
    pieces = []
    if into:
        buf = bytearray(enc.length if step < 0 else step)
        while n := enc.readinto(buf):
            pieces.append(bytes(buf[:n]))
    else:
        while piece := enc.read(step):
            pieces.append(piece)
    assert b"".join(pieces) == whole
    assert all(len(p) == len(pieces[0]) for p in pieces[:-1])
    assert age.decrypt_bytes(whole, secret) == data
    assert not _hasher_threads()  # the worker is gone once the end is reached
    enc.close()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda d: d[:-1], id="shorter"),
        pytest.param(lambda d: d + b"!", id="longer"),
        pytest.param(lambda d: d[:-1] + bytes([d[-1] ^ 1]), id="last-byte-changed"),
        pytest.param(lambda d: bytes([d[0] ^ 1]) + d[1:], id="first-byte-changed"),
        pytest.param(lambda d: d[: 2 * CHUNK] + bytes([d[2 * CHUNK] ^ 1]) + d[2 * CHUNK + 1 :], id="middle-changed"),
    ],
)
@pytest.mark.parametrize("into", [False, True], ids=["read", "readinto"])
def test_changed_source_fails_in_large_reads(identity: tuple[bytes, bytes], make, into: bool) -> None:
    data = os.urandom(LARGE)
    enc = age.Encryptor(
        io.BytesIO(make(data)), identity[1], os.urandom(32), len(data), hashlib.sha256(data).hexdigest(), label="src-2"
    )
    step = 2 * age.BATCH_CHUNKS * SEALED
    buf = bytearray(step)
    got = 0
    with pytest.raises(VerificationError, match=r"source src-2 .*changed since it was hashed"):
        while True:
            buf[:] = bytes(step)
            n = enc.readinto(buf) if into else len(enc.read(step))
            if not n:
                break
            got += n
    # the read that reached the final chunk failed as a whole: none of its bytes came out
    assert got == step
    if into:  # and nothing of the final chunk was written either
        final = age.ciphertext_size(len(data)) - (len(data) % CHUNK + 16)
        assert step < final < 2 * step
        assert any(buf[: final - step]) and not any(buf[final - step :])
    with pytest.raises(VerificationError):  # and it stays failed
        enc.read(step)
    with pytest.raises(VerificationError):
        enc.readinto(buf)
    enc.close()
    assert not _hasher_threads()


def test_close_mid_stream_stops_the_hasher(identity: tuple[bytes, bytes]) -> None:
    data = os.urandom(LARGE)
    enc = age.Encryptor(io.BytesIO(data), identity[1], os.urandom(32), len(data), None)
    assert len(enc.read(2 * age.BATCH_CHUNKS * SEALED)) == 2 * age.BATCH_CHUNKS * SEALED
    enc.close()
    assert not _hasher_threads()
    with pytest.raises(ValueError, match="closed"):
        enc.readinto(bytearray(10))


def test_size_checked_without_a_digest(identity: tuple[bytes, bytes]) -> None:
    data = os.urandom(100)
    with pytest.raises(VerificationError, match="changed since it was hashed"):
        age.Encryptor(io.BytesIO(data), identity[1], os.urandom(32), 101, None).read()
    with pytest.raises(VerificationError, match="longer"):
        age.Encryptor(io.BytesIO(data), identity[1], os.urandom(32), 99, None).read()


def test_unreadable_source_is_a_verification_error(identity: tuple[bytes, bytes]) -> None:
    class Failing(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            raise OSError(5, "Input/output error")

    enc = age.Encryptor(Failing(), identity[1], os.urandom(32), 10, None, label="disk")
    with pytest.raises(VerificationError, match="source disk could not be read"):
        enc.read(PREFIX_BYTES + 1)


def test_bad_parameters(identity: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError):
        age.Encryptor(io.BytesIO(b""), b"short", os.urandom(32), 0, None)
    with pytest.raises(ValueError):
        age.Encryptor(io.BytesIO(b""), identity[1], b"short", 0, None)
    with pytest.raises(ValueError):  # a low-order point: the shared secret would be zero
        age.Encryptor(io.BytesIO(b""), bytes(32), os.urandom(32), 0, None)


# --- damage ---------------------------------------------------------------------------------------


def test_every_flipped_byte_is_detected(identity: tuple[bytes, bytes]) -> None:
    secret, public = identity
    cipher = encrypt(os.urandom(300), public)
    stanza = range(len(b"age-encryption.org/v1\n"), HEADER_BYTES - 48)
    for i in range(len(cipher)):
        damaged = bytearray(cipher)
        damaged[i] ^= 0x04
        if i in stanza:
            # a damaged stanza cannot be told from one made for another key
            with pytest.raises((DecryptionFailed, KeyUnavailable)):
                age.decrypt_bytes(bytes(damaged), secret)
        else:
            with pytest.raises(DecryptionFailed):
                age.decrypt_bytes(bytes(damaged), secret)


def test_flips_in_a_long_payload(identity: tuple[bytes, bytes]) -> None:
    secret, public = identity
    cipher = encrypt(os.urandom(3 * CHUNK + 17), public)
    rng = random.Random(7)
    spots = [PREFIX_BYTES, PREFIX_BYTES + SEALED - 1, PREFIX_BYTES + SEALED, len(cipher) - 1]
    for i in spots + [rng.randrange(PREFIX_BYTES, len(cipher)) for _ in range(20)]:
        damaged = bytearray(cipher)
        damaged[i] ^= 0x80
        with pytest.raises(DecryptionFailed, match="fails authentication"):
            b"".join(age.decrypt_chunks(_pieces(bytes(damaged), 5000), secret))


def test_tampered_mac(identity: tuple[bytes, bytes]) -> None:
    secret, public = identity
    cipher = bytearray(encrypt(b"hello", public))
    # a different (canonically encoded) MAC: flipping a base64 character could make it invalid base64
    at = HEADER_BYTES - 44
    mac = bytearray(base64.b64decode(bytes(cipher[at : at + 43]) + b"="))
    mac[5] ^= 0x01
    cipher[at : at + 43] = _b64(bytes(mac))
    with pytest.raises(DecryptionFailed, match="MAC"):
        age.decrypt_bytes(bytes(cipher), secret)


def test_truncation_anywhere(identity: tuple[bytes, bytes]) -> None:
    secret, public = identity
    cipher = encrypt(os.urandom(2 * CHUNK + 100), public)
    rng = random.Random(3)
    cuts = {0, 1, 21, 22, 60, HEADER_BYTES - 1, HEADER_BYTES, PREFIX_BYTES - 1, PREFIX_BYTES, PREFIX_BYTES + 15}
    cuts |= {PREFIX_BYTES + SEALED + d for d in (-1, 0, 1, 15, 16)} | {PREFIX_BYTES + 2 * SEALED, len(cipher) - 1}
    cuts |= {rng.randrange(len(cipher)) for _ in range(30)}
    for cut in sorted(cuts):
        with pytest.raises(DecryptionFailed):
            b"".join(age.decrypt_chunks(_pieces(cipher[:cut], 3000), secret))
    # cut exactly after a chunk: said to be truncated, not just damaged
    for cut in (PREFIX_BYTES, PREFIX_BYTES + SEALED, PREFIX_BYTES + 2 * SEALED):
        with pytest.raises(DecryptionFailed, match="truncated"):
            age.decrypt_bytes(cipher[:cut], secret)


@pytest.mark.parametrize("size", [5, 2 * CHUNK])
@pytest.mark.parametrize("extra", [b"\0", bytes(16), os.urandom(SEALED), os.urandom(3 * SEALED + 5)])
def test_trailing_data(identity: tuple[bytes, bytes], size: int, extra: bytes) -> None:
    secret, public = identity
    cipher = encrypt(os.urandom(size), public)
    with pytest.raises(DecryptionFailed):
        b"".join(age.decrypt_chunks(_pieces(cipher + extra, 7000), secret))


def test_trailing_data_after_a_full_final_chunk_is_named(identity: tuple[bytes, bytes]) -> None:
    secret, public = identity
    cipher = encrypt(os.urandom(2 * CHUNK), public)
    with pytest.raises(DecryptionFailed, match="after its final chunk"):
        age.decrypt_bytes(cipher + b"more", secret)


def test_wrong_identity(identity: tuple[bytes, bytes]) -> None:
    cipher = encrypt(b"secret film", identity[1])
    with pytest.raises(KeyUnavailable, match="not encrypted to this identity"):
        age.decrypt_bytes(cipher, X25519PrivateKey.generate().private_bytes_raw())


@pytest.mark.parametrize(
    "data",
    [b"", b"hello world", b"age-encryption.org/v2\n-> X25519 a\n\n--- a\n", os.urandom(100_000), b"age-encr"],
)
def test_not_an_age_file(identity: tuple[bytes, bytes], data: bytes) -> None:
    assert not age.is_age(data)
    with pytest.raises(DecryptionFailed, match="not an age file|truncated"):
        age.decrypt_bytes(data, identity[0])


def test_header_read_is_bounded(identity: tuple[bytes, bytes]) -> None:
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        yield age.MAGIC
        while True:
            line = b"-> grease\n" + b"A" * 63 + b"\n"
            sent += len(line)
            yield line

    with pytest.raises(DecryptionFailed, match="header"):
        list(age.decrypt_chunks(endless(), identity[0]))
    assert sent < 2 * age.MAX_HEADER


def test_malformed_headers(identity: tuple[bytes, bytes]) -> None:
    secret, public = identity
    good = encrypt(b"x", public)
    share_line = good.split(b"\n")[1]
    for header in [
        age.MAGIC + b"--- " + b"A" * 43 + b"\n",  # no stanza
        age.MAGIC + share_line + b"\n" + b"A" * 65 + b"\n--- " + b"A" * 43 + b"\n",  # body line too long
        age.MAGIC + share_line + b" extra\n" + b"A" * 43 + b"\n--- " + b"A" * 43 + b"\n",  # three arguments
        age.MAGIC + b"-> X25519 AAAA\n" + b"A" * 43 + b"\n--- " + b"A" * 43 + b"\n",  # short share
        age.MAGIC + share_line + b"\n" + b"A" * 42 + b"=\n--- " + b"A" * 43 + b"\n",  # padding
        age.MAGIC + share_line + b"\n" + b"A" * 42 + b"B\n--- " + b"A" * 43 + b"\n",  # non-canonical base64
        age.MAGIC + b"->  X25519\n\n--- " + b"A" * 43 + b"\n",  # empty argument
    ]:
        with pytest.raises(DecryptionFailed, match="malformed|not an age"):
            age.decrypt_bytes(header + bytes(32), secret)


# --- headers as other implementations write them ----------------------------------------------------


def _spec_file(file_key: bytes, stanzas: list[bytes], plaintext: bytes, nonce: bytes) -> bytes:
    """An age file put together from the spec with cryptography directly (not preserve's code)."""

    def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)

    head = b"age-encryption.org/v1\n" + b"".join(stanzas) + b"---"
    mac = hmac.new(hkdf(file_key, b"", b"header"), head, hashlib.sha256).digest()
    header = head + b" " + base64.b64encode(mac).rstrip(b"=") + b"\n"
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    chunks = [plaintext[i : i + CHUNK] for i in range(0, len(plaintext), CHUNK)] or [b""]
    body = b"".join(
        aead.encrypt(i.to_bytes(11, "big") + (b"\x01" if i == len(chunks) - 1 else b"\x00"), c, None)
        for i, c in enumerate(chunks)
    )
    return header + nonce + body


def _x25519_stanza(file_key: bytes, public: bytes) -> bytes:
    eph = X25519PrivateKey.generate()
    share = eph.public_key().public_bytes_raw()
    shared = eph.exchange(X25519PublicKey.from_public_bytes(public))
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=share + public, info=b"age-encryption.org/v1/X25519").derive(
        shared
    )
    body = ChaCha20Poly1305(key).encrypt(bytes(12), file_key, None)
    return b"-> X25519 " + _b64(share) + b"\n" + _b64(body) + b"\n"


def test_several_stanzas_of_several_kinds(identity: tuple[bytes, bytes]) -> None:
    secret, public = identity
    file_key, data = os.urandom(16), os.urandom(CHUNK + 9)
    other = X25519PrivateKey.generate().public_key().public_bytes_raw()
    grease = b"-> example.com/grease x y+z\n" + _b64(os.urandom(48)) + b"\n\n"  # a 64-column line, then an empty one
    long_body = b"-> ssh-ed25519 abc\n" + b"\n".join(_wrap64(_b64(os.urandom(100)))) + b"\n"
    stanzas = [grease, _x25519_stanza(file_key, other), long_body, _x25519_stanza(file_key, public)]
    cipher = _spec_file(file_key, stanzas, data, os.urandom(16))
    assert age.decrypt_bytes(cipher, secret) == data
    assert b"".join(age.decrypt_chunks(_pieces(cipher, 1), secret)) == data  # a byte at a time
    with pytest.raises(KeyUnavailable):
        age.decrypt_bytes(_spec_file(file_key, stanzas[:3], data, os.urandom(16)), secret)


def test_empty_final_chunk_after_full_ones_is_refused(identity: tuple[bytes, bytes]) -> None:
    secret, public = identity
    file_key, nonce = os.urandom(16), os.urandom(16)
    proper = _spec_file(file_key, [_x25519_stanza(file_key, public)], os.urandom(CHUNK), nonce)
    assert len(age.decrypt_bytes(proper, secret)) == CHUNK
    # the same full chunk, marked not final, then an empty final chunk
    aead_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=b"payload").derive(file_key)
    aead = ChaCha20Poly1305(aead_key)
    head_len = len(proper) - 16 - SEALED
    plain = aead.decrypt(bytes(11) + b"\x01", proper[head_len + 16 :], None)
    payload = aead.encrypt(bytes(11) + b"\x00", plain, None) + aead.encrypt(
        (1).to_bytes(11, "big") + b"\x01", b"", None
    )
    with pytest.raises(DecryptionFailed, match="empty final chunk"):
        age.decrypt_bytes(proper[: head_len + 16] + payload, secret)


# --- memory ---------------------------------------------------------------------------------------


def test_streaming_holds_neither_plaintext_nor_ciphertext(identity: tuple[bytes, bytes]) -> None:
    secret, public = identity
    size = 200 * 10**6
    enc = age.Encryptor(Zeros(size), public, os.urandom(32), size, zeros_sha256(size))

    def ciphertext() -> Iterator[bytes]:
        while piece := enc.read(1 << 20):
            yield piece

    tracemalloc.start()
    try:
        total = 0
        for plain in age.decrypt_chunks(ciphertext(), secret):
            total += len(plain)
            assert not any(plain[::4096])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    assert peak < 16 * 10**6


def test_large_reads_are_bounded_by_the_read(identity: tuple[bytes, bytes]) -> None:
    size = 64 << 20
    enc = age.Encryptor(Zeros(size), identity[1], os.urandom(32), size, None)
    tracemalloc.start()
    try:
        while enc.read(8 << 20):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * (8 << 20)


# --- helpers --------------------------------------------------------------------------------------


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _wrap64(text: bytes) -> list[bytes]:
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return lines if len(lines[-1]) < 64 else [*lines, b""]
