"""Campaign endpoints of the HTTP API over real HTTP: create, read counts, pause, resume, cancel, codes."""

from __future__ import annotations

import uuid

from factories import make_merchant, make_tenant, opt
from http_api_support import client, running_api

NUMBERS = ["+18135551001", "+18135551002", "+18135551003"]


def test_a_campaign_is_created_read_paused_resumed_and_cancelled_over_http(hexavox_env: dict[str, str]) -> None:
    tenant = make_tenant()
    make_merchant(tenant, "gym-a")
    for number in NUMBERS:
        opt(tenant, "gym-a", "SMS", number)
    with running_api() as base, client(base, tenant) as http:
        # When a campaign is created, it is answered at once with its id and planned count
        created = http.post("/api/v1/campaigns", json={"merchantId": "gym-a", "to": NUMBERS, "body": "Spring sale",
                                                       "sender": "GYMA", "name": "Spring"})
        assert created.status_code == 202, created.text
        campaign_id = created.json()["campaignId"]
        assert created.json()["planned"] == 3
        # Then its counts are readable, and pause, resume and cancel act on it
        shown = http.get(f"/api/v1/campaigns/{campaign_id}", params={"merchantId": "gym-a"})
        assert shown.status_code == 200, shown.text
        assert shown.json()["counts"]["planned"] == 3
        states = [http.post(f"/api/v1/campaigns/{campaign_id}/{verb}", params={"merchantId": "gym-a"}).json()["state"]
                  for verb in ("pause", "resume", "cancel")]
        assert states == ["PAUSED", "RUNNING", "CANCELLED"]
        conflict = http.post(f"/api/v1/campaigns/{campaign_id}/resume", params={"merchantId": "gym-a"})
        assert (conflict.status_code, conflict.json()["code"]) == (409, "E881"), conflict.text
        # And an unknown campaign is refused with its catalogue code
        unknown = http.get(f"/api/v1/campaigns/{uuid.uuid4()}", params={"merchantId": "gym-a"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "E880"), unknown.text
