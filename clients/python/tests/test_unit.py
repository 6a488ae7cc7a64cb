"""The client's own logic without a daemon: SSE decoding, error mapping (answers the real
daemon never gives, such as a proxy's HTML page), the retry bound, upload headers."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

import warmpool
from warmpool import _async, _sync
from warmpool._errors import error_from_response, parse_retry_after
from warmpool._sse import Message, SSEDecoder

# -- SSE ------------------------------------------------------------------------------------


def feed_all(chunks: list[bytes]) -> list[Message]:
    d = SSEDecoder()
    out: list[Message] = []
    for c in chunks:
        out += d.feed(c)
    return out + d.close()


def split_every(data: bytes, n: int) -> list[bytes]:
    return [data[i : i + n] for i in range(0, len(data), n)]


STREAM = (
    b"\xef\xbb\xbf: keep-alive comment\n"
    b"event: leased\ndata: {\"kind\":\"leased\",\"pool\":\"p\",\"at\":\"t\",\"lease\":\"L\"}\n\n"
    b"event: multi\r\ndata: one\r\ndata:two\r\n\r\n"
    b"data: \xe2\x80\xa8 inside\r\rid: 7\nevent: lagged\ndata: 12\n\n"
    b"event: ignored-without-data\n\n"
    b"data: unfinished"
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_sse_decoder_any_chunking(size: int) -> None:
    msgs = feed_all(split_every(STREAM, size))
    assert [(m.event, m.data) for m in msgs] == [
        ("leased", '{"kind":"leased","pool":"p","at":"t","lease":"L"}'),
        ("multi", "one\ntwo"),
        ("message", "\u2028 inside"),  # U+2028 does not split a line
        ("lagged", "12"),
    ]
    assert msgs[-1].id == "7"


def test_events_from_sse() -> None:
    ev = warmpool.Event.from_sse("leased", '{"kind":"leased","pool":"p","at":"t","lease":"L"}')
    assert (ev.kind, ev.pool, ev.lease, ev.container, ev.raw["at"]) == ("leased", "p", "L", None, "t")
    lag = warmpool.Event.from_sse("lagged", "12")
    assert (lag.kind, lag.missed) == ("lagged", 12)
    # As the daemon sends it: an event like the others.
    lag = warmpool.Event.from_sse(
        "lagged", '{"at":"t","kind":"lagged","pool":"*","reason":"missed 7 events","missed":7}'
    )
    assert (lag.kind, lag.pool, lag.at, lag.missed) == ("lagged", "*", "t", 7)
    odd = warmpool.Event.from_sse("weird", "not json")
    assert (odd.kind, odd.raw) == ("weird", {"data": "not json"})


def test_event_stream_over_a_mock_transport() -> None:
    body = (
        b": hi\n\nevent: ready\ndata: {\"kind\":\"ready\",\"pool\":\"a\",\"at\":\"t\"}\n\n"
        b"event: released\ndata: {\"kind\":\"released\",\"pool\":\"a\",\"at\":\"t\",\"lease\":\"x\"}\n\n"
    )

    def handler(req: httpx.Request) -> httpx.Response:
        assert req.url.path == "/v1/events" and req.url.params["pool"] == "a"
        assert req.url.params["for_ms"] == "2500"
        return httpx.Response(200, content=split_every(body, 5),
                              headers={"content-type": "text/event-stream"})

    with warmpool.Client("http://wp", transport=httpx.MockTransport(handler)) as wp:
        assert [e.kind for e in wp.events(pool="a", duration=2.5)] == ["ready", "released"]


# -- errors ---------------------------------------------------------------------------------


def test_error_classes_by_status_and_code() -> None:
    def err(status: int, body: bytes, **headers: str) -> warmpool.WarmpoolError:
        return error_from_response(status, httpx.Headers(headers), body)

    def api(code: str) -> bytes:
        return json.dumps({"error": {"code": code, "message": "m"}}).encode()

    cases = [
        (404, api("unknown_lease"), warmpool.UnknownLease),
        (404, api("unknown_pool"), warmpool.UnknownPool),
        (404, api("file_not_found"), warmpool.FileNotFound),
        (404, api("not_found"), warmpool.NotFound),
        (400, api("bad_request"), warmpool.BadRequest),
        (413, api("payload_too_large"), warmpool.PayloadTooLarge),
        (413, api("bad_request"), warmpool.PayloadTooLarge),  # a JSON body past the limit
        (415, api("bad_request"), warmpool.BadRequest),
        (422, api("no_such_engine"), warmpool.NoSuchEngine),
        (422, api("config_rejected"), warmpool.BadRequest),
        (401, api("unauthorized"), warmpool.Unauthorized),
        (410, api("container_gone"), warmpool.ContainerGone),
        (409, api("lease_suspended"), warmpool.LeaseSuspended),
        (409, api("cannot_suspend"), warmpool.CannotSuspend),
        (409, api("conflict"), warmpool.Conflict),
        (429, api("pool_exhausted"), warmpool.PoolExhausted),
        (503, api("pool_degraded"), warmpool.PoolDegraded),
        (503, api("engine_unavailable"), warmpool.EngineUnavailable),
        (503, api("shutting_down"), warmpool.ShuttingDown),
        (504, api("warm_up_timeout"), warmpool.Timeout),
        (502, api("create_failed"), warmpool.ServerError),
        (405, api("method_not_allowed"), warmpool.WarmpoolError),
        # A code that contradicts its status keeps the status's class.
        (400, api("pool_exhausted"), warmpool.BadRequest),
    ]
    for status, body, cls in cases:
        e = err(status, body)
        assert type(e) is cls, (status, body, type(e))
        assert e.status == status and e.message == "m"


def test_non_json_error_bodies_still_give_a_warmpool_error() -> None:
    e = error_from_response(502, httpx.Headers({"content-type": "text/html"}),
                            b"<html><body>Bad Gateway from nginx</body></html>")
    assert isinstance(e, warmpool.ServerError)
    assert (e.status, e.code) == (502, "internal") and "nginx" in e.message
    e = error_from_response(429, httpx.Headers({"retry-after": "3"}), b"")
    # A 429 without the API's code (a proxy's) is a 429, not a claim about the pool.
    assert isinstance(e, warmpool.TooManyRequests)
    assert not isinstance(e, warmpool.PoolExhausted)
    assert (e.code, e.message, e.retry_after) == ("too_many_requests", "Too Many Requests", 3.0)
    e = error_from_response(400, httpx.Headers(), b'{"error": "just a string"}')
    assert isinstance(e, warmpool.BadRequest) and e.message == "just a string"
    e = error_from_response(418, httpx.Headers(), b"[1, 2]")
    assert type(e) is warmpool.WarmpoolError and e.code == "http_418"


def test_retry_after_parsing() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("nan") is None
    now = 1_000_000_000.0  # 2001-09-09T01:46:40Z
    assert parse_retry_after("Sun, 09 Sep 2001 01:46:50 GMT", now=now) == 10.0


def test_transport_errors_are_wrapped() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with warmpool.Client(f"http://127.0.0.1:{port}", timeout=5) as wp:
        with pytest.raises(warmpool.TransportError) as e:
            wp.pools()
    assert e.value.status is None and e.value.code == "transport"
    assert isinstance(e.value.__cause__, httpx.ConnectError)
    assert isinstance(e.value, warmpool.WarmpoolError)


# -- the retry bound ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    async def asleep(self, s: float) -> None:
        self.sleep(s)


LEASE = {"lease_id": "L1", "pool": "p", "container_id": "c", "container_name": "n",
         "engine": "default", "image": "i", "source": "pool", "acquire_ms": 0.01,
         "acquired_at": "a", "expires_at": "e", "ttl_remaining_s": 60, "state": "active"}


def answers(*responses: tuple[int, dict[str, str], object]) -> Callable[[httpx.Request], httpx.Response]:
    it: Iterator[tuple[int, dict[str, str], object]] = iter(responses)

    def handler(req: httpx.Request) -> httpx.Response:
        status, headers, body = next(it)
        return httpx.Response(status, headers=headers, json=body)

    return handler


EXHAUSTED = (429, {"retry-after": "10"}, {"error": {"code": "pool_exhausted", "message": "dry"}})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(_sync, "_monotonic", c.monotonic)
    monkeypatch.setattr(_sync, "_sleep", c.sleep)
    monkeypatch.setattr(_async, "_monotonic", c.monotonic)
    monkeypatch.setattr(_async, "_sleep", c.asleep)
    return c


def test_no_retry_by_default(clock: FakeClock) -> None:
    with warmpool.Client("http://wp", transport=httpx.MockTransport(answers(EXHAUSTED))) as wp:
        with pytest.raises(warmpool.PoolExhausted) as e:
            wp.acquire("p")
    assert e.value.retry_after == 10.0 and clock.sleeps == []


def test_retry_never_sleeps_past_the_bound(clock: FakeClock) -> None:
    h = answers(EXHAUSTED, EXHAUSTED, EXHAUSTED)
    with warmpool.Client("http://wp", transport=httpx.MockTransport(h)) as wp:
        with pytest.raises(warmpool.PoolExhausted):
            wp.acquire("p", retry_for=3.0)
    # Retry-After says 10 s; the bound is 3 s: one sleep to the bound, a last try, then raise.
    assert clock.sleeps == [3.0]


def test_retry_follows_retry_after_until_served(clock: FakeClock) -> None:
    one = (429, {"retry-after": "1"}, {"error": {"code": "pool_exhausted", "message": "dry"}})
    degraded = (503, {"retry-after": "2"}, {"error": {"code": "pool_degraded", "message": "x"}})
    h = answers(one, degraded, (201, {}, LEASE))
    with warmpool.Client("http://wp", transport=httpx.MockTransport(h)) as wp:
        sb = wp.acquire("p", retry_for=30)
    assert sb.id == "L1" and clock.sleeps == [1.0, 2.0]


def test_a_503_without_retry_after_is_not_retried(clock: FakeClock) -> None:
    down: tuple[int, dict[str, str], object] = (503, {}, {"error": {"code": "shutting_down", "message": "bye"}})
    with warmpool.Client("http://wp", transport=httpx.MockTransport(answers(down))) as wp:
        with pytest.raises(warmpool.ShuttingDown):
            wp.acquire("p", retry_for=30)
    assert clock.sleeps == []


async def test_async_retry_bound(clock: FakeClock) -> None:
    h = answers(EXHAUSTED, EXHAUSTED, EXHAUSTED)
    async with warmpool.AsyncClient("http://wp", transport=httpx.MockTransport(h)) as wp:
        with pytest.raises(warmpool.PoolExhausted):
            await wp.acquire("p", retry_for=4.5)
    assert clock.sleeps == [4.5]


# -- requests -------------------------------------------------------------------------------


def test_requests_as_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        req.read()
        seen.append(req)
        if req.url.path.endswith("/exec"):
            return httpx.Response(200, json={"exit_code": 0, "stdout": "AP8=", "stderr": "",
                                             "encoding": "base64", "timed_out": False,
                                             "truncated": False, "duration_ms": 1})
        if req.method == "POST":
            return httpx.Response(201, json=LEASE)
        if req.method == "DELETE" and req.url.params.get("reuse") == "true":
            return httpx.Response(200, json={"lease_id": "L1", "reused": False, "reason": "why"})
        return httpx.Response(204)

    with warmpool.Client("http://wp/prefix/", token="tok", transport=httpx.MockTransport(handler)) as wp:
        with wp.lease("p", ttl=1.2, wait_ms=500, owner="me", engine={"zone": "a"}, reuse=True) as sb:
            r = sb.exec(["cat"], stdin=b"\x00\xff", env={"A": "1"}, workdir="/w", timeout=2.5)
            assert r.stdout == b"\x00\xff" and r.ok
            sb.write_file("/work/a b/c%.bin", io.BytesIO(b"12345"))
            sb.write_file("/work/g", iter([b"a", b"b"]))
        assert sb.reuse_outcome == warmpool.ReuseOutcome("L1", False, "why")

    acquire, exec_, put1, put2, release = seen
    assert acquire.url.path == "/prefix/v1/leases"
    assert acquire.headers["authorization"] == "Bearer tok"
    assert json.loads(acquire.content) == {"pool": "p", "ttl_s": 2, "wait_ms": 500, "owner": "me",
                                           "engine": {"zone": "a"}}
    assert json.loads(exec_.content) == {"cmd": ["cat"], "output": "base64", "stdin_b64": "AP8=",
                                         "env": {"A": "1"}, "workdir": "/w", "timeout_ms": 2500}
    assert put1.url.raw_path == b"/prefix/v1/leases/L1/files/work/a%20b/c%25.bin"
    assert put1.headers["content-length"] == "5" and put1.content == b"12345"
    assert "content-length" not in put2.headers and put2.headers["transfer-encoding"] == "chunked"
    assert (release.method, release.url.params["reuse"]) == ("DELETE", "true")


def test_acquire_set_up_and_exec_stream_as_sent_and_read() -> None:
    seen: list[httpx.Request] = []
    ndjson = (
        b'{"stdout_b64":"AP8="}\n{"stderr_b64":"ZQ=="}\n\n'
        b'{"exit_code":null,"signal":9,"timed_out":false,"lost":false,"truncated":false,'
        b'"duration_ms":12}\n'
    )

    def handler(req: httpx.Request) -> httpx.Response:
        req.read()
        seen.append(req)
        if req.url.path.endswith("/exec/stream"):
            return httpx.Response(200, content=ndjson,
                                  headers={"content-type": "application/x-ndjson"})
        if req.method == "POST":
            return httpx.Response(201, json=LEASE)
        return httpx.Response(204)

    with warmpool.Client("http://wp", transport=httpx.MockTransport(handler)) as wp:
        with wp.lease("p", env={"A": "1"}, secrets={"S": "x"}, workdir="/w",
                      files={"/t": "text", "/b": b"\x00", "/x": (b"#!", 0o755),
                             "/m": ("txt", 0o600)}) as sb:
            with sb.exec_stream(["k"], stdin="in") as s:
                chunks = list(s)
    assert chunks == [warmpool.ExecChunk("stdout", b"\x00\xff"), warmpool.ExecChunk("stderr", b"e")]
    assert s.exit == warmpool.ExecExit(None, 9, False, False, False, 12)
    acquire, stream = seen[0], seen[1]
    assert json.loads(acquire.content) == {
        "pool": "p", "env": {"A": "1"}, "secrets": {"S": "x"}, "workdir": "/w",
        "files": {"/t": "text", "/b": {"content_b64": "AA=="},
                  "/x": {"content_b64": "IyE=", "mode": 0o755},
                  "/m": {"content_b64": "dHh0", "mode": 0o600}},
    }
    assert json.loads(stream.content) == {"cmd": ["k"], "output": "base64", "stdin": "in"}


def test_an_exec_stream_cut_before_its_end_is_an_error() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"stdout":"partial"}\n')

    with warmpool.Client("http://wp", transport=httpx.MockTransport(handler)) as wp:
        with wp.exec_stream("L1", ["k"]) as s:
            assert next(s).data == b"partial"
            with pytest.raises(warmpool.WarmpoolError, match="before the command's end"):
                next(s)


def test_the_block_exception_wins_over_a_failing_release() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "POST":
            return httpx.Response(201, json=LEASE)
        return httpx.Response(500, text="boom")

    with warmpool.Client("http://wp", transport=httpx.MockTransport(handler)) as wp:
        with pytest.raises(KeyError) as e:
            with wp.lease("p"):
                raise KeyError("mine")
        assert any("releasing lease L1 failed" in n for n in getattr(e.value, "__notes__", []))
        # Without an exception in the block, the failed release is raised.
        with pytest.raises(warmpool.ServerError):
            with wp.lease("p"):
                pass


# -- models ---------------------------------------------------------------------------------


def test_plugin_model_from_the_daemons_shape() -> None:
    # The fields of warmpool_core::PluginStatus (no wasm plugin is built for the e2e tests).
    raw = {"pool": "py", "kind": "sizing", "path": "plugins/predictive.wasm", "state": "active",
           "loading": False, "sha256": "ab" * 32, "reloads": 2, "last_reload_at": "t",
           "last_error": None, "calls": 10, "failures": 1, "consecutive_failures": 0,
           "fallbacks": 1, "truncated": 0, "log_dropped": 0, "memory_bytes": 65536,
           "code_bytes": 1000}
    p = warmpool.Plugin.from_json(raw)
    assert (p.pool, p.kind, p.state, p.reloads, p.calls, p.failures) == ("py", "sizing", "active", 2, 10, 1)
    assert p.sha256 == "ab" * 32 and p.last_error is None and p.raw["memory_bytes"] == 65536


def test_models_refuse_wrong_types_and_keep_unknown_fields() -> None:
    lease = warmpool.Lease.from_json({**LEASE, "new_field": 1})
    assert lease.raw["new_field"] == 1 and lease.ttl_remaining_s == 60
    with pytest.raises(ValueError):
        warmpool.Lease.from_json({**LEASE, "ttl_remaining_s": "60"})
    with pytest.raises(ValueError):
        warmpool.Lease.from_json([LEASE])
    r = warmpool.ExecResult.from_json({"exit_code": None, "stdout": "aGk=", "stderr": "",
                                       "encoding": "base64", "timed_out": True,
                                       "truncated": False, "duration_ms": 5})
    assert (r.stdout, r.exit_code, r.ok, r.timed_out) == (b"hi", None, False, True)
    text = warmpool.ExecResult.from_json({"exit_code": 0, "stdout": "é", "stderr": "",
                                          "encoding": "text", "timed_out": False,
                                          "truncated": False, "duration_ms": 5})
    assert text.stdout == "é".encode() and text.ok
