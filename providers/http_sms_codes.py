"""The code tables of the HTTP SMS APIs (seed 000 "hexa", seed 004 "panel"): every provider code in one place.

What each send code means for the message is decided by :mod:`providers.outcomes` from these rows; a code a table
lacks is AMBIGUOUS on send and UNKNOWN on lookup, never a guessed success. tests/unit/test_outcome_tables.py pins
every row.
"""

from __future__ import annotations

from collections.abc import Mapping

from providers.base import DeliveryStatus, SendOutcome
from providers.outcomes import CodeTable
from worker.catalogue import Code

__all__ = [
    "HEXA_SUCCESS_CODES",
    "HEXA_SEND_CODES",
    "HEXA_BULK_CODES",
    "HEXA_LOOKUP_CODES",
    "PANEL_SEND_CODES",
    "PANEL_FIELDS",
    "PANEL_LOOKUP_CODES",
    "PANEL_REPORT_CODES",
    "DLR_STATUSES",
]

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
    # E407-E412 belong to the JSON form with sms nodes, which the many-numbers call posts (HEXA_BULK_CODES).
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
#: Seed 000 codes as a many-numbers request's own answer (no per-number results): the send table, except for the
#: codes that refuse the grouping rather than any message in it (OTP alone, TXN at most 100 numbers, bulk only MKT,
#: at most so many sms nodes). Such a request was refused as a whole before anything went out, and each message
#: alone would not meet the refusal, so each is UNAVAILABLE: sent again on its own, never failed. The driver's
#: grouping rules (providers/http_sms_shapes.py) keep these from happening; the table says what they mean if they do.
HEXA_BULK_CODES: CodeTable = {
    **HEXA_SEND_CODES,
    "E400": (_U, None),
    "E404": (_U, None),
    "E405": (_U, None),
    "E409": (_U, None),
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
