"""The embedded broker's files appear whole or not at all (kombu's filesystem transport writes them in place)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from worker.file_broker import TRANSPORT_PATH


def _connection(tmp_path: Path) -> Connection:
    queue = tmp_path / "queue"
    queue.mkdir()
    return Connection("filesystem://", transport=TRANSPORT_PATH, transport_options={
        "data_folder_in": str(queue), "data_folder_out": str(queue), "control_folder": str(tmp_path / "control"),
        "processed_folder": str(tmp_path / "processed"), "store_processed": False})


def test_a_message_is_never_visible_in_the_queue_folder_before_it_is_complete(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a channel, and a watch on every write of a message body
    seen_while_writing: list[list[str]] = []
    real_write = Path.write_bytes

    def watched(self: Path, data: Any) -> int:
        seen_while_writing.append(sorted(p.name for p in (tmp_path / "queue").iterdir()))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", watched)
    with _connection(tmp_path) as conn:
        queue = conn.SimpleQueue("otp")
        # When a message is published
        queue.put({"task": "hexavox.sms.send.v1", "pad": "x" * 100_000})
        # Then while its body was written the queue folder held nothing, and afterwards one whole message
        assert seen_while_writing and all(names == [] for names in seen_while_writing)
        [stored] = list((tmp_path / "queue").iterdir())
        assert json.loads(stored.read_text())["body"]
        assert list((tmp_path / "queue.staging").iterdir()) == []
        assert queue.get(timeout=5).payload["pad"] == "x" * 100_000


def test_a_missing_exchange_table_is_created_whole_and_bound(tmp_path: Path) -> None:
    with _connection(tmp_path) as conn:
        conn.SimpleQueue("bulk")
        table = tmp_path / "control" / "bulk.exchange"
        assert [row[2] for row in json.loads(table.read_text())] == ["bulk"]
        conn.SimpleQueue("bulk")  # a second bind finds the table and leaves one binding
        assert len(json.loads(table.read_text())) == 1
        assert [p.name for p in (tmp_path / "control").iterdir()] == ["bulk.exchange"]  # no staging left over


def test_a_message_given_back_to_the_queue_is_marked_redelivered_where_celery_reads_it(tmp_path: Path) -> None:
    with _connection(tmp_path) as conn:
        queue = conn.SimpleQueue("admin")
        queue.put({"job": 1})
        message = queue.get(timeout=5)
        assert not message.delivery_info.get("redelivered")
        # When the message is given back (what a lost worker's reject does), Then its next copy says so
        message.requeue()
        again = queue.get(timeout=5)
        assert again.payload == {"job": 1} and again.delivery_info.get("redelivered") is True


def test_connecting_names_no_host_so_kombu_does_not_warn_about_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Given the embedded broker's connection (a folder: filesystem:// has no host)
    with caplog.at_level("WARNING"), _connection(tmp_path) as conn:
        # When a message goes through it, the way every `make demo` connection does
        conn.SimpleQueue("otp").put({"task": "hexavox.sms.send.v1"})
        conn.clone().release()
    # Then kombu logged no "No hostname was supplied. Reverting to default 'localhost'"
    assert [r.getMessage() for r in caplog.records if "hostname" in r.getMessage()] == []
