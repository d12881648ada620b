"""HTTP/1.1 response framing for the load generator (``lab.load``).

Finds where one response ends in the bytes a keep-alive connection receives: status line
and headers up to the blank line, then a body framed by Content-Length, by chunked
transfer-encoding (done at the terminating zero-size chunk and its trailers), or by the
server closing the connection. Server-sent events arrive as a chunked (or close-framed)
``text/event-stream`` body; their blank-line-terminated events are counted on the way.

Why not ``h11`` or ``httptools``: the load generator's CPU is taken from the server's cores
on a 2-core box, so it does the least work that still frames a response correctly. It
never copies a body: it scans the received buffer with ``bytes.find`` and keeps only a
partial head or chunk-size line between reads. Header values other than the framing ones
are not parsed.
"""

from __future__ import annotations

MAX_HEAD = 65536  # bytes of status line + headers before a response is refused as malformed

# Parser states (ints: compared on every read).
HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_END, TRAILERS, UNTIL_CLOSE, DONE = range(8)


class ProtocolError(ValueError):
    """The server's bytes are not a well-framed HTTP/1.x response."""


def _header(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower-case, with leading CRLF and colon) in a lower-cased head."""
    i = head.find(name)
    if i < 0:
        return None
    j = head.find(b"\r\n", i + 2)
    return head[i + len(name) : j if j >= 0 else len(head)].strip()


class ResponseParser:
    """Frames one response at a time: ``reset`` before each request, ``feed`` what arrives.

    After ``feed`` returns True: ``status``, ``close`` (the server will close the connection
    after this response), ``body_bytes`` and ``events`` (server-sent events seen) describe it.
    """

    __slots__ = ("_buf", "_last", "_remaining", "_sse", "body_bytes", "close", "events", "head_only", "state", "status")

    def __init__(self) -> None:
        self.status = 0
        self.close = False
        self._buf = b""
        self._remaining = 0
        self._sse = False
        self.reset()

    def reset(self, *, head_only: bool = False) -> None:
        """Expect a new response; ``head_only`` for the answer to a HEAD request (no body).

        Only what a response does not overwrite is reset: this runs once per request.
        """
        self.head_only = head_only
        self.state = HEAD
        self.body_bytes = 0
        self.events = 0
        self._last = 0

    def feed(self, data: bytes) -> bool:
        """Consume bytes from the connection; True once the response is complete."""
        pos = 0
        if self._buf:
            data = self._buf + data
            self._buf = b""
        elif self.state == HEAD:
            # The common case, a whole Content-Length response in one read, without the loop.
            eoh = data.find(b"\r\n\r\n")
            if eoh >= 0:
                pos = self._head(data, 0, eoh)
                if self.state == LENGTH and len(data) - pos == self._remaining and not self._sse:
                    self.body_bytes = self._remaining
                    self.state = DONE
                    return True
        end = len(data)
        while True:
            state = self.state
            if state == LENGTH:
                take = min(self._remaining, end - pos)
                if self._sse:
                    self._body(data, pos, pos + take)
                else:
                    self.body_bytes += take
                pos += take
                self._remaining -= take
                if self._remaining:
                    return False
                self.state = DONE
            elif state == HEAD:
                eoh = data.find(b"\r\n\r\n", pos)
                if eoh < 0:
                    if end - pos > MAX_HEAD:
                        raise ProtocolError(f"no end of headers in {end - pos} bytes")
                    self._buf = data[pos:]
                    return False
                pos = self._head(data, pos, eoh)
                continue
            elif state == CHUNK_SIZE:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    if end - pos > 1024:
                        raise ProtocolError("chunk-size line too long")
                    self._buf = data[pos:]
                    return False
                try:
                    size = int(data[pos:eol].split(b";", 1)[0], 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {data[pos:eol][:40]!r}") from None
                pos = eol + 2
                if size < 0:
                    raise ProtocolError(f"bad chunk size {size}")
                self.state = CHUNK_DATA if size else TRAILERS
                self._remaining = size
                continue
            elif state == CHUNK_DATA:
                take = min(self._remaining, end - pos)
                self._body(data, pos, pos + take)
                pos += take
                self._remaining -= take
                if self._remaining:
                    return False
                self.state = CHUNK_END
                continue
            elif state == CHUNK_END:
                if end - pos < 2:
                    self._buf = data[pos:]
                    return False
                if data[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("chunk data not followed by CRLF")
                pos += 2
                self.state = CHUNK_SIZE
                continue
            elif state == TRAILERS:
                # "0\r\n" then either "\r\n" (no trailers) or trailer lines ending in a blank line.
                if end - pos < 2:
                    self._buf = data[pos:]
                    return False
                if data[pos : pos + 2] == b"\r\n":
                    pos += 2
                else:
                    eot = data.find(b"\r\n\r\n", pos)
                    if eot < 0:
                        self._buf = data[pos:]
                        return False
                    pos = eot + 4
                self.state = DONE
            elif state == UNTIL_CLOSE:
                self._body(data, pos, end)
                return False
            if self.state == DONE:
                if pos != end:
                    # One request is in flight per connection: anything more is the server's error.
                    raise ProtocolError(f"{end - pos} bytes after the end of the response")
                return True

    def eof(self) -> bool:
        """The server closed the connection: True if that completes the response (close-framed body)."""
        if self.state == UNTIL_CLOSE:
            self.state = DONE
            return True
        return False

    def _head(self, data: bytes, pos: int, eoh: int) -> int:
        """Parse the status line and framing headers; return the position of the body.

        Runs once per response, so it does as few scans as the framing allows: Content-Length
        first (a response with both Content-Length and chunked is malformed, RFC 9112 §6.3,
        and no server under test sends one), chunked and the event-stream type only without it.
        """
        if data[pos : pos + 5] != b"HTTP/":
            raise ProtocolError(f"not an HTTP response: {data[pos : pos + 20]!r}")
        try:
            status = int(data[pos + 9 : pos + 12])
        except ValueError:
            raise ProtocolError(f"bad status line {data[pos : pos + 40]!r}") from None
        body = eoh + 4
        if 100 <= status < 200 and status != 101:
            return body  # interim response (100 Continue): the real one follows, still in state HEAD
        if status == 101:
            raise ProtocolError("the server switched protocols (101); the load generator speaks HTTP/1.1 only")
        self.status = status
        head = data[pos:eoh].lower()
        i = head.find(b"\r\nconnection:")
        value = b""
        if i >= 0:
            j = head.find(b"\r\n", i + 13)
            value = head[i + 13 : j if j >= 0 else len(head)]
        if head[5:8] == b"1.0":
            self.close = b"keep-alive" not in value
        else:
            self.close = b"close" in value
        self._sse = False
        if self.head_only or status == 204 or status == 304:
            self.state = DONE
            return body
        i = head.find(b"\r\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r\n", i + 17)
            length = head[i + 17 : j if j >= 0 else len(head)]
            try:
                remaining = int(length)
            except ValueError:
                raise ProtocolError(f"bad Content-Length {length[:40]!r}") from None
            if remaining < 0:
                raise ProtocolError(f"bad Content-Length {remaining}")
            self._remaining = remaining
            self.state = LENGTH if remaining else DONE
            return body
        ctype = _header(head, b"\r\ncontent-type:")
        self._sse = ctype is not None and ctype.startswith(b"text/event-stream")
        encoding = _header(head, b"\r\ntransfer-encoding:")
        if encoding is not None and b"chunked" in encoding:
            self.state = CHUNK_SIZE
            return body
        # Neither length nor chunked: the body runs until the server closes the connection.
        self.close = True
        self.state = UNTIL_CLOSE
        return body

    def _body(self, data: bytes, start: int, stop: int) -> None:
        if stop <= start:
            return
        self.body_bytes += stop - start
        if self._sse:
            # An event ends at a blank line; "\n\n" may straddle two reads.
            self.events += data.count(b"\n\n", start, stop)
            if self._last == 10 and data[start] == 10:
                self.events += 1
            self._last = data[stop - 1]
