"""The one HTTP driver: transport, outcome reading and lookups for every HTTP provider API; the wire is a shape's.

A shape (providers/http_sms_shapes.py, providers/http_voice_shape.py) knows one API's requests and answers: how
to write a send and a lookup, what a send answer and a lookup answer say, how its webhooks read. This module does
everything else once: one call per send (no retries, see :mod:`providers.http_common`), every failure and every
provider code through :mod:`providers.outcomes`, lookups that are UNKNOWN unless the provider settles them, and the
many-numbers call for shapes that have one (:class:`BulkShape`).

The bulk call: messages with the same bulk key (same body, sender, type and options) go out in one request of at
most ``bulk_limit`` numbers, each number with its own client reference, so reconcile can look every message up on
its own. Per-message outcomes come from the answer's per-number results, matched by that reference:

* a number with its provider id is ACCEPTED, one with a code goes through the shape's send table;
* a number the answer does not mention, when it mentions others, is AMBIGUOUS: the provider had the request;
* an answer with no per-number result at all is read as a single send's answer would be, for every message alike:
  a known refusal code refused the request as a whole before anything was sent (the fields it checks are the
  ones the messages share), so it settles each the same way; a success without results, an unknown code, a 5xx,
  or a lost answer prove nothing about any single number, so every message is AMBIGUOUS and reconcile settles
  each by its own reference. Never UNAVAILABLE after the request may have been read: that would send it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from providers.base import (
    DeliveryEvent,
    DeliveryStatus,
    OutboundMessage,
    ProviderRef,
    SendOutcome,
    SendResult,
    StatusResult,
)
from providers.http_common import (
    HttpCall,
    outcome_for_error,
    parse_webhook_body,
    perform,
    raw_error,
    raw_response,
    result_from_code,
    result_from_status,
    verify_signature,
)
from providers.outcomes import CodeTable
from schema.states import Channel

__all__ = [
    "SendReply", "LookupReply", "BulkReply", "Shape", "BulkShape", "HttpProvider", "BulkHttpProvider", "BULK_THREADS",
]

log = logging.getLogger(__name__)

#: Requests of one ``send_many`` call in flight at once (bulk requests and the single sends left over).
BULK_THREADS = 8


@dataclass(frozen=True)
class SendReply:
    """What a shape read out of a send answer: the provider's reference if it took the message, else its code."""

    provider_ref: str | None
    code: str | None
    detail: str
    #: In a many-numbers answer: this number's part of it, kept on its message instead of the whole answer.
    raw: Any = None


@dataclass(frozen=True)
class LookupReply:
    """What a shape read out of a lookup answer; the driver adds the raw answer and the reference it asked by."""

    status: DeliveryStatus
    provider_ref: str | None
    code: str | None
    duration_seconds: int | None = None


@dataclass(frozen=True)
class BulkReply:
    """A many-numbers answer: the request's own code, and the per-number results by client reference."""

    code: str | None
    detail: str
    per_ref: Mapping[str, SendReply]


class Shape(Protocol):
    """The requests and answers of one provider API; :class:`HttpProvider` does everything else."""

    kind: str  #: "sms" | "voice", for logs
    channel: Channel
    send_codes: CodeTable

    def send_call(self, message: OutboundMessage) -> HttpCall: ...

    def read_send(self, body: Any) -> SendReply: ...

    def status_call(self, ref: ProviderRef) -> HttpCall: ...

    def read_status(self, body: Any) -> LookupReply: ...

    def reports(self, provider: str, payload: Any) -> list[DeliveryEvent]: ...


class BulkShape(Shape, Protocol):
    """A shape whose API takes many numbers in one request."""

    bulk_codes: CodeTable  #: request-level codes of a many-numbers answer
    bulk_limit: int  #: numbers per request at most

    def bulk_key(self, message: OutboundMessage) -> Hashable | None:
        """Messages with equal keys may share a request; None: this one always goes alone."""
        ...

    def client_ref(self, message: OutboundMessage) -> str:
        """The reference the message carries in a many-numbers request, and its result comes back under."""
        ...

    def bulk_call(self, messages: Sequence[OutboundMessage]) -> HttpCall: ...

    def read_bulk(self, body: Any) -> BulkReply: ...


class HttpProvider:
    """One configured HTTP API, speaking through ``shape``."""

    def __init__(self, name: str, shape: Shape, client: httpx.Client, *, max_rps: float,
                 webhook_secret: str | None) -> None:
        self.name = name
        self.max_rps = max_rps
        self.channels = frozenset({shape.channel})
        self._shape = shape
        self._client = client
        self._webhook_secret = webhook_secret  # secret: kept out of __repr__

    def __repr__(self) -> str:
        shape = type(self._shape).__name__
        return f"{type(self).__name__}(name={self.name!r}, shape={shape}, base_url={self._client.base_url})"

    def close(self) -> None:
        self._client.close()

    def send(self, message: OutboundMessage) -> SendResult:
        """Post the message once; the answer or the failure becomes one of the four outcomes."""
        try:
            response = perform(self._client, self._shape.send_call(message))
        except httpx.HTTPError as err:
            result = outcome_for_error(self.name, err)
        else:
            result = self._read_send(response)
        log.info("%s send via %s: %s %s", self._shape.kind, self.name, result.outcome,
                 result.provider_code or result.detail)
        return result

    def _read_send(self, response: httpx.Response) -> SendResult:
        raw = raw_response(response)
        reply = self._shape.read_send(raw["body"])
        return self._result(reply, response, raw, self._shape.send_codes)

    def _result(self, reply: SendReply, response: httpx.Response, raw: Any, codes: CodeTable) -> SendResult:
        if reply.provider_ref and response.is_success:
            return SendResult.accepted(self.name, reply.provider_ref, raw=raw, provider_code=reply.code)
        if reply.code:
            return result_from_code(self.name, reply.code, codes, detail=reply.detail, raw=raw)
        return result_from_status(self.name, response.status_code, detail=f"HTTP {response.status_code} "
                                  f"{reply.detail}", raw=raw)

    def fetch_status(self, ref: ProviderRef) -> StatusResult:
        """Look the message up by the provider's reference, or by our id when the send never got one back.

        A failed lookup is UNKNOWN: only the provider's explicit "not found" proves it never got the message.
        """
        try:
            response = perform(self._client, self._shape.status_call(ref))
        except httpx.HTTPError as err:
            return StatusResult(DeliveryStatus.UNKNOWN, provider_ref=ref.provider_ref, raw=raw_error(err))
        raw = raw_response(response)
        reply = self._shape.read_status(raw["body"])
        return StatusResult(reply.status, provider_ref=reply.provider_ref or ref.provider_ref,
                            provider_code=reply.code, duration_seconds=reply.duration_seconds, raw=raw)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        """Delivery reports from one webhook call, each keeping the report it came from as ``raw``."""
        verify_signature(headers, body, self._webhook_secret)
        payload = parse_webhook_body(headers, body)
        return self._shape.reports(self.name, payload)


class BulkHttpProvider(HttpProvider):
    """An HTTP API with a many-numbers call: :meth:`send_many` is what the batch dispatch path uses."""

    _shape: BulkShape

    def __init__(self, name: str, shape: BulkShape, client: httpx.Client, *, max_rps: float,
                 webhook_secret: str | None) -> None:
        super().__init__(name, shape, client, max_rps=max_rps, webhook_secret=webhook_secret)
        self._shape = shape

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """One result per message, in order: at most one request per message, concurrent requests."""
        requests = self._requests(messages)
        with ThreadPoolExecutor(max_workers=max(1, min(BULK_THREADS, len(requests)))) as pool:
            answers = list(pool.map(self._send_request, [[messages[i] for i in request] for request in requests]))
        results: dict[int, SendResult] = {}
        for request, answer in zip(requests, answers, strict=True):
            results.update(zip(request, answer, strict=True))
        return [results[i] for i in range(len(messages))]

    def _requests(self, messages: Sequence[OutboundMessage]) -> list[list[int]]:
        """Message positions per request: equal bulk keys together, at most ``bulk_limit`` each."""
        groups: dict[Hashable, list[int]] = {}
        alone: list[list[int]] = []
        for index, message in enumerate(messages):
            key = self._shape.bulk_key(message)
            if key is None:
                alone.append([index])
            else:
                groups.setdefault(key, []).append(index)
        limit = max(1, self._shape.bulk_limit)
        chunks = [group[start:start + limit] for group in groups.values() for start in range(0, len(group), limit)]
        return chunks + alone

    def _send_request(self, messages: list[OutboundMessage]) -> list[SendResult]:
        if len(messages) == 1:
            return [self.send(messages[0])]
        try:
            response = perform(self._client, self._shape.bulk_call(messages))
        except httpx.HTTPError as err:
            results = [outcome_for_error(self.name, err)] * len(messages)
        else:
            results = self._read_bulk(response, messages)
        log.info("%s bulk send via %s: %d numbers, %s", self._shape.kind, self.name, len(messages),
                 ", ".join(sorted({r.outcome.value for r in results})))
        return results

    def _read_bulk(self, response: httpx.Response, messages: list[OutboundMessage]) -> list[SendResult]:
        raw = raw_response(response)
        reply = self._shape.read_bulk(raw["body"])
        if not reply.per_ref:  # nothing per number: the request's answer stands for every message in it
            if response.is_success and reply.code not in self._shape.bulk_codes:  # taken, but which numbers?
                unread = SendResult(SendOutcome.AMBIGUOUS, self.name, provider_code=reply.code, raw=raw,
                                    detail=f"answer {reply.code or ''} without a result per number")
                return [unread] * len(messages)
            whole = SendReply(None, reply.code, reply.detail)
            return [self._result(whole, response, raw, self._shape.bulk_codes)] * len(messages)
        results = []
        for message in messages:
            node = reply.per_ref.get(self._shape.client_ref(message))
            if node is None:  # the provider read the request and said nothing of this number
                results.append(SendResult.ambiguous(self.name, "no result for this number in the answer",
                                                    raw={"http_status": response.status_code}))
                continue
            own = {"http_status": response.status_code, "body": node.raw}
            results.append(self._result(node, response, own, self._shape.send_codes))
        return results
