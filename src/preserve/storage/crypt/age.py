"""The age v1 file format (age-encryption.org/v1) for X25519 recipients, streaming and deterministic:
an encrypting reader over a plaintext stream and a chunk-by-chunk decryptor. Pure computation, no
I/O beyond reading the stream it is given.

Encryption is deterministic on purpose: the file key, the ephemeral X25519 secret and the payload
nonce all come from one ``seed`` (:func:`derive`), which the caller derives from the AIP key, the
object's logical name and its plaintext SHA-256. The same plaintext under the same key and name
therefore encrypts to the same bytes, so a killed multipart upload resumes with the parts already
sent. A different plaintext must never be encrypted under the same seed (it would reuse the
keystream): :class:`Encryptor` checks that the plaintext it read is exactly the one hashed, and
refuses to produce the final chunk otherwise. The output is a standard age file: ``age -d -i`` opens
it, and :func:`decrypt_chunks` opens what the stock ``age`` writes for X25519 recipients.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from preserve.core.errors import DecryptionFailed, KeyUnavailable, VerificationError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

#: plaintext bytes per payload chunk (age's STREAM chunk)
CHUNK = 65536
#: the Poly1305 tag each chunk carries
TAG = 16
#: one encrypted chunk, as stored
SEALED = CHUNK + TAG
#: the header line every age v1 file starts with
MAGIC = b"age-encryption.org/v1\n"
#: a header with one X25519 stanza: version line, "-> X25519 <43>", "<43>", "--- <43>"
HEADER_BYTES = len(MAGIC) + len(b"-> X25519 ") + 43 + 1 + 43 + 1 + len(b"--- ") + 43 + 1
#: header plus the payload nonce: where the first chunk starts
PREFIX_BYTES = HEADER_BYTES + 16
#: chunks read, hashed and encrypted together (1 MiB of plaintext)
BATCH_CHUNKS = 16
#: batches of plaintext handed to the hashing thread and not yet hashed, at most
HASH_AHEAD = 4
#: the most header bytes read before giving up on finding its end
MAX_HEADER = 65536

_X25519_INFO = b"age-encryption.org/v1/X25519"
_ZERO_NONCE = bytes(12)
_B64_LINE = 64


def derive(seed: bytes, label: str, n: int) -> bytes:
    """``n`` bytes of HKDF-SHA256 from ``seed`` for the purpose ``label`` (info ``preserve/<label>``)."""
    return _hkdf(seed, b"", b"preserve/" + label.encode(), n)


def ciphertext_size(plain: int) -> int:
    """The size of the age file (one X25519 recipient) of ``plain`` plaintext bytes."""
    if plain < 0:
        raise ValueError(f"a plaintext size cannot be negative ({plain})")
    chunks = max(1, -(-plain // CHUNK))
    return PREFIX_BYTES + plain + TAG * chunks


def plaintext_size(cipher: int) -> int:
    """The plaintext size of an age file (one X25519 recipient) of ``cipher`` bytes; ValueError
    when no such file can have that size."""
    payload = cipher - PREFIX_BYTES
    if payload < TAG:
        raise ValueError(f"{cipher} bytes is too short for an age file with one X25519 recipient")
    full, rest = divmod(payload, SEALED)
    if rest == 0:
        return full * CHUNK
    if payload == TAG:
        return 0
    if rest <= TAG:
        raise ValueError(f"no age file with one X25519 recipient is {cipher} bytes long")
    return full * CHUNK + rest - TAG


def is_age(prefix: bytes | bytearray | memoryview) -> bool:
    """Whether bytes start like a (binary) age v1 file."""
    return bytes(prefix[: len(MAGIC)]) == MAGIC


# --- encryption ------------------------------------------------------------------------------------


class Encryptor(io.RawIOBase, BinaryIO):
    """A readable stream of the age file of ``size`` plaintext bytes read from ``source``, encrypted
    to the X25519 public key ``recipient``, with everything random derived from ``seed``. Reads
    return exactly what was asked for until the end; memory stays about one read's worth (the buffer
    :meth:`read` encrypts into is kept for the next read; :meth:`readinto` encrypts into the
    caller's and is cheaper still). The plaintext read is hashed, on a worker thread while a large
    read is encrypted: when it ends, it must be ``size`` bytes with SHA-256 ``sha256`` (when given),
    else :class:`VerificationError` is raised before the final chunk is made."""

    def __init__(
        self, source: BinaryIO, recipient: bytes, seed: bytes, size: int, sha256: str | None, label: str = ""
    ) -> None:
        super().__init__()
        if len(seed) != 32:
            raise ValueError("the seed of an age encryption must be 32 bytes")
        if size < 0:
            raise ValueError(f"a plaintext size cannot be negative ({size})")
        self._source = source
        self._label = label
        self._want_sha = sha256.lower() if sha256 is not None else None
        self._size = size
        file_key = derive(seed, "age/file-key", 16)
        nonce = derive(seed, "age/payload-nonce", 16)
        header = _header(file_key, recipient, derive(seed, "age/ephemeral-secret", 32))
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload", 32))
        #: ciphertext made but not yet returned, and how much of it was returned
        self._pending: bytes = header + nonce
        self._pos = 0
        self._chunks = max(1, -(-size // CHUNK))
        self._next = 0  # index of the next chunk to encrypt
        self._left = size  # plaintext bytes not yet read from the source
        self._hash = hashlib.sha256()
        self._failed: VerificationError | None = None
        self._out = bytearray()  # where read() makes its ciphertext
        self._hasher: ThreadPoolExecutor | None = None
        self._hashing: deque[Future[None]] = deque()  # plaintext handed to the hasher, in order
        #: the size of the whole ciphertext
        self.length = ciphertext_size(size)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Encrypts straight into ``buffer``: the cheapest way to read (no copy at all)."""
        if self.closed:
            raise ValueError("read of a closed Encryptor")
        with memoryview(buffer) as view, view.cast("B") as target:
            n = min(target.nbytes, self._remaining())
            if n == 0:
                return 0
            with target[:n] as part:
                self._fill(part)
        return n

    def readall(self) -> bytes:
        return self.read(-1)

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read of a closed Encryptor")
        if size is None or size < 0:
            size = self.length
        available = len(self._pending) - self._pos
        if size <= available:
            out = self._pending[self._pos : self._pos + size]
            self._pos += size
            return out
        n = min(size, self._remaining())
        if n == available:  # nothing left to encrypt
            out, self._pending, self._pos = self._pending[self._pos :], b"", 0
            return out
        # the ciphertext is made in place in one buffer kept from read to read (no object per
        # chunk, no join, no fresh pages to fault in while encrypting), then copied out once
        if len(self._out) < n:
            self._out = bytearray(n)
        with memoryview(self._out) as whole, whole[:n] as view:
            self._fill(view)
            return bytes(view)

    def close(self) -> None:
        if not self.closed:
            self._out = bytearray()
            self._stop_hasher()
            try:
                self._source.close()
            finally:
                super().close()

    def _remaining(self) -> int:
        """Ciphertext bytes not yet returned."""
        return len(self._pending) - self._pos + self._left + TAG * (self._chunks - self._next)

    def _fill(self, view: memoryview) -> None:
        """Write the next ``len(view)`` bytes of ciphertext (at most :meth:`_remaining`) into ``view``."""
        if self._failed is not None:
            raise self._failed  # the source failed its check: never go on with it
        available = len(self._pending) - self._pos
        if available:
            view[:available] = memoryview(self._pending)[self._pos :]
        self._pending, self._pos = b"", 0
        need = view.nbytes - available
        if need <= 0:
            return
        count = min(-(-need // SEALED), self._chunks - self._next)
        try:
            self._seal(count, view[available:])
        except VerificationError as exc:
            self._failed = exc
            raise
        finally:
            self._drain()  # no plaintext outlives the read that took it
        if self._next == self._chunks:
            self._stop_hasher()

    def _seal(self, count: int, out: memoryview) -> None:
        """Read and encrypt the next ``count`` chunks into ``out``, a batch at a time; the part of the
        last one that does not fit is kept for the next read. The plaintext is hashed on a worker
        thread (hashlib lets go of the GIL) while it is encrypted here, and the hash is complete and
        checked before the final chunk is made."""
        encrypt_into = self._aead.encrypt_into
        threaded = count > BATCH_CHUNKS
        end = self._next + count
        pos = 0
        while self._next < end:
            first = self._next
            batch = min(BATCH_CHUNKS, end - first)
            final = first + batch == self._chunks
            want = self._left if final else batch * CHUNK
            plain = self._take(want)
            self._left -= want
            if threaded and not final:
                self._hash_later(plain)
            else:
                self._drain()
                self._hash.update(plain)
            if final:
                self._check_end()  # before the final chunk exists
            with memoryview(plain) as view:
                for index in range(first, first + batch):
                    nonce = index.to_bytes(11, "big") + (b"\x01" if index == self._chunks - 1 else b"\x00")
                    offset = (index - first) * CHUNK
                    with view[offset : offset + CHUNK] as chunk:
                        sealed = chunk.nbytes + TAG
                        if pos + sealed <= out.nbytes:
                            encrypt_into(nonce, chunk, None, out[pos : pos + sealed])
                        else:  # only partly wanted: keep its tail for the next read
                            whole = bytearray(sealed)
                            encrypt_into(nonce, chunk, None, whole)
                            out[pos:] = memoryview(whole)[: out.nbytes - pos]
                            self._pending, self._pos = bytes(whole), out.nbytes - pos
                        pos += sealed
            self._next += batch

    def _hash_later(self, plain: bytes) -> None:
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="age-sha256")
        while len(self._hashing) >= HASH_AHEAD:  # bound the plaintext held for the hasher
            self._hashing.popleft().result()
        self._hashing.append(self._hasher.submit(self._hash.update, plain))

    def _drain(self) -> None:
        """Wait for the plaintext handed to the worker to be hashed."""
        while self._hashing:
            self._hashing.popleft().result()

    def _stop_hasher(self) -> None:
        hasher, self._hasher = self._hasher, None
        if hasher is not None:
            hasher.shutdown(wait=True, cancel_futures=False)
        self._hashing.clear()

    def _take(self, n: int) -> bytes:
        """Exactly ``n`` bytes from the source; VerificationError when it ends sooner."""
        if n == 0:
            return b""
        pieces: list[bytes] = []
        got = 0
        while got < n:
            piece = self._read_source(n - got)
            if not piece:
                read = self._size - self._left + got
                raise VerificationError(
                    f"source {self._label} ended after {read} bytes, expected {self._size}: "
                    "it changed since it was hashed"
                )
            pieces.append(piece)
            got += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _read_source(self, n: int) -> bytes:
        try:
            return bytes(self._source.read(n) or b"")
        except OSError as exc:
            raise VerificationError(
                f"source {self._label} could not be read while encrypting ({exc.strerror or exc}): "
                "it is unreadable or changed since it was hashed"
            ) from exc

    def _check_end(self) -> None:
        if self._read_source(1):
            raise VerificationError(
                f"source {self._label} is longer than the {self._size} bytes expected: it changed since it was hashed"
            )
        if self._want_sha is not None and self._hash.hexdigest() != self._want_sha:
            raise VerificationError(
                f"source {self._label} no longer has SHA-256 {self._want_sha}: it changed since it was hashed"
            )


def encrypt_bytes(data: bytes, recipient: bytes, seed: bytes) -> bytes:
    """The age file of ``data`` (see :class:`Encryptor`)."""
    with Encryptor(io.BytesIO(data), recipient, seed, len(data), None) as enc:
        return enc.read()


def _header(file_key: bytes, recipient: bytes, ephemeral_secret: bytes) -> bytes:
    """The age header wrapping ``file_key`` for the X25519 public key ``recipient``."""
    if len(recipient) != 32:
        raise ValueError("an X25519 recipient is a 32-byte public key")
    ephemeral = X25519PrivateKey.from_private_bytes(ephemeral_secret)
    share = ephemeral.public_key().public_bytes_raw()
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    except ValueError as exc:  # a low-order point: the shared secret would be all zeros
        raise ValueError("the X25519 recipient is not a usable public key") from exc
    wrap_key = _hkdf(shared, share + recipient, _X25519_INFO, 32)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    head = MAGIC + b"-> X25519 " + _b64(share) + b"\n" + _wrap_body(_b64(body)) + b"---"
    return head + b" " + _b64(_mac(file_key, head)) + b"\n"


# --- decryption ------------------------------------------------------------------------------------


class Decryptor:
    """Incremental decryption of one age file with the X25519 secret ``identity``: :meth:`feed` it
    the ciphertext in pieces of any size, each call returning the plaintext it completes, then call
    :meth:`finish` for the rest. Holds at most one piece plus one chunk. Raises
    :class:`DecryptionFailed` for anything but an intact age file, :class:`KeyUnavailable` when it
    is not encrypted to ``identity``."""

    def __init__(self, identity: bytes) -> None:
        if len(identity) != 32:
            raise ValueError("an X25519 identity is a 32-byte secret")
        self._identity = X25519PrivateKey.from_private_bytes(identity)
        self._public = self._identity.public_key().public_bytes_raw()
        self._buf = bytearray()
        self._aead: ChaCha20Poly1305 | None = None
        self._scan = 0  # where to resume looking for the header's end
        self._counter = 0
        self._done = False
        #: bytes of the header (stanzas and MAC line), once parsed
        self.header_size: int | None = None
        #: plaintext bytes returned so far
        self.plaintext_size = 0

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        if self._done:
            raise ValueError("feed after finish")
        if self._aead is not None:
            return self._open_chunks(data, final=False)
        self._buf += data
        if not self._parse_header():
            return b""
        # what came after the header and nonce is the start of the payload
        rest, self._buf = bytes(self._buf), bytearray()
        return self._open_chunks(rest, final=False)

    def finish(self) -> bytes:
        if self._done:
            return b""
        self._done = True
        if self._aead is None:
            if not self._buf:
                raise DecryptionFailed("not an age file: it is empty")
            if not is_age(self._buf) and not MAGIC.startswith(bytes(self._buf)):
                raise DecryptionFailed("not an age file: it does not start with the age v1 header")
            raise DecryptionFailed("the age file is truncated: it ends inside its header")
        return self._open_chunks(b"", final=True)

    def _parse_header(self) -> bool:
        """Parse and check the header once all of it has arrived; True when the payload key is set."""
        buf = self._buf
        if len(buf) >= len(MAGIC) and not is_age(buf):
            raise DecryptionFailed("not an age file: it does not start with the age v1 header")
        mark = buf.find(b"\n---", max(0, self._scan - 3))
        self._scan = len(buf) if mark < 0 else mark
        newline = buf.find(b"\n", mark + 1) if mark >= 0 else -1
        if newline < 0:
            if len(buf) > MAX_HEADER:
                raise DecryptionFailed(f"not an age file: no end of its header in the first {MAX_HEADER} bytes")
            return False
        end = newline + 1
        if end > MAX_HEADER:
            raise DecryptionFailed(f"the age header is larger than {MAX_HEADER} bytes; refused")
        header = bytes(buf[:end])
        stanzas, mac = _parse(header)
        file_key = self._unwrap(stanzas)
        if not hmac.compare_digest(_mac(file_key, header[: mark + 4]), mac):
            raise DecryptionFailed("the age header's MAC does not verify: the header is damaged or was tampered with")
        if len(buf) < end + 16:
            return False  # the nonce has not fully arrived: parse again (cheap, bounded) when it has
        nonce = bytes(buf[end : end + 16])
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload", 32))
        self.header_size = end
        del buf[: end + 16]
        return True

    def _unwrap(self, stanzas: list[tuple[list[bytes], bytes]]) -> bytes:
        for args, body in stanzas:
            if args[0] != b"X25519":
                continue
            if len(args) != 2:
                raise DecryptionFailed("malformed age header: an X25519 stanza must have exactly one argument")
            share = _unb64(args[1])
            if len(share) != 32 or len(body) != 32:
                raise DecryptionFailed("malformed age header: an X25519 stanza's share and body must be 32 bytes")
            try:
                shared = self._identity.exchange(X25519PublicKey.from_public_bytes(share))
            except ValueError:
                continue  # an all-zero shared secret: not for us (and never a valid stanza)
            if not any(shared):
                continue
            wrap_key = _hkdf(shared, share + self._public, _X25519_INFO, 32)
            try:
                file_key = ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
            except InvalidTag:
                continue
            if len(file_key) == 16:
                return file_key
        raise KeyUnavailable(
            "the object is not encrypted to this identity: no X25519 stanza of its age header opens with it "
            "(or the header is damaged)"
        )

    def _open_chunks(self, data: bytes | bytearray | memoryview, *, final: bool) -> bytes:
        """Decrypt every chunk that ``data`` completes; with ``final``, what is left is the last chunk.
        A full chunk is known not to be the last only once a byte after it has arrived, so up to one
        chunk waits in the carry (``self._buf``); the rest is decrypted where it lies, not copied."""
        aead = self._aead
        assert aead is not None
        carry = self._buf
        out: list[bytes] = []
        with memoryview(data) as view:
            total = len(carry) + view.nbytes
            ready = (total - 1) // SEALED if total else 0  # chunks with something after them
            if ready:
                pos = 0
                if carry:
                    pos = SEALED - len(carry)
                    carry += view[:pos]
                    out.append(self._open(aead, carry, last=False))
                    ready -= 1
                for _ in range(ready):
                    out.append(self._open(aead, view[pos : pos + SEALED], last=False))
                    pos += SEALED
                self._buf = carry = bytearray(view[pos:])
            else:
                carry += view
        if final:
            if len(carry) < TAG:
                raise DecryptionFailed("the age file is truncated: its payload ends without a final chunk")
            out.append(self._open(aead, carry, last=True))
            self._buf = bytearray()
        plain = out[0] if len(out) == 1 else b"".join(out)
        self.plaintext_size += len(plain)
        return plain

    def _open(self, aead: ChaCha20Poly1305, sealed: bytearray | memoryview, *, last: bool) -> bytes:
        index = self._counter
        nonce = index.to_bytes(11, "big")
        try:
            plain = aead.decrypt(nonce + (b"\x01" if last else b"\x00"), sealed, None)
        except InvalidTag:
            raise self._diagnose(aead, nonce, sealed, last=last) from None
        if last and not plain and index > 0:
            raise DecryptionFailed("malformed age payload: an empty final chunk after other chunks")
        self._counter += 1
        return plain

    def _diagnose(
        self, aead: ChaCha20Poly1305, nonce: bytes, sealed: bytearray | memoryview, *, last: bool
    ) -> DecryptionFailed:
        """Why chunk ``nonce`` does not open: cut short, followed by more, or damaged."""
        try:
            aead.decrypt(nonce + (b"\x00" if last else b"\x01"), sealed, None)
        except InvalidTag:
            return DecryptionFailed(
                f"age payload chunk {self._counter} fails authentication: the object is damaged or was tampered with"
            )
        if last:
            return DecryptionFailed(
                f"the age file is truncated: its payload ends after chunk {self._counter}, which is not the final one"
            )
        return DecryptionFailed(f"the age file has data after its final chunk (chunk {self._counter})")


def decrypt_chunks(chunks: Iterable[bytes], identity: bytes) -> Iterator[bytes]:
    """The plaintext of the age file arriving as ``chunks``, piece by piece (see :class:`Decryptor`).
    Everything yielded is authentic, but only the end of the iteration proves the file complete."""
    dec = Decryptor(identity)
    for chunk in chunks:
        data = dec.feed(chunk)
        if data:
            yield data
    data = dec.finish()
    if data:
        yield data


def decrypt_bytes(data: bytes, identity: bytes) -> bytes:
    """The plaintext of the whole age file ``data``."""
    return b"".join(decrypt_chunks([data], identity))


def _parse(header: bytes) -> tuple[list[tuple[list[bytes], bytes]], bytes]:
    """The stanzas (arguments, body) and MAC of a complete age v1 header."""
    lines = header.split(b"\n")
    # a header ends with a line feed, so the split ends with an empty string
    if lines[0] + b"\n" != MAGIC or lines[-1] != b"":
        raise DecryptionFailed("not an age file: it does not start with the age v1 header")
    lines = lines[1:-1]
    stanzas: list[tuple[list[bytes], bytes]] = []
    i = 0
    while i < len(lines) and lines[i].startswith(b"-> "):
        args = lines[i][3:].split(b" ")
        if not all(args) or not all(_vchars(a) for a in args):
            raise DecryptionFailed("malformed age header: a stanza has an empty or invalid argument")
        i += 1
        body = []
        while True:
            if i >= len(lines) or lines[i].startswith(b"---"):
                raise DecryptionFailed("malformed age header: a stanza body does not end with a short line")
            line = lines[i]
            i += 1
            if len(line) > _B64_LINE:
                raise DecryptionFailed("malformed age header: a stanza body line is longer than 64 columns")
            body.append(line)
            if len(line) < _B64_LINE:
                break
        stanzas.append((args, _unb64(b"".join(body))))
    if not stanzas:
        raise DecryptionFailed("malformed age header: it has no recipient stanza")
    if i != len(lines) - 1 or not lines[i].startswith(b"--- "):
        raise DecryptionFailed("malformed age header: the stanzas are not followed by its MAC line")
    mac = _unb64(lines[i][4:])
    if len(mac) != 32:
        raise DecryptionFailed("malformed age header: its MAC is not 32 bytes")
    return stanzas, mac


def _vchars(arg: bytes) -> bool:
    return all(0x21 <= c <= 0x7E for c in arg)


# --- primitives ------------------------------------------------------------------------------------


def _hkdf(ikm: bytes, salt: bytes, info: bytes, n: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)


def _mac(file_key: bytes, head: bytes) -> bytes:
    return hmac.new(_hkdf(file_key, b"", b"header", 32), head, hashlib.sha256).digest()


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    """Canonical unpadded standard base64, as age requires; DecryptionFailed otherwise."""
    if len(text) % 4 == 1 or text.endswith(b"="):
        raise DecryptionFailed("malformed age header: invalid base64")
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise DecryptionFailed("malformed age header: invalid base64") from None
    if _b64(data) != text:
        raise DecryptionFailed("malformed age header: non-canonical base64")
    return data


def _wrap_body(text: bytes) -> bytes:
    """A stanza body wrapped at 64 columns, ending with a line shorter than 64 (maybe empty)."""
    lines = [text[i : i + _B64_LINE] for i in range(0, len(text), _B64_LINE)]
    if not lines or len(lines[-1]) == _B64_LINE:
        lines.append(b"")
    return b"".join(line + b"\n" for line in lines)
