"""HTTP SMS driver for the two SMS API styles in the seeds, chosen with the ``shape`` option.

``hexa`` (seed 000): ``POST messages`` as a form with ``to, body, sender, type, ref, dlrurl`` (and ``ref1, unicode,
flash, port, duplicate`` when the message has them, in the seed's formats: :func:`hexa_options`) and an ``api-key``
header; the answer carries an E-code (E100 submitted, E4xx/E6xx refusals). ``panel`` (seed 004): ``POST
api/sendsms`` as JSON with ``mobiles, message, sender, route`` (and the DLT entity and template ids and the flow id
when configured) and an ``authkey`` header; the answer is ``{"type": "success", "message": "<request id>"}`` or
``{"type": "error", "code": 202, ...}``.

Our message id travels as the provider's client reference (hexa ``ref``, panel ``clientRef``) so reconcile can look
a message up even when the send timed out before a provider reference came back. Every provider code goes through
a module-level table; a code the table lacks is AMBIGUOUS on send and UNKNOWN on lookup, never a guessed success.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self

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
    CodeTable,
    HttpCall,
    OptionReader,
    make_client,
    outcome_for_error,
    outcome_for_http_status,
    parse_timestamp,
    parse_webhook_body,
    perform,
    raw_error,
    raw_response,
    result_from_code,
    result_from_outcome,
    verify_signature,
)
from schema.states import Channel
from worker.catalogue import Code
from worker.errors import ConfigurationError
from worker.settings import Settings

__all__ = [
    "HttpSmsProvider",
    "HEXA_SEND_CODES",
    "HEXA_LOOKUP_CODES",
    "PANEL_SEND_CODES",
    "PANEL_LOOKUP_CODES",
    "PANEL_REPORT_CODES",
    "DLR_STATUSES",
    "hexa_ref",
    "hexa_options",
    "message_id_from_ref",
]

log = logging.getLogger(__name__)

_R, _U, _A = SendOutcome.REJECTED, SendOutcome.UNAVAILABLE, SendOutcome.AMBIGUOUS

#: Seed 000 answers that mean the message was taken.
HEXA_SUCCESS_CODES = frozenset({"E100", "E101"})
#: Seed 000 error codes. Refusals of the message itself are REJECTED with our catalogue code (PROVIDER_REJECTED when
#: the catalogue has none, for fields we never send); "no medium configured" and disabled routes concern our account,
#: not the message, so another provider may take it (UNAVAILABLE); "something went wrong at our end" may come after
#: the message was queued (AMBIGUOUS). E104, E105 (lookups) and E700 ("unable to upload": whose side?) stay unmapped.
HEXA_SEND_CODES: CodeTable = {
    "E102": (_U, None),
    "E103": (_A, None),
    "E403": (_A, None),
    "E400": (_R, Code.BULK_MUST_BE_MKT),
    "E401": (_R, Code.SMS_TOO_LONG),
    "E402": (_R, Code.SCHEDULE_OUT_OF_WINDOW),
    "E404": (_R, Code.OTP_SINGLE_RECIPIENT),
    "E405": (_R, Code.TXN_TOO_MANY_RECIPIENTS),
    "E406": (_R, Code.INVALID_MOBILE_NUMBER),
    # E407-E412 belong to the JSON batch form; we post the plain form, but a refusal is still a refusal.
    "E407": (_R, Code.SMS_NODES_REQUIRED),
    "E408": (_R, Code.SMS_NODE_TO_REQUIRED),
    "E409": (_R, Code.TOO_MANY_SMS_NODES),
    "E410": (_R, Code.TO_CONTAINS_COMMAS),
    "E411": (_R, Code.SMS_NODE_TO_EMPTY),
    "E412": (_R, Code.BODY_REQUIRED_IN_NODE_OR_GLOBAL),
    "E413": (_R, Code.INVALID_INPUT),
    "E600": (_R, Code.TO_REQUIRED),
    "E601": (_R, Code.BODY_EMPTY),
    "E602": (_R, Code.SENDER_REQUIRED),
    "E603": (_R, Code.PROVIDER_REJECTED),  # port number not numeric: a field we never send
    "E604": (_R, Code.INVALID_UNICODE_FLAG),
    "E605": (_R, Code.PROVIDER_REJECTED),  # duplicate flag not 0/1: a field we never send
    "E606": (_R, Code.INVALID_FLASH_FLAG),
    "E607": (_R, Code.INVALID_CAMPAIGN_NAME),
    "E608": (_R, Code.INVALID_REF),
    "E609": (_R, Code.INVALID_REF),  # ref1
    "E610": (_R, Code.INVALID_REF),  # ref2
    "E611": (_R, Code.TYPE_REQUIRED),
    "E612": (_R, Code.PROVIDER_REJECTED),  # 'to' and 'list_id' together: we only ever send 'to'
    "E613": (_R, Code.LIST_ID_REQUIRED),
    "E614": (_R, Code.LIST_SEND_NOT_OTP),
    "E615": (_R, Code.INVALID_TYPE),
    "E616": (_R, Code.SENDER_REQUIRED),
    "E617": (_R, Code.PROVIDER_REJECTED),  # campaign_id missing: the catalogue has no campaign id
    "E618": (_R, Code.BODY_EMPTY),
    "E619": (_R, Code.INVALID_SENDER_PATTERN),
    # E620 "Campaign validated successfully" and E626 "Request Completed Successfully" answer other calls: on a send
    # that brings no message id they prove nothing either way, so reconcile asks.
    "E620": (_A, None),
    "E621": (_R, Code.INVALID_SENDER_PATTERN),
    "E622": (_R, Code.INVALID_SENDER_PATTERN),
    "E623": (_U, None),
    "E624": (_U, None),
    "E625": (_U, None),
    "E626": (_A, None),
    "E638": (_R, Code.UPLOAD_REQUIRED),
    "E639": (_R, Code.UPLOAD_NOT_CSV),
    "E640": (_R, Code.UPLOAD_TOO_LARGE),
    "E641": (_R, Code.INVALID_SOURCE_LENGTH),
    "E642": (_R, Code.INVALID_SOURCE_TYPE),
}
#: Seed 000 lookup answers that settle a status without one: E104 "No Records Found" proves it never arrived.
HEXA_LOOKUP_CODES: Mapping[str, DeliveryStatus] = {"E104": DeliveryStatus.NOT_FOUND}

#: Seed 004 error codes. REJECTED: the panel refused something about this message (its number, text, sender, or the
#: DLT template or flow its text must match); sending it elsewhere or later would not change that. UNAVAILABLE: the
#: state of our account at the panel (credentials, IP rules, wallet, routes), nothing about the message: another
#: provider may take it, and the breaker opens and alerts while it lasts. REJECTED there would fail every message
#: with a code that blames the merchant, and look like a healthy provider to the breaker. AMBIGUOUS: internal errors.
PANEL_SEND_CODES: CodeTable = {
    "101": (_R, Code.TO_REQUIRED),
    "102": (_R, Code.BODY_EMPTY),
    "104": (_U, None),  # missing username: our credentials
    "105": (_U, None),  # missing password: our credentials
    "201": (_U, None),  # invalid username or password: our credentials
    "202": (_R, Code.INVALID_MOBILE_NUMBER),
    "203": (_R, Code.INVALID_SENDER_PATTERN),  # bad sender id or no DLT entity id: bound to the message's sender
    "207": (_U, None),  # invalid authentication key: our credentials
    "208": (_U, None),  # our IP is blacklisted
    "209": (_U, None),  # our account has no default route: account set-up, nothing about this message
    "210": (_U, None),  # the panel cannot determine our route ("contact support"): account set-up
    "211": (_R, Code.PROVIDER_REJECTED),  # no DLT template id: every retry of this text would be refused
    "301": (_U, None),  # our wallet at the panel is empty, not the merchant's units (E808): top up, fail over
    "302": (_U, None),  # our account expired
    "303": (_U, None),  # our account banned
    "306": (_U, None),  # route unavailable for now
    "307": (_R, Code.SCHEDULE_OUT_OF_WINDOW),
    "308": (_R, Code.INVALID_CAMPAIGN_NAME),
    "309": (_R, Code.LIST_NOT_FOUND),
    "310": (_R, Code.SMS_TOO_LONG),  # "paused": not sent unless someone resumes it by hand in the panel
    "311": (_R, Code.DUPLICATE_WITHIN_WINDOW),  # same text and number within 10 s: the first goes, this is dropped
    "400": (_R, Code.PROVIDER_REJECTED),  # flow id missing or invalid: permanent for this text
    "401": (_R, Code.PROVIDER_REJECTED),  # flow not yet approved: approval takes days, not a retry
    "402": (_R, Code.PROVIDER_REJECTED),  # hard-blocked keywords in the text
    "403": (_R, Code.PROVIDER_REJECTED),  # flow disabled
    "418": (_U, None),  # our IP is not whitelisted
    "506": (_A, None),  # internal error: the request may have been queued
    "601": (_A, None),
    "602": (_U, None),  # our route is disabled ("select another route"): fail over
    "603": (_R, Code.INVALID_SENDER_PATTERN),  # the message's sender id is blacklisted
    "604": (_R, Code.INVALID_MOBILE_NUMBER),
    "606": (_R, Code.SCHEDULE_OUT_OF_WINDOW),
    "607": (_R, Code.INVALID_CAMPAIGN_NAME),
    "608": (_R, Code.SCHEDULE_OUT_OF_WINDOW),
}
#: Seed 004 request fields taken from the provider's options, not the message ("the authentication key, sender id,
#: and route will always be static"): option -> (request field, default). The route is always sent: without one the
#: panel falls back to the account's default route and answers 209 when there is none. The default "4" is the panel's
#: transactional route (1 is promotional: give MKT its own provider instance). The DLT entity and template ids (203,
#: 211) and the flow id (400) are sent only when set: accounts and destinations outside India's DLT rules have none.
#: The seed names these parameters but never shows their wire spelling; the fields follow the API's camelCase.
PANEL_FIELDS: Mapping[str, tuple[str, str]] = {
    "route": ("route", "4"),
    "dlt_entity_id": ("dltEntityId", ""),
    "dlt_template_id": ("dltTemplateId", ""),
    "flow_id": ("flowId", ""),
}

#: The panel's report lookup (our design; seed 004 only promises reports and webhooks) says "NO_RECORDS" for a
#: request id or client reference it never saw.
PANEL_LOOKUP_CODES: Mapping[str, DeliveryStatus] = {"NO_RECORDS": DeliveryStatus.NOT_FOUND}
#: Numeric report statuses of the panel, used when a report has no status text.
PANEL_REPORT_CODES: Mapping[str, DeliveryStatus] = {
    "1": DeliveryStatus.DELIVERED,
    "2": DeliveryStatus.FAILED,
    "8": DeliveryStatus.ACCEPTED,
    "9": DeliveryStatus.FAILED,
    "16": DeliveryStatus.FAILED,
    "17": DeliveryStatus.FAILED,
}

#: Delivery-report status words of both APIs (SMPP ``stat`` words and their spelled-out forms).
DLR_STATUSES: Mapping[str, DeliveryStatus] = {
    **dict.fromkeys(("DELIVRD", "DELIVERED"), DeliveryStatus.DELIVERED),
    **dict.fromkeys(("UNDELIV", "UNDELIVERED", "FAILED", "EXPIRED", "REJECTD", "REJECTED", "DELETED"),
                    DeliveryStatus.FAILED),
    **dict.fromkeys(("SUBMITTED", "SENT", "QUEUED", "ACCEPTD", "ACCEPTED", "ENROUTE", "PENDING"),
                    DeliveryStatus.ACCEPTED),
}

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


@dataclass(frozen=True)
class SendReply:
    """What a shape read out of a send answer: the provider's reference if it took the message, else its code."""

    provider_ref: str | None
    code: str | None
    detail: str


@dataclass(frozen=True)
class LookupReply:
    status: DeliveryStatus
    provider_ref: str | None
    code: str | None


@dataclass(frozen=True)
class _Config:
    sender: str
    dlr_url: str
    panel_fields: Mapping[str, str]  #: request field -> value, from :data:`PANEL_FIELDS`; empty for hexa


class Shape(Protocol):
    """The request and response format of one SMS API; the provider class does everything else."""

    send_codes: CodeTable

    def auth_headers(self, api_key: str) -> dict[str, str]: ...

    def send_call(self, message: OutboundMessage, config: _Config) -> HttpCall: ...

    def read_send(self, body: Any) -> SendReply: ...

    def status_call(self, ref: ProviderRef) -> HttpCall: ...

    def read_status(self, body: Any) -> LookupReply: ...

    def reports(self, provider: str, payload: Any) -> list[DeliveryEvent]: ...


class HexaShape:
    """Seed 000: form posts, E-codes, ``ref`` for our id, DLRs as one report (or a list) per webhook call."""

    send_codes = HEXA_SEND_CODES

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"api-key": api_key}

    def send_call(self, message: OutboundMessage, config: _Config) -> HttpCall:
        form = {"to": message.recipient, "body": message.body, "sender": message.sender or config.sender,
                "type": message.message_type, "ref": hexa_ref(message.message_id)}
        if config.dlr_url:
            form["dlrurl"] = config.dlr_url
        form.update(hexa_options(message.options))
        return HttpCall("POST", "messages", data=form)

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

    send_codes = PANEL_SEND_CODES

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"authkey": api_key}

    def send_call(self, message: OutboundMessage, config: _Config) -> HttpCall:
        payload = {"mobiles": message.recipient.lstrip("+"), "message": message.body,
                   "sender": message.sender or config.sender, "clientRef": message.message_id, **config.panel_fields}
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


SHAPES: Mapping[str, type[HexaShape] | type[PanelShape]] = {"hexa": HexaShape, "panel": PanelShape}
_OPTIONS = frozenset({"base_url", "api_key", "sender", "shape", "max_rps", "timeout", "dlr_url", "webhook_secret"}
                     ).union(PANEL_FIELDS)


def _panel_fields(name: str, shape: str, read: OptionReader, options: Mapping[str, Any]) -> dict[str, str]:
    """The configured :data:`PANEL_FIELDS` as request fields. Hexa has no such parameters, so setting one there is a
    mistake to catch at start-up, as is a blank route: the panel would pick one itself."""
    if shape != "panel":
        if given := sorted(PANEL_FIELDS.keys() & options.keys()):
            raise ConfigurationError(f"provider {name!r}: {', '.join(given)} only apply to the panel shape")
        return {}
    values = {field: read.text(option, default).strip() for option, (field, default) in PANEL_FIELDS.items()}
    if not values["route"]:
        raise ConfigurationError(f"provider {name!r}: route must not be blank, the panel always gets one")
    return {field: value for field, value in values.items() if value}


class HttpSmsProvider:
    """One configured SMS API. Options: ``base_url``, ``api_key`` (secret), ``shape`` ("hexa" | "panel"),
    ``sender`` (default sender id), ``max_rps``, ``timeout`` (seconds, default HEXAVOX_PROVIDER_TIMEOUT),
    ``dlr_url`` (hexa only: where the provider posts delivery reports), ``webhook_secret`` (secret); panel only:
    ``route`` (default "4", transactional), ``dlt_entity_id``, ``dlt_template_id``, ``flow_id`` (sent when set)."""

    channels = frozenset({Channel.SMS})

    def __init__(self, name: str, shape: Shape, client: httpx.Client, *, config: _Config, max_rps: float,
                 webhook_secret: str | None) -> None:
        self.name = name
        self.max_rps = max_rps
        self._shape = shape
        self._client = client
        self._config = config
        self._webhook_secret = webhook_secret

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any], settings: Settings) -> Self:
        read = OptionReader("http_sms", name, options, _OPTIONS)
        shape_name = read.text("shape", "hexa")
        if shape_name not in SHAPES:
            raise ConfigurationError(f"provider {name!r}: shape must be one of {', '.join(SHAPES)}")
        if shape_name != "hexa" and options.get("dlr_url"):
            raise ConfigurationError(f"provider {name!r}: dlr_url is set in the panel, not per request")
        config = _Config(sender=read.text("sender", ""), dlr_url=read.text("dlr_url", ""),
                         panel_fields=_panel_fields(name, shape_name, read, options))
        shape = SHAPES[shape_name]()
        client = make_client(read.text("base_url"), read.number("timeout", settings.provider_timeout),
                             shape.auth_headers(read.text("api_key")))
        return cls(name, shape, client, config=config, max_rps=read.number("max_rps", 0.0),
                   webhook_secret=read.text("webhook_secret", "") or None)

    def __repr__(self) -> str:
        shape = type(self._shape).__name__
        return f"HttpSmsProvider(name={self.name!r}, shape={shape}, base_url={self._client.base_url})"

    def close(self) -> None:
        self._client.close()

    def send(self, message: OutboundMessage) -> SendResult:
        """Post the message once; the answer or the failure becomes one of the four outcomes."""
        try:
            response = perform(self._client, self._shape.send_call(message, self._config))
        except httpx.HTTPError as err:
            result = outcome_for_error(self.name, err)
        else:
            result = self._read_send(response)
        log.info("sms send via %s: %s %s", self.name, result.outcome, result.provider_code or result.detail)
        return result

    def _read_send(self, response: httpx.Response) -> SendResult:
        raw = raw_response(response)
        reply = self._shape.read_send(raw["body"])
        if reply.provider_ref and response.is_success:
            return SendResult.accepted(self.name, reply.provider_ref, raw=raw, provider_code=reply.code)
        if reply.code:
            return result_from_code(self.name, reply.code, self._shape.send_codes, detail=reply.detail, raw=raw)
        outcome = outcome_for_http_status(response.status_code)
        return result_from_outcome(self.name, outcome, detail=f"HTTP {response.status_code} {reply.detail}", raw=raw)

    def fetch_status(self, ref: ProviderRef) -> StatusResult:
        """Look the message up by the provider's reference, or by our id when the send never got one back.

        A failed lookup is UNKNOWN: only the provider's explicit "no records" proves it never got the message.
        """
        try:
            response = perform(self._client, self._shape.status_call(ref))
        except httpx.HTTPError as err:
            return StatusResult(DeliveryStatus.UNKNOWN, provider_ref=ref.provider_ref, raw=raw_error(err))
        raw = raw_response(response)
        reply = self._shape.read_status(raw["body"])
        return StatusResult(reply.status, provider_ref=reply.provider_ref or ref.provider_ref,
                            provider_code=reply.code, raw=raw)

    def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[DeliveryEvent]:
        """Delivery reports from one webhook call, each keeping the report it came from as ``raw``."""
        verify_signature(headers, body, self._webhook_secret)
        payload = parse_webhook_body(headers, body)
        return self._shape.reports(self.name, payload)
