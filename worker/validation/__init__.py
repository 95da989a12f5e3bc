"""Pure input checks (docs/contract.md section 3, step 1): no database, no Celery, no network.

Every public function returns the cleaned value or raises
:class:`worker.errors.ValidationError` carrying a catalogue code, and never puts a whole
phone number or email address into the error's detail.
"""

from __future__ import annotations

from worker.validation.contacts_csv import CsvImport, parse_contact_csv
from worker.validation.email import normalize_email
from worker.validation.fields import (
    EmailContent,
    VoiceRequest,
    check_campaign_id,
    check_campaign_name,
    check_channel,
    check_duplicate_flag,
    check_email_content,
    check_flash_flag,
    check_port,
    check_ref,
    check_ref1,
    check_ref2,
    check_sender,
    check_sms_type,
    check_unicode_flag,
    check_voice,
)
from worker.validation.masking import mask_email, mask_phone
from worker.validation.phone import normalize_phone, phone_prefix
from worker.validation.schedule import parse_schedule
from worker.validation.sms_text import MAX_SEGMENTS, SmsEncoding, encode_info

__all__ = [
    "MAX_SEGMENTS",
    "CsvImport",
    "EmailContent",
    "SmsEncoding",
    "VoiceRequest",
    "check_campaign_id",
    "check_campaign_name",
    "check_channel",
    "check_duplicate_flag",
    "check_email_content",
    "check_flash_flag",
    "check_port",
    "check_ref",
    "check_ref1",
    "check_ref2",
    "check_sender",
    "check_sms_type",
    "check_unicode_flag",
    "check_voice",
    "encode_info",
    "mask_email",
    "mask_phone",
    "normalize_email",
    "normalize_phone",
    "parse_contact_csv",
    "parse_schedule",
    "phone_prefix",
]
