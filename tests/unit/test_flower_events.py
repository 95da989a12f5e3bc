"""What a worker reports to Flower: task events masked at the source (worker/telemetry/events.py)."""

from __future__ import annotations

from typing import Any

import pytest

from worker.telemetry.events import ScrubbingDispatcher, scrub_error_text, scrub_event_fields, scrub_repr

PHONE = "+18135551234"
EMAIL = "member@example.com"
PAYLOAD = {"auth": {"keyId": "k1", "secret": "s3cr3t-key"}, "merchantId": "gym-a", "to": PHONE,
           "body": "Your code is 482913", "type": "OTP"}


def test_task_arguments_keep_their_shape_with_contacts_texts_and_secrets_filtered() -> None:
    shown = scrub_repr(repr((PAYLOAD,)))
    assert shown == ("({'auth': '[Filtered]', 'merchantId': 'gym-a', 'to': '[Filtered]', 'body': '[Filtered]', "
                     "'type': 'OTP'},)")


def test_an_answer_keeps_message_ids_states_and_codes_with_recipients_masked() -> None:
    answer = {"requestId": "r1", "status": "PARTIAL", "messages": [
        {"messageId": "m1", "to": PHONE, "status": "QUEUED"},
        {"messageId": "m2", "to": EMAIL, "status": "REFUSED",
         "error": {"code": "E805", "detail": f"{PHONE} opted out"}},
    ]}
    shown = scrub_repr(repr(answer), answer=True)
    assert shown == ("{'requestId': 'r1', 'status': 'PARTIAL', 'messages': [{'messageId': 'm1', 'to': '+1******1234', "
                     "'status': 'QUEUED'}, {'messageId': 'm2', 'to': 'm***@example.com', 'status': 'REFUSED', "
                     "'error': {'code': 'E805', 'detail': '+1******1234 opted out'}}]}")


def test_a_repr_that_is_not_a_literal_is_withheld_when_it_quotes_anything() -> None:
    cut_short = repr((PAYLOAD,))[:60]  # Celery cuts long reprs: the rest of a body could be inside
    assert scrub_repr(cut_short) == "[withheld]"
    assert scrub_repr("(hexavox.sms.send.v1 job)") == "(hexavox.sms.send.v1 job)"
    assert scrub_repr("<object at 0x7f00 for 8135551234>") == "<object at 0x7f00 for ******1234>"


def test_sql_parameters_are_withheld_from_exceptions_and_tracebacks() -> None:
    error = ("IntegrityError: duplicate key\n[SQL: INSERT INTO messages (recipient, body) VALUES (%s, %s)]\n"
             "[parameters: ('+18135551234', 'Hello Mary')]\n(Background on this error at: https://sqlalche.me/e/20/gkpj)")
    shown = scrub_error_text(error)
    assert "Hello Mary" not in shown and PHONE not in shown
    assert "[parameters: withheld]" in shown and "INSERT INTO messages" in shown


def test_only_task_fields_are_masked_and_the_dispatcher_masks_before_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    from celery.events.dispatcher import EventDispatcher

    fields = {"uuid": "3f0c2d9e-0000-4000-8000-000000000000", "name": "hexavox.sms.send.v1", "args": repr((PAYLOAD,)),
              "kwargs": "{}", "exception": f"ValueError('{EMAIL}')", "runtime": 0.5}
    masked = scrub_event_fields(fields)
    assert masked["uuid"] == fields["uuid"] and masked["name"] == fields["name"] and masked["runtime"] == 0.5
    assert PHONE not in masked["args"] and EMAIL not in masked["exception"]

    sent: list[dict[str, Any]] = []

    class Recording(ScrubbingDispatcher):
        def __init__(self) -> None:  # no broker connection: only what send() hands on is of interest
            pass

    def parent_send(self: Any, type: str, *args: Any, **kw: Any) -> None:  # noqa: A002
        sent.append({"type": type, **kw})

    monkeypatch.setattr(EventDispatcher, "send", parent_send)
    Recording().send("task-received", **fields)
    assert sent[0]["type"] == "task-received" and PHONE not in repr(sent) and "482913" not in repr(sent)


def test_an_app_builds_its_event_dispatchers_from_the_masking_class_once_installed() -> None:
    from celery import Celery

    from worker.telemetry.events import install

    app = Celery("events-test", set_as_current=False)  # not the service's app: its broker settings stay untouched
    assert app.events.Dispatcher is not None and not issubclass(app.events.Dispatcher, ScrubbingDispatcher)
    install(app)
    assert issubclass(app.events.Dispatcher, ScrubbingDispatcher)
