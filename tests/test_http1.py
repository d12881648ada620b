from __future__ import annotations

import pytest

from lab.http1 import ProtocolError, ResponseParser


def feed_in_pieces(raw: bytes, size: int, *, head_only: bool = False) -> tuple[ResponseParser, list[bool]]:
    """Feed ``raw`` in pieces of ``size`` bytes; return the parser and what each feed returned."""
    parser = ResponseParser()
    parser.reset(head_only=head_only)
    return parser, [parser.feed(raw[i : i + size]) for i in range(0, len(raw), size)]


CONTENT_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
)
SSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"b\r\ndata: one\n\n\r\n"
    b"16\r\ndata: two\n\ndata: three\r\n"
    b"2\r\n\n\n\r\n"
    b"0\r\n\r\n"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize(("raw", "body"), [(CONTENT_LENGTH, 11), (CHUNKED, 11), (SSE, 11 + 22 + 2)])
def test_a_response_is_done_exactly_at_its_last_byte_however_it_is_split(raw: bytes, body: int, size: int) -> None:
    parser, done = feed_in_pieces(raw, size)
    assert done[-1] is True and not any(done[:-1])
    assert (parser.status, parser.body_bytes, parser.close) == (200, body, False)


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_server_sent_events_are_counted_across_reads(size: int) -> None:
    parser, done = feed_in_pieces(SSE, size)
    assert done[-1] and parser.events == 3  # "\n\n" after one, after two, and the one split over chunks


def test_events_are_not_counted_outside_event_streams() -> None:
    parser, _ = feed_in_pieces(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n\n\n\n\n", 1000)
    assert parser.events == 0


def test_a_body_framed_by_close_ends_at_eof() -> None:
    parser, done = feed_in_pieces(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n", 5)
    assert not any(done)
    assert parser.eof() is True
    assert parser.close and parser.events == 1


def test_eof_in_the_middle_of_a_framed_body_is_not_completion() -> None:
    parser, done = feed_in_pieces(CONTENT_LENGTH[:-3], 1000)
    assert done == [False] and parser.eof() is False


@pytest.mark.parametrize(
    ("raw", "close"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", False),
    ],
)
def test_connection_close(raw: bytes, close: bool) -> None:
    parser, done = feed_in_pieces(raw, 1000)
    assert done == [True] and parser.close is close


def test_no_body_after_head_204_and_304() -> None:
    parser, done = feed_in_pieces(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 1000, head_only=True)
    assert done == [True] and parser.body_bytes == 0
    for status in (b"204 No Content", b"304 Not Modified"):
        parser, done = feed_in_pieces(b"HTTP/1.1 " + status + b"\r\nContent-Length: 5\r\n\r\n", 1000)
        assert done == [True]


def test_interim_100_continue_is_skipped() -> None:
    parser, done = feed_in_pieces(b"HTTP/1.1 100 Continue\r\n\r\n" + CONTENT_LENGTH, 9)
    assert done[-1] and parser.status == 200 and parser.body_bytes == 11


def test_reset_starts_a_new_response_on_the_same_connection() -> None:
    parser = ResponseParser()
    assert parser.feed(CHUNKED)
    parser.reset()
    assert parser.feed(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
    assert parser.status == 503 and parser.body_bytes == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP response"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", "not followed by CRLF"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc", "1 bytes after the end"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "switched protocols"),
    ],
)
def test_malformed_responses_are_refused(raw: bytes, message: str) -> None:
    parser = ResponseParser()
    with pytest.raises(ProtocolError, match=message):
        parser.feed(raw)


def test_an_endless_head_is_refused() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(ProtocolError, match="no end of headers"):
        parser.feed(b"X-Pad: " + b"a" * 70_000)
