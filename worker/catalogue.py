"""The error-code catalogue: every code the service can answer with, as data.

Codes ``E1xx``-``E7xx`` come from the SMS API reference this service honours (seed 000);
``E8xx`` are ours, for what that table lacks. Each entry names the equivalent code of the
bulk-SMS panel's API (seed 004) where one exists. The README's table is generated from
this module (``hexavox catalogue --markdown``) and a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Code", "Entry", "CATALOGUE", "markdown_table", "SEED_000_ANSWERED_OTHERWISE", "seed_000_table"]


class Code(StrEnum):
    """Every code the service raises, named for what went wrong."""

    SUBMITTED = "E100"
    CAMPAIGN_ACCEPTED = "E101"
    INTERNAL_ERROR = "E103"
    BULK_MUST_BE_MKT = "E400"
    SMS_TOO_LONG = "E401"
    SCHEDULE_OUT_OF_WINDOW = "E402"
    OTP_SINGLE_RECIPIENT = "E404"
    TXN_TOO_MANY_RECIPIENTS = "E405"
    INVALID_MOBILE_NUMBER = "E406"
    SMS_NODES_REQUIRED = "E407"
    SMS_NODE_TO_REQUIRED = "E408"
    TOO_MANY_SMS_NODES = "E409"
    TO_CONTAINS_COMMAS = "E410"
    SMS_NODE_TO_EMPTY = "E411"
    BODY_REQUIRED_IN_NODE_OR_GLOBAL = "E412"
    INVALID_INPUT = "E413"
    TO_REQUIRED = "E600"
    BODY_EMPTY = "E601"
    SENDER_REQUIRED = "E602"
    INVALID_PORT = "E603"
    INVALID_UNICODE_FLAG = "E604"
    INVALID_DUPLICATE_FLAG = "E605"
    INVALID_FLASH_FLAG = "E606"
    INVALID_CAMPAIGN_NAME = "E607"
    INVALID_REF = "E608"
    INVALID_REF1 = "E609"
    INVALID_REF2 = "E610"
    TYPE_REQUIRED = "E611"
    LIST_ID_REQUIRED = "E613"
    LIST_SEND_NOT_OTP = "E614"
    INVALID_TYPE = "E615"
    CAMPAIGN_ID_REQUIRED = "E617"
    INVALID_SENDER_PATTERN = "E619"
    TXN_ROUTE_DISABLED = "E623"
    DEFAULT_ROUTE_DISABLED = "E624"
    MKT_ROUTE_DISABLED = "E625"
    UPLOAD_REQUIRED = "E638"
    UPLOAD_NOT_CSV = "E639"
    UPLOAD_TOO_LARGE = "E640"
    INVALID_SOURCE_LENGTH = "E641"
    INVALID_SOURCE_TYPE = "E642"
    UPLOAD_FAILED = "E700"
    AUTHENTICATION_FAILED = "E801"
    KEY_NOT_PERMITTED = "E802"
    MERCHANT_NOT_FOUND = "E803"
    MERCHANT_INACTIVE = "E804"
    CONSENT_OPTED_OUT = "E805"
    CONSENT_REQUIRED = "E806"
    DUPLICATE_WITHIN_WINDOW = "E807"
    INSUFFICIENT_BALANCE = "E808"
    IDEMPOTENCY_KEY_REUSED = "E809"
    INVALID_NUMBER_TYPE = "E810"
    INVALID_EMAIL = "E811"
    NON_GSM_WITH_UNICODE_OFF = "E812"
    LIST_NOT_FOUND = "E813"
    UNSUPPORTED_JOB = "E814"
    PROVIDER_REJECTED = "E815"
    PROVIDER_UNAVAILABLE = "E816"
    DELIVERY_EXPIRED = "E817"
    ATTEMPTS_EXHAUSTED = "E818"
    CALLBACK_URL_REFUSED = "E819"
    BILLING_REFERENCE_REUSED = "E820"
    INVALID_CHANNEL = "E821"
    INVALID_VOICE_REQUEST = "E822"
    INVALID_EMAIL_CONTENT = "E823"
    DESTINATION_NOT_ALLOWED = "E824"
    BILLING_AMOUNT_MISMATCH = "E825"
    PAYMENT_NOT_FOUND = "E826"
    WEBHOOK_NOT_AUTHENTIC = "E827"
    TOO_MANY_RECIPIENTS = "E828"
    PAYLOAD_TOO_LARGE = "E829"
    # The HTTP API (api/): E840-E849.
    CLIENT_IP_NOT_ALLOWED = "E840"
    BODY_TOO_LARGE = "E841"
    RATE_LIMITED = "E843"
    UNSUPPORTED_MEDIA_TYPE = "E844"
    MESSAGE_NOT_FOUND = "E845"
    CAMPAIGN_NOT_FOUND = "E880"
    CAMPAIGN_STATE_CONFLICT = "E881"
    CAMPAIGN_CANCELLED = "E882"
    CAMPAIGN_CHANNEL_UNSUPPORTED = "E883"
    ENVELOPE_EXPIRED = "E875"
    UNDECODABLE_JOB = "E876"
    # 10DLC messaging registration and voice provisioning: E890-E899.
    MESSAGING_NOT_FOUND = "E890"
    MESSAGING_STATE_CONFLICT = "E891"
    TENDLC_NOT_REGISTERED = "E892"
    TENDLC_USE_CASE_MISMATCH = "E893"
    INVALID_MESSAGING_NUMBER = "E894"
    MESSAGING_NUMBER_TAKEN = "E895"
    SIP_CREDENTIAL_NOT_FOUND = "E896"
    SIP_USERNAME_TAKEN = "E897"


@dataclass(frozen=True)
class Entry:
    """One row of the catalogue."""

    code: Code
    description: str
    #: The equivalent code of the bulk-SMS panel API (seed 004), if it has one.
    equivalent_004: str | None = None


_ROWS: tuple[Entry, ...] = (
    Entry(Code.SUBMITTED, "Message submitted successfully"),
    Entry(Code.CAMPAIGN_ACCEPTED, "Campaign accepted"),
    Entry(Code.INTERNAL_ERROR, "Internal server error; the job may be sent again", "506"),
    Entry(Code.BULK_MUST_BE_MKT, "For a bulk or list send the type must be MKT"),
    Entry(Code.SMS_TOO_LONG, "SMS body is longer than the configured maximum", "310"),
    Entry(Code.SCHEDULE_OUT_OF_WINDOW, "A scheduled send must be 15 minutes to 3 months ahead", "307"),
    Entry(Code.OTP_SINGLE_RECIPIENT, "An OTP message takes exactly one mobile number"),
    Entry(Code.TXN_TOO_MANY_RECIPIENTS, "A TXN message takes at most 100 mobile numbers"),
    Entry(Code.INVALID_MOBILE_NUMBER, "Not a valid mobile number (E.164, no extension)", "202"),
    Entry(Code.SMS_NODES_REQUIRED, "sms nodes are mandatory in the batch form"),
    Entry(Code.SMS_NODE_TO_REQUIRED, "'to' is mandatory in each sms node", "101"),
    Entry(Code.TOO_MANY_SMS_NODES, "Too many sms nodes in one batch"),
    Entry(Code.TO_CONTAINS_COMMAS, "'to' in an sms node cannot contain commas"),
    Entry(Code.SMS_NODE_TO_EMPTY, "'to' has to be filled in sms nodes", "101"),
    Entry(Code.BODY_REQUIRED_IN_NODE_OR_GLOBAL, "Body has to be filled, either in the sms node or globally", "102"),
    Entry(Code.INVALID_INPUT, "Invalid input: a field has the wrong type, size or format"),
    Entry(Code.TO_REQUIRED, "'to' has to be filled", "101"),
    Entry(Code.BODY_EMPTY, "Body cannot be left empty", "102"),
    Entry(Code.SENDER_REQUIRED, "Sender id is required", "203"),
    Entry(Code.INVALID_PORT, "port must contain only numbers (1-65535)"),
    Entry(Code.INVALID_UNICODE_FLAG, "unicode must be 0, 1 or AUTO"),
    Entry(Code.INVALID_DUPLICATE_FLAG, "duplicate must be 0 or 1"),
    Entry(Code.INVALID_FLASH_FLAG, "flash must be 0 or 1"),
    Entry(Code.INVALID_CAMPAIGN_NAME, "Campaign name must be 1-32 alphanumeric characters", "308"),
    Entry(Code.INVALID_REF, "ref must contain only alphanumerics"),
    Entry(Code.INVALID_REF1, "ref1 must contain only alphanumerics"),
    Entry(Code.INVALID_REF2, "ref2 must contain only alphanumerics"),
    Entry(Code.TYPE_REQUIRED, "type is required"),
    Entry(Code.LIST_ID_REQUIRED, "listId has to be filled"),
    Entry(Code.LIST_SEND_NOT_OTP, "A list send cannot be of type OTP"),
    Entry(Code.CAMPAIGN_ID_REQUIRED, "campaignId has to be filled when given"),
    Entry(Code.INVALID_TYPE, "type must be TXN, MKT or OTP"),
    Entry(Code.INVALID_SENDER_PATTERN, "Invalid sender id pattern", "203"),
    Entry(Code.TXN_ROUTE_DISABLED, "Transactional route is not enabled for this merchant", "602"),
    Entry(Code.DEFAULT_ROUTE_DISABLED, "Default (OTP) route is not enabled for this merchant", "209"),
    Entry(Code.MKT_ROUTE_DISABLED, "Marketing route is not enabled for this merchant", "602"),
    Entry(Code.UPLOAD_REQUIRED, "Upload the file"),
    Entry(Code.UPLOAD_NOT_CSV, "Upload only CSV files"),
    Entry(Code.UPLOAD_TOO_LARGE, "Upload files of less than 1 MB"),
    Entry(Code.INVALID_SOURCE_LENGTH, "source must be 3 to 10 characters"),
    Entry(Code.INVALID_SOURCE_TYPE, "source must be letters only"),
    Entry(Code.UPLOAD_FAILED, "Unable to read the uploaded file"),
    Entry(Code.AUTHENTICATION_FAILED, "Unknown API key or wrong secret", "207"),
    Entry(Code.KEY_NOT_PERMITTED, "This API key's rules do not allow this channel or job"),
    Entry(Code.MERCHANT_NOT_FOUND, "No such merchant under this tenant", "309"),
    Entry(Code.MERCHANT_INACTIVE, "Merchant is not active", "303"),
    Entry(Code.CONSENT_OPTED_OUT, "Recipient has opted out of this channel"),
    Entry(Code.CONSENT_REQUIRED, "Marketing needs the recipient's OPT_IN for this channel"),
    Entry(Code.DUPLICATE_WITHIN_WINDOW, "Same content to the same recipient within 10 s; the first was sent", "311"),
    Entry(Code.INSUFFICIENT_BALANCE, "Not enough units left in the merchant's limit and credits", "301"),
    Entry(Code.IDEMPOTENCY_KEY_REUSED, "This Idempotency-Key was used with a different payload"),
    Entry(Code.INVALID_NUMBER_TYPE, "Number type not allowed (premium-rate, shared-cost, not SMS-capable)", "202"),
    Entry(Code.INVALID_EMAIL, "Not a valid email address"),
    Entry(Code.NON_GSM_WITH_UNICODE_OFF, "Body has characters outside GSM-7 but unicode is 0"),
    Entry(Code.LIST_NOT_FOUND, "No such contact list for this merchant", "309"),
    Entry(Code.UNSUPPORTED_JOB, "Unknown job kind or contract version"),
    Entry(Code.PROVIDER_REJECTED, "The provider refused the message"),
    Entry(Code.PROVIDER_UNAVAILABLE, "No provider on the route could take the message", "306"),
    Entry(Code.DELIVERY_EXPIRED, "No final outcome from the provider within the maximum age"),
    Entry(Code.ATTEMPTS_EXHAUSTED, "The job failed on every delivery attempt and was parked"),
    Entry(Code.CALLBACK_URL_REFUSED, "dlrUrl must be a public http(s) URL"),
    Entry(Code.BILLING_REFERENCE_REUSED, "This billing referenceId was used with a different request"),
    Entry(Code.INVALID_CHANNEL, "channel must be SMS, VOICE or EMAIL"),
    Entry(Code.INVALID_VOICE_REQUEST, "Voice text must be 1-3000 characters and timeoutSeconds 5-120"),
    Entry(Code.INVALID_EMAIL_CONTENT, "Email subject or body is missing, too long, or has line breaks in a header"),
    Entry(Code.DESTINATION_NOT_ALLOWED, "Destination country is not allowed for this merchant"),
    Entry(Code.BILLING_AMOUNT_MISMATCH, "amountCents must cover the price of the units, in USD"),
    Entry(Code.PAYMENT_NOT_FOUND, "No billing upgrade with this paymentId"),
    Entry(Code.WEBHOOK_NOT_AUTHENTIC, "Webhook signature missing or wrong, or its timestamp outside the window"),
    Entry(Code.TOO_MANY_RECIPIENTS, "Too many recipients in one job's 'to'; send larger audiences as a list"),
    Entry(Code.PAYLOAD_TOO_LARGE, "The job's payload is too large"),
    Entry(Code.CLIENT_IP_NOT_ALLOWED, "This API key does not accept requests from this IP address", "418"),
    Entry(Code.BODY_TOO_LARGE, "The request body is larger than the HTTP API accepts"),
    Entry(Code.RATE_LIMITED, "Too many requests for this API key; send again after Retry-After seconds"),
    Entry(Code.UNSUPPORTED_MEDIA_TYPE, "The HTTP API accepts only JSON bodies (Content-Type: application/json)"),
    Entry(Code.MESSAGE_NOT_FOUND, "No such message for this tenant"),
    Entry(Code.CAMPAIGN_NOT_FOUND, "No such campaign for this merchant"),
    Entry(Code.CAMPAIGN_STATE_CONFLICT, "The campaign's state does not allow this (e.g. resuming a completed one)"),
    Entry(Code.CAMPAIGN_CANCELLED, "The campaign was cancelled before this recipient was sent; nothing charged"),
    Entry(Code.CAMPAIGN_CHANNEL_UNSUPPORTED, "This campaign cannot run on its channel: EMAIL campaigns take `to` "
          "addresses, lists hold phone numbers"),
    Entry(Code.ENVELOPE_EXPIRED, "The job was signed outside the replay window (too old, or dated in the future)"),
    Entry(Code.UNDECODABLE_JOB, "The job body is not JSON (content type application/json); it was not run"),
    Entry(Code.MESSAGING_NOT_FOUND, "No such 10DLC brand, campaign or messaging number for this merchant"),
    Entry(Code.MESSAGING_STATE_CONFLICT, "The 10DLC registration's status does not allow this (a campaign before the "
          "brand is VERIFIED, a number assigned to a campaign that is not ACTIVE)"),
    Entry(Code.TENDLC_NOT_REGISTERED, "A US SMS from a 10DLC number needs the number ASSIGNED to an ACTIVE campaign"),
    Entry(Code.TENDLC_USE_CASE_MISMATCH, "The sending number's 10DLC campaign use case does not cover this SMS type"),
    Entry(Code.INVALID_MESSAGING_NUMBER, "A messaging number must be a US or Canadian long code (not toll-free, not a "
          "short code)"),
    Entry(Code.MESSAGING_NUMBER_TAKEN, "This number is already a messaging number of another merchant"),
    Entry(Code.SIP_CREDENTIAL_NOT_FOUND, "No such SIP username for this merchant"),
    Entry(Code.SIP_USERNAME_TAKEN, "This SIP username is taken"),
)

CATALOGUE: dict[Code, Entry] = {row.code: row for row in _ROWS}


def markdown_table() -> str:
    """The catalogue as the Markdown table printed in the README."""
    lines = ["| code | name | description | seed-004 equivalent |", "|---|---|---|---|"]
    for row in _ROWS:
        lines.append(f"| {row.code.value} | {row.code.name} | {row.description} | {row.equivalent_004 or '-'} |")
    return "\n".join(lines) + "\n"


#: Seed-000 codes the service never answers with, and what it answers instead (or why nothing): every other
#: seed-000 code is a catalogue code of its own, with the seed's meaning.
SEED_000_ANSWERED_OTHERWISE: tuple[tuple[str, str, str], ...] = (
    ("E102", "No Medium Configured for Queue", "E816 at dispatch: no provider on the route could take the message"),
    ("E104", "No Records Found", "not a job answer: `hexavox status` says the request id is unknown"),
    ("E105", "Status Field is Mandatory", "E413: a consent job without `status` has the wrong shape"),
    ("E403", "Something went wrong at our end please try again after some time", "E103 (send the job again)"),
    ("E612", "For Group SMS Use Either 'to' field or 'list_id' field",
     "no code: `to` wins, `listId` is ignored and the answer carries a warning"),
    ("E616", "Sender field has to be filled", "E602"),
    ("E618", "Body field has to be filled", "E601"),
    ("E620", "Campaign validated successfully", "no code: there is no separate campaign validation call"),
    ("E621", "Invalid Sender ID Pattern", "E619"),
    ("E622", "Invalid Sender ID Pattern", "E619"),
    ("E626", "Request Completed Successfully", "no code: an accepted message answers QUEUED, as for E100"),
)


def seed_000_table() -> str:
    """The seed-000 codes the service answers differently, as the second Markdown table in the README."""
    lines = ["| seed-000 code | seed description | what the service answers instead |", "|---|---|---|"]
    lines += [f"| {code} | {description} | {instead} |" for code, description, instead in SEED_000_ANSWERED_OTHERWISE]
    return "\n".join(lines) + "\n"
