"""A tiny HTTP/1.1 TCP proxy on 127.0.0.1 for fault tests: it relays to a real server and can
damage requests on the way, as a faulty network card, middlebox or gateway would:

- ``corrupt``: flip one byte in the body of that many requests that carry a body (after their
  headers, so the request still parses and is signed correctly; only the bytes change);
- ``drop_headers``: remove request headers whose names start with these prefixes (a gateway that
  silently drops what it does not know, e.g. ``x-amz-checksum-``);
- ``cut_response_after``: drop the connection once, after relaying that many bytes of a response
  (a connection lost mid-download);
- ``unavailable``: answer that many requests that carry a body with ``503 Slow Down`` (as S3 does
  when overloaded) instead of passing them on, then close the connection.

Requests are framed by Content-Length (botocore sends no chunked bodies here). Runs in daemon
threads; ``close()`` stops it. Only ever listens on and connects to loopback addresses."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    upstream: tuple[str, int]
    corrupt: int = 0  # how many request bodies still to damage; -1 = every one
    drop_headers: tuple[str, ...] = ()
    cut_response_after: int = 0  # 0 = never
    unavailable: int = 0  # requests with a body still to refuse with 503
    refused: int = 0  # requests refused with 503 so far
    corrupted: int = 0  # bodies damaged so far
    cuts: int = 0  # connections dropped so far
    _sock: socket.socket = field(init=False, repr=False)
    _threads: list[threading.Thread] = field(default_factory=list, repr=False)
    _closing: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        assert self.upstream[0].startswith("127."), "fault tests stay on loopback"
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        t = threading.Thread(target=self._accept, daemon=True, name="faultproxy-accept")
        t.start()
        self._threads.append(t)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self) -> None:
        self._closing.set()
        self._sock.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- relaying ------------------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=30)
            except OSError:
                client.close()
                continue
            for target, args in ((self._requests, (client, server)), (self._responses, (server, client))):
                t = threading.Thread(target=target, args=args, daemon=True)
                t.start()
                self._threads.append(t)

    def _responses(self, src: socket.socket, dst: socket.socket) -> None:
        relayed = 0
        try:
            while data := src.recv(1 << 16):
                limit = self.cut_response_after
                if limit and relayed + len(data) > limit and self.cuts == 0:
                    self.cuts += 1
                    dst.sendall(data[: max(0, limit - relayed)])
                    return
                dst.sendall(data)
                relayed += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _take_corruption(self) -> bool:
        with self._lock:
            if self.corrupt == 0:
                return False
            if self.corrupt > 0:
                self.corrupt -= 1
            self.corrupted += 1
            return True

    def _take_unavailable(self) -> bool:
        with self._lock:
            if self.unavailable <= 0:
                return False
            self.unavailable -= 1
            self.refused += 1
            return True

    @staticmethod
    def _answer_503(client: socket.socket, head: list[bytes], length: int, buf: bytes) -> None:
        """A final 503 instead of the request's answer. A client waiting for "100 Continue" gets
        it at once and sends no body; otherwise the body is read first, as a server would."""
        if not any(ln.lower().startswith(b"expect:") for ln in head[1:]):
            got = len(buf)
            while got < length and (data := client.recv(1 << 16)):
                got += len(data)
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>"
        )
        client.sendall(
            b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )

    def _requests(self, client: socket.socket, server: socket.socket) -> None:
        """Client to server, one request at a time: headers (possibly filtered), then the body
        (possibly with one byte flipped half-way through)."""
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(1 << 16)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                kept = [lines[0]] + [
                    ln
                    for ln in lines[1:]
                    if not any(ln.lower().startswith(p.lower().encode()) for p in self.drop_headers)
                ]
                length = 0
                for ln in kept[1:]:
                    name, _, value = ln.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length and self._take_unavailable():
                    self._answer_503(client, kept, length, buf)
                    return
                server.sendall(b"\r\n".join(kept) + b"\r\n\r\n")
                flip_at = length // 2 if length and self._take_corruption() else -1
                sent = 0
                while sent < length:
                    if not buf:
                        buf = client.recv(1 << 16)
                        if not buf:
                            return
                    chunk, buf = buf[: length - sent], buf[length - sent :]
                    if sent <= flip_at < sent + len(chunk):
                        i = flip_at - sent
                        chunk = chunk[:i] + bytes([chunk[i] ^ 0x01]) + chunk[i + 1 :]
                    server.sendall(chunk)
                    sent += len(chunk)
        except OSError:
            pass
        finally:
            for s in (client, server):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
