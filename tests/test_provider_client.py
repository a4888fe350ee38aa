"""OpenAICompatibleClient over pytest-httpx: what is sent, what is streamed, every trap."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from provider_fixtures import (
    ATTRIBUTION,
    ERROR_CHUNK,
    FAKE_KEYS,
    JSON,
    KEEPALIVE_STREAM,
    OPENROUTER_FINISH_ERROR,
    SSE,
    TRAPS,
    ScriptedStream,
    Trap,
    completion,
    delta,
    make_settings,
    sse,
    wrapped,
)
from pytest_httpx import HTTPXMock

from statebot._errors import (
    AuthRejected,
    BadRequest,
    BadResponse,
    ConnectFailed,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
    StreamBroken,
)
from statebot._providers.base import ChatRequest
from statebot._providers.client import OpenAICompatibleClient
from statebot._settings import Timeouts

MODEL = {"groq": "openai/gpt-oss-120b", "cerebras": "gpt-oss-120b", "openrouter": "z-ai/glm"}
MESSAGES = ({"role": "user", "content": "Привет"},)
FAST = Timeouts(connect=0.2, first_token=0.05, total=0.15)


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_KEYS.items():
        monkeypatch.setenv(name, value)


def request(provider: str = "groq", *, stream: bool = True) -> ChatRequest:
    return ChatRequest(provider, MODEL[provider], MESSAGES, stream=stream)


async def collect(request: ChatRequest, timeouts: Timeouts | None = None) -> str:
    client = OpenAICompatibleClient(make_settings(timeouts))
    try:
        return "".join([piece async for piece in client.stream(request)])
    finally:
        await client.aclose()


async def failure(request: ChatRequest, timeouts: Timeouts | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await collect(request, timeouts)
    return caught.value


def url(provider: str, path: str = "/chat/completions") -> str:
    return f"https://{provider}.test/v1{path}"


# --- requests ---


async def test_request_carries_key_model_messages_and_stream_flag(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=url("groq"), headers=SSE, content=sse(delta("Hi")))
    assert await collect(request("groq")) == "Hi"
    sent = httpx_mock.get_request()
    assert sent is not None and sent.method == "POST"
    assert sent.headers["Authorization"] == "Bearer gsk_FAKE_TEST_KEY"
    assert sent.headers["Accept"] == "text/event-stream"
    assert json.loads(sent.content) == {
        "model": "openai/gpt-oss-120b",
        "messages": [{"role": "user", "content": "Привет"}],
        "stream": True,
    }
    assert "HTTP-Referer" not in sent.headers  # attribution is OpenRouter's, not Groq's


async def test_openrouter_attribution_headers_are_sent(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=url("openrouter"), headers=SSE, content=KEEPALIVE_STREAM)
    await collect(request("openrouter"))
    sent = httpx_mock.get_request()
    assert sent is not None
    assert {k: sent.headers[k] for k in ATTRIBUTION} == ATTRIBUTION
    assert sent.headers["Authorization"] == "Bearer sk-or-v1-FAKE_TEST_KEY"


async def test_missing_key_makes_no_request(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CEREBRAS_API_KEY")
    err = await failure(request("cerebras"))
    assert isinstance(err, AuthRejected)
    assert (err.provider, err.reason, err.status) == (
        "cerebras",
        "no key: set CEREBRAS_API_KEY",
        None,
    )
    assert httpx_mock.get_requests() == []


async def test_unknown_provider_is_a_bad_request(httpx_mock: HTTPXMock) -> None:
    client = OpenAICompatibleClient(make_settings())
    with pytest.raises(BadRequest, match="unknown provider"):
        [p async for p in client.stream(ChatRequest("mistral", "m", MESSAGES))]
    await client.aclose()


# --- answers ---


async def test_keepalive_comments_inside_a_good_stream(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=url("openrouter"), headers=SSE, content=KEEPALIVE_STREAM)
    assert await collect(request("openrouter")) == "Hello"


async def test_think_blocks_removed_across_chunks(httpx_mock: HTTPXMock) -> None:
    chunks = sse(delta("<thi"), delta("nk>let me see</th"), delta("ink>\n\nFour"), delta("."))
    httpx_mock.add_response(url=url("groq"), headers=SSE, content=chunks)
    assert await collect(request("groq")) == "Four."


async def test_reasoning_field_is_ignored(httpx_mock: HTTPXMock) -> None:
    chunks = sse(delta(reasoning="2+2 is"), delta(reasoning_content="four"), delta("4"))
    httpx_mock.add_response(url=url("openrouter"), headers=SSE, content=chunks)
    assert await collect(request("openrouter")) == "4"


async def test_non_stream_yields_the_whole_message_once(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=url("cerebras"), json=completion("<think>x</think>Whole answer"))
    client = OpenAICompatibleClient(make_settings())
    pieces = [p async for p in client.stream(request("cerebras", stream=False))]
    await client.aclose()
    assert pieces == ["Whole answer"]
    sent = httpx_mock.get_request()
    assert sent is not None and json.loads(sent.content)["stream"] is False


# --- traps: every classified response, through the client ---


@pytest.mark.parametrize("trap", TRAPS, ids=lambda t: t.name)
async def test_trap_through_client(httpx_mock: HTTPXMock, trap: Trap) -> None:
    httpx_mock.add_response(
        url=url(trap.provider), status_code=trap.status, headers=trap.headers, content=trap.body
    )
    err = await failure(request(trap.provider))
    assert type(err) is trap.expected
    assert (err.provider, err.model, err.status) == (
        trap.provider,
        MODEL[trap.provider],
        trap.status,
    )
    assert re.search(trap.reason, err.reason), err.reason
    if isinstance(err, RateLimited):
        assert err.retry_after == pytest.approx(trap.retry_after)
    assert "FAKE_TEST_KEY" not in str(err)


async def test_key_echoed_by_provider_stays_out_of_the_error(httpx_mock: HTTPXMock) -> None:
    body = wrapped("Incorrect API key provided: gsk_FAKE_TEST_KEY", code="invalid_api_key")
    httpx_mock.add_response(url=url("groq"), status_code=403, headers=JSON, content=body)
    err = await failure(request("groq"))
    assert isinstance(err, AuthRejected)
    assert "FAKE_TEST_KEY" not in str(err) and "FAKE_TEST_KEY" not in err.reason


@pytest.mark.parametrize(
    ("exc", "expected", "reason"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), ConnectFailed, "cannot connect"),
        (httpx.ConnectTimeout("timed out"), ProviderTimeout, "connect timeout"),
        (httpx.ReadTimeout("timed out"), ProviderTimeout, "read timeout"),
    ],
    ids=["connect refused", "connect timeout", "read timeout"],
)
async def test_transport_failures(
    httpx_mock: HTTPXMock, exc: httpx.HTTPError, expected: type[ProviderError], reason: str
) -> None:
    httpx_mock.add_exception(exc, url=url("groq"))
    err = await failure(request("groq"))
    assert type(err) is expected
    assert (err.provider, err.model, err.status) == ("groq", MODEL["groq"], None)
    assert err.reason.startswith(reason)


# --- failures inside a 200 ---


async def test_stream_cut_mid_answer_keeps_partial(httpx_mock: HTTPXMock) -> None:
    cut = ScriptedStream(
        sse(delta("Hello, "), done=False),
        sse(delta("wor"), done=False),
        then=httpx.RemoteProtocolError("peer closed connection without complete message body"),
    )
    httpx_mock.add_response(url=url("groq"), headers=SSE, stream=cut)
    err = await failure(request("groq"))
    assert isinstance(err, StreamBroken)
    assert (err.partial, err.provider, err.reason) == (
        "Hello, wor",
        "groq",
        "connection dropped mid-answer",
    )


async def test_stream_closed_without_done_keeps_partial(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=url("cerebras"), headers=SSE, content=sse(delta("Hal"), done=False))
    err = await failure(request("cerebras"))
    assert isinstance(err, StreamBroken)
    assert (err.partial, err.status) == ("Hal", 200)


@pytest.mark.parametrize(
    "bad",
    [OPENROUTER_FINISH_ERROR, ERROR_CHUNK, 'event: error\ndata: {"message": "upstream died"}\n\n'],
    ids=["finish_reason error", "error chunk, empty choices", "event: error"],
)
async def test_in_band_error_after_text_is_stream_broken(
    httpx_mock: HTTPXMock, bad: object
) -> None:
    httpx_mock.add_response(url=url("openrouter"), headers=SSE, content=sse(delta("Par"), bad))
    err = await failure(request("openrouter"))
    assert isinstance(err, StreamBroken)
    assert err.partial == "Par" and err.reason.startswith("cut off: provider error in stream")


@pytest.mark.parametrize(
    "bad",
    [OPENROUTER_FINISH_ERROR, ERROR_CHUNK, "event: error\ndata: overloaded\n\n"],
    ids=["finish_reason error", "error chunk, empty choices", "event: error"],
)
async def test_in_band_error_before_text_is_server_error(
    httpx_mock: HTTPXMock, bad: object
) -> None:
    httpx_mock.add_response(
        url=url("openrouter"), headers=SSE, content=sse(": OPENROUTER PROCESSING\n\n", bad)
    )
    err = await failure(request("openrouter"))
    assert type(err) is ServerError
    assert err.provider == "openrouter" and err.reason.startswith("provider error in stream")


async def test_stream_request_answered_with_html_is_bad_response(httpx_mock: HTTPXMock) -> None:
    page = b"<html><body>Welcome to nginx!</body></html>"
    httpx_mock.add_response(url=url("groq"), headers={"content-type": "text/html"}, content=page)
    err = await failure(request("groq"))
    assert isinstance(err, BadResponse) and err.status == 200


# --- deadlines: a stalled body, ended by the deadline under test, not by sleeping ---


async def test_no_first_token_in_time(httpx_mock: HTTPXMock) -> None:
    stalled = ScriptedStream(b": OPENROUTER PROCESSING\n\n", stall=True)  # keep-alives don't count
    httpx_mock.add_response(url=url("openrouter"), headers=SSE, stream=stalled)
    err = await failure(request("openrouter"), FAST)
    assert type(err) is ProviderTimeout
    assert (err.provider, err.reason) == ("openrouter", "no first token within 0.05s")


async def test_total_deadline_after_text_keeps_partial(httpx_mock: HTTPXMock) -> None:
    slow = ScriptedStream(sse(delta("Early"), done=False), stall=True)
    httpx_mock.add_response(url=url("groq"), headers=SSE, stream=slow)
    err = await failure(request("groq"), FAST)
    assert isinstance(err, StreamBroken)
    assert (err.partial, err.reason) == ("Early", "cut off: not finished within 0.15s")


async def test_thinking_counts_as_first_token(httpx_mock: HTTPXMock) -> None:
    thinking = ScriptedStream(sse(delta(reasoning="hmm"), done=False), stall=True)
    httpx_mock.add_response(url=url("groq"), headers=SSE, stream=thinking)
    err = await failure(request("groq"), FAST)
    assert type(err) is ProviderTimeout and err.reason == "not finished within 0.15s"


async def test_non_stream_answer_only_has_the_total_deadline(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=url("groq"), headers=JSON, stream=ScriptedStream(stall=True))
    err = await failure(request("groq", stream=False), FAST)
    assert type(err) is ProviderTimeout and err.reason == "not finished within 0.15s"


# --- list_models and the shared client ---


async def test_list_models(httpx_mock: HTTPXMock) -> None:
    listing = {"object": "list", "data": [{"id": "gpt-oss-120b"}, {"id": "qwen-3-32b"}, {"x": 1}]}
    httpx_mock.add_response(url=url("cerebras", "/models"), method="GET", json=listing)
    client = OpenAICompatibleClient(make_settings())
    assert await client.list_models("cerebras") == ["gpt-oss-120b", "qwen-3-32b"]
    await client.aclose()
    sent = httpx_mock.get_request()
    assert sent is not None and sent.headers["Authorization"] == "Bearer csk-FAKE_TEST_KEY"


@pytest.mark.parametrize(
    ("status", "content", "expected"),
    [
        (401, wrapped("Invalid API Key", code="invalid_api_key"), AuthRejected),
        (200, b"<html>maintenance</html>", BadResponse),
        (200, b'{"object": "list"}', BadResponse),
    ],
)
async def test_list_models_errors(
    httpx_mock: HTTPXMock, status: int, content: bytes, expected: type[ProviderError]
) -> None:
    httpx_mock.add_response(url=url("groq", "/models"), status_code=status, content=content)
    client = OpenAICompatibleClient(make_settings())
    with pytest.raises(expected) as caught:
        await client.list_models("groq")
    await client.aclose()
    assert (caught.value.provider, caught.value.status) == ("groq", status)


async def test_aclose_closes_only_a_client_it_created() -> None:
    given = httpx.AsyncClient()
    client = OpenAICompatibleClient(make_settings(), http=given)
    await client.aclose()
    assert not given.is_closed
    await given.aclose()
    own = OpenAICompatibleClient(make_settings())
    pools = [own._http("groq"), own._http("cerebras")]
    assert pools[0] is not pools[1]  # one pool per provider
    await own.aclose()
    assert all(pool.is_closed for pool in pools)
