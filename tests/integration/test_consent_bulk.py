"""hexavox.consent.bulk_upsert.v1: each row answered on its own; good rows stored even beside bad ones."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from schema.models import Consent
from worker.db import session_scope
from worker.runner import run_admin_job_by_name

from factories import make_merchant, make_tenant


def test_each_row_is_answered_and_only_good_rows_are_stored(hexavox_env: dict[str, str]) -> None:
    # Given a merchant, When a bulk upsert mixes good rows with a bad number, a bad channel and a bad email
    tenant = make_tenant()
    merchant_pk = make_merchant(tenant)
    rows = [
        {"channel": "SMS", "contact": "+1 813 555 1234", "status": "OPT_IN"},
        {"channel": "SMS", "contact": "12", "status": "OPT_IN"},
        {"channel": "FAX", "contact": "+18135551234", "status": "OPT_IN"},
        {"channel": "EMAIL", "contact": "Ann@Example.COM", "status": "OPT_OUT", "source": "form"},
        {"channel": "EMAIL", "contact": "ann@@example.com", "status": "OPT_IN"},
    ]
    answer = run_admin_job_by_name("hexavox.consent.bulk_upsert.v1",
                                   {"auth": tenant.auth, "merchantId": "gym-a", "consents": rows}, str(uuid.uuid4()))

    # Then each row has its own outcome and code, in order
    results = answer["result"]["results"]
    assert answer["status"] == "ACCEPTED"
    assert [(r["index"], r["outcome"], r.get("error", {}).get("code")) for r in results] == [
        (0, "OK", None), (1, "REFUSED", "E406"), (2, "REFUSED", "E821"), (3, "OK", None), (4, "REFUSED", "E811")]
    assert results[0]["contact"] == "+1******1234"  # answered masked (the answer is kept in the result backend)
    assert results[3]["contact"] == "a***@example.com"
    # And exactly the good rows are in the database
    with session_scope() as session:
        stored = session.execute(select(Consent.channel, Consent.contact, Consent.status)
                                 .where(Consent.merchant_id == merchant_pk)).all()
    assert sorted(stored) == [("EMAIL", "ann@example.com", "OPT_OUT"), ("SMS", "+18135551234", "OPT_IN")]  # normalised
