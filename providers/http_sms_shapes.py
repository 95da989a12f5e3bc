"""The wire shapes of the two HTTP SMS APIs: requests to write and answers to read; transport is http_driver's.

``hexa`` (seed 000): ``POST messages`` as a form with ``to, body, sender, type, ref, dlrurl`` (and ``ref1, unicode,
flash, port, duplicate`` when the message has them, in the seed's formats: :func:`hexa_options`) and an ``api-key``
header; the answer carries an E-code (E100 submitted, E4xx/E6xx refusals). Many numbers go in one JSON request
(:class:`HexaShape`). ``panel`` (seed 004): ``POST api/sendsms`` as JSON with ``mobiles, message, sender, route``
(and the DLT entity and template ids and the flow id when configured) and an ``authkey`` header; the answer is
``{"type": "success", "message": "<request id>"}`` or ``{"type": "error", "code": 202, ...}``.

Our message id travels as the provider's client reference (hexa ``ref``, panel ``clientRef``) so reconcile can look
a message up even when the send timed out before a provider reference came back.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from providers.base import DeliveryEvent, DeliveryStatus, OutboundMessage, ProviderRef
from providers.http_common import HttpCall, parse_timestamp, parse_webhook_body
from providers.http_driver import BulkReply, LookupReply, SendReply
from providers.http_sms_codes import (
    DLR_STATUSES,
    HEXA_BULK_CODES,
    HEXA_LOOKUP_CODES,
    HEXA_SEND_CODES,
    HEXA_SUCCESS_CODES,
    PANEL_LOOKUP_CODES,
    PANEL_REPORT_CODES,
    PANEL_SEND_CODES,
)
from schema.states import Channel

__all__ = ["HexaShape", "PanelShape", "BULK_TYPES", "HEXA_BULK_LIMIT", "hexa_ref", "hexa_options",
           "message_id_from_ref"]

#: Message types that may share a many-numbers request (see :class:`HexaShape`).
BULK_TYPES = frozenset({"MKT"})
#: Numbers per many-numbers request at most: the seed's node limit is configurable at the provider (E409) and
#: unstated; 100 is the one number it names (E405).
HEXA_BULK_LIMIT = 100

_NON_ALNUM = re.compile(r"[^A-Za-z0-9]")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def hexa_ref(message_id: str) -> str:
    """Our message id as seed 000's ``ref``, which must be alphanumeric (E608): a UUID loses its dashes."""
    try:
        return uuid.UUID(message_id).hex
    except ValueError:
        return _NON_ALNUM.sub("", message_id)


def message_id_from_ref(ref: str | None) -> str | None:
    """The inverse of :func:`hexa_ref` for the UUIDs our message ids are; other refs come back as they are."""
    if ref and _HEX32.match(ref):
        return str(uuid.UUID(ref))
    return ref or None


def _wire_flag(value: object) -> str:
    """A 0/1 flag as seed 000 spells it (E605, E606): intake keeps flags as booleans, Python would send "True"."""
    return "1" if value in (True, 1, "1") else "0"


def hexa_options(options: Mapping[str, Any]) -> dict[str, str]:
    """The message's optional seed-000 parameters in the seed's wire format; absent ones are not sent.

    ``ref`` on the wire is our message id (for lookups), so the merchant's own ``ref`` travels as ``ref1``; its
    ``ref1``, ``ref2`` and ``campaignId`` stay with us (the merchant's callbacks carry them) because the provider
    has no field left for them. ``duplicate=1`` goes out only when intake waived our 10-second guard for this
    message, so the provider's own guard does not refuse the repeat the merchant asked for.
    """
    form: dict[str, str] = {}
    if options.get("ref"):
        form["ref1"] = str(options["ref"])
    if options.get("unicode") is not None:
        form["unicode"] = str(options["unicode"]).upper()
    if options.get("flash") is not None:
        form["flash"] = _wire_flag(options["flash"])
    if options.get("port") is not None:
        form["port"] = str(options["port"])
    if options.get("duplicate"):
        form["duplicate"] = "1"
    return form


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _status_of(word: object, table: Mapping[str, DeliveryStatus] = DLR_STATUSES) -> DeliveryStatus:
    return table.get(str(word).strip().upper(), DeliveryStatus.UNKNOWN) if word is not None else DeliveryStatus.UNKNOWN



class HexaShape:
    """Seed 000: form posts, E-codes, ``ref`` for our id, DLRs as one report (or a list) per webhook call.

    The many-numbers call is the seed's JSON form: the shared fields once in the global node, one sms node per
    number with its own ``ref`` (our message id), so every message can still be looked up on its own. Only MKT
    messages share a request: OTP takes one number (E404), and "for bulk SMS type should be MKT" (E400) without
    saying where bulk starts, so a TXN message goes alone although E405 would allow 100 numbers. The answer we
    read lists a result per node under ``data`` (``ref`` with ``message_id`` or ``code``), matched by ``ref``.
    """

    kind = "sms"
    channel = Channel.SMS
    send_codes = HEXA_SEND_CODES
    bulk_codes = HEXA_BULK_CODES
    bulk_limit = HEXA_BULK_LIMIT

    def __init__(self, sender: str, dlr_url: str) -> None:
        self._sender = sender
        self._dlr_url = dlr_url

    @staticmethod
    def auth_headers(api_key: str) -> dict[str, str]:
        return {"api-key": api_key}

    def _shared(self, message: OutboundMessage) -> dict[str, str]:
        """The fields a message shares with the others of its request: all but the number and our reference."""
        fields = {"body": message.body, "sender": message.sender or self._sender, "type": message.message_type}
        if self._dlr_url:
            fields["dlrurl"] = self._dlr_url
        return fields | hexa_options(message.options)

    def send_call(self, message: OutboundMessage) -> HttpCall:
        form = {"to": message.recipient, "ref": hexa_ref(message.message_id)} | self._shared(message)
        return HttpCall("POST", "messages", data=form)

    def bulk_key(self, message: OutboundMessage) -> Hashable | None:
        if message.message_type not in BULK_TYPES:
            return None
        return tuple(sorted(self._shared(message).items()))

    def client_ref(self, message: OutboundMessage) -> str:
        return hexa_ref(message.message_id)

    def bulk_call(self, messages: Sequence[OutboundMessage]) -> HttpCall:
        nodes = [{"to": message.recipient, "ref": hexa_ref(message.message_id)} for message in messages]
        return HttpCall("POST", "messages", json=self._shared(messages[0]) | {"sms": nodes})

    def read_bulk(self, body: Any) -> BulkReply:
        body = body if isinstance(body, dict) else {}
        code = _text(body.get("code"))
        nodes = body.get("data") if isinstance(body.get("data"), list) else []
        per_ref = {}
        for node in nodes:
            if isinstance(node, dict) and (ref := _text(node.get("ref"))):
                node_code = _text(node.get("code"))
                taken = code in HEXA_SUCCESS_CODES and node_code in (None, *HEXA_SUCCESS_CODES)
                per_ref[ref] = SendReply(_text(node.get("message_id")) if taken else None, node_code,
                                         str(node.get("message", "")), raw=node)
        return BulkReply(code, str(body.get("message", "")), per_ref)

    def read_send(self, body: Any) -> SendReply:
        body = body if isinstance(body, dict) else {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        code = _text(body.get("code"))
        ref = _text(data.get("message_id")) if code in HEXA_SUCCESS_CODES else None
        return SendReply(ref, code, str(body.get("message", "")))

    def status_call(self, ref: ProviderRef) -> HttpCall:
        if ref.provider_ref:
            return HttpCall("GET", "messages/status", params={"message_id": ref.provider_ref})
        return HttpCall("GET", "messages/status", params={"ref": hexa_ref(ref.message_id)})

    def read_status(self, body: Any) -> LookupReply:
        body = body if isinstance(body, dict) else {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        code = _text(body.get("code"))
        settled = HEXA_LOOKUP_CODES.get(code or "")
        if settled is not None:
            return LookupReply(settled, None, code)
        return LookupReply(_status_of(data.get("status")), _text(data.get("message_id")), code)

    def reports(self, provider: str, payload: Any) -> list[DeliveryEvent]:
        entries = payload if isinstance(payload, list) else [payload]
        return [self._event(provider, entry) for entry in entries if isinstance(entry, dict)]

    def _event(self, provider: str, entry: dict[str, Any]) -> DeliveryEvent:
        return DeliveryEvent(
            provider=provider, status=_status_of(entry.get("status")), provider_ref=_text(entry.get("message_id")),
            message_id=message_id_from_ref(_text(entry.get("ref"))), event_id=_text(entry.get("id")),
            occurred_at=parse_timestamp(entry.get("delivered_at") or entry.get("timestamp")),
            provider_code=_text(entry.get("status")), raw=entry,
        )


class PanelShape:
    """Seed 004: JSON posts with ``authkey``, a request id back at once, DLRs as a list of requests with reports."""

    kind = "sms"
    channel = Channel.SMS
    send_codes = PANEL_SEND_CODES

    def __init__(self, sender: str, panel_fields: Mapping[str, str]) -> None:
        self._sender = sender
        self._fields = dict(panel_fields)  #: request field -> value, from PANEL_FIELDS

    @staticmethod
    def auth_headers(api_key: str) -> dict[str, str]:
        return {"authkey": api_key}

    def send_call(self, message: OutboundMessage) -> HttpCall:
        payload = {"mobiles": message.recipient.lstrip("+"), "message": message.body,
                   "sender": message.sender or self._sender, "clientRef": message.message_id, **self._fields}
        return HttpCall("POST", "api/sendsms", params={"response": "json"}, json=payload)

    def read_send(self, body: Any) -> SendReply:
        body = body if isinstance(body, dict) else {}
        kind = str(body.get("type", "")).lower()
        ref = _text(body.get("message")) if kind == "success" else None
        detail = "" if kind == "success" else str(body.get("message", ""))
        return SendReply(ref, _text(body.get("code")), detail)

    def status_call(self, ref: ProviderRef) -> HttpCall:
        if ref.provider_ref:
            return HttpCall("GET", "api/report", params={"requestId": ref.provider_ref, "response": "json"})
        return HttpCall("GET", "api/report", params={"clientRef": ref.message_id, "response": "json"})

    def read_status(self, body: Any) -> LookupReply:
        body = body if isinstance(body, dict) else {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        code = _text(body.get("code"))
        settled = PANEL_LOOKUP_CODES.get(code or "")
        if settled is not None:
            return LookupReply(settled, None, code)
        return LookupReply(_report_status(data), _text(data.get("requestId")), code)

    def reports(self, provider: str, payload: Any) -> list[DeliveryEvent]:
        if isinstance(payload, dict) and isinstance(payload.get("data"), str):  # form post: data=<JSON>
            payload = parse_webhook_body({}, payload["data"].encode())
        requests = payload if isinstance(payload, list) else [payload]
        return [self._event(provider, request, item) for request in requests if isinstance(request, dict)
                for item in request.get("report", []) if isinstance(item, dict)]

    def _event(self, provider: str, request: dict[str, Any], item: dict[str, Any]) -> DeliveryEvent:
        """One report line; ``raw`` is that line (the request's ids are on the event)."""
        return DeliveryEvent(
            provider=provider, status=_report_status(item), provider_ref=_text(request.get("requestId")),
            message_id=_text(request.get("clientRef")), occurred_at=parse_timestamp(item.get("date")),
            provider_code=_text(item.get("status")), raw=item,
        )


def _report_status(item: Mapping[str, Any]) -> DeliveryStatus:
    """A panel report's status: its text (``desc``) through the shared table, else its number."""
    status = _status_of(item.get("desc"))
    if status is DeliveryStatus.UNKNOWN:
        status = _status_of(item.get("status"), PANEL_REPORT_CODES)
    if status is DeliveryStatus.UNKNOWN:
        status = _status_of(item.get("status"))
    return status
