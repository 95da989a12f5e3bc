"""kombu's local-file broker (the embedded default), with its files appearing whole or not at all.

kombu's filesystem transport creates a file and only then writes it, in two places. A consumer polling the
queue folder can take a message file in between and read an empty message; a publisher can read an exchange
table that another process has just created but not yet written. Either stops the worker ("Unrecoverable error:
JSONDecodeError"), which ``make demo`` met now and then. Here a message is written in full to a staging folder
on the same filesystem and renamed into the queue folder, and a missing exchange table is created by linking a
complete file into place; updates to an existing table keep kombu's locked read-modify-write. A message given
back to the queue (a lost worker, a reject) also carries kombu's ``redelivered`` mark where Celery reads it, so
the attempt caps of worker.policy.redeliveries work on the embedded broker too. It names no host, so kombu
does not warn that none was supplied.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

__all__ = ["Transport", "TRANSPORT_PATH"]

#: What ``broker_transport`` names for a ``filesystem://`` broker URL.
TRANSPORT_PATH = "worker.file_broker:Transport"


class Channel(filesystem.Channel):
    # kombu's two base classes name the second argument differently (message, payload): no override fits both.
    def _put(self, queue: Any, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Put ``message`` on ``queue``: written aside, then renamed into the queue folder in one step."""
        if message.get("redelivered"):  # a restored message: say so where Celery reads it (the attempt caps)
            message.setdefault("properties", {}).setdefault("delivery_info", {})["redelivered"] = True
        filename = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        folder = Path(self.data_folder_out)
        staging = folder.parent / f"{folder.name}.staging"
        staging.mkdir(parents=True, exist_ok=True)
        aside = staging / filename
        try:
            aside.write_bytes(str_to_bytes(dumps(message)))
            os.replace(aside, folder / filename)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {filename!r} to directory") from exc


    def _queue_bind(self, exchange: Any, routing_key: Any, pattern: Any, queue: Any) -> None:
        """Create the exchange table atomically if it is missing, then let kombu add the binding under its lock."""
        table: Path = self._exchange_file(exchange)  # type: ignore[no-untyped-call]  # kombu leaves it unannotated
        self.control_folder.mkdir(exist_ok=True)
        if not table.exists():
            aside = table.with_name(f".{table.name}.{uuid.uuid4()}")
            aside.write_bytes(str_to_bytes(dumps([])))
            try:
                os.link(aside, table)  # create-if-absent in one step: the table is never seen empty
            except FileExistsError:
                pass
            finally:
                aside.unlink()
        super()._queue_bind(exchange, routing_key, pattern, queue)  # type: ignore[no-untyped-call]  # as above


class Transport(filesystem.Transport):
    Channel = Channel

    @property
    def default_connection_params(self) -> dict[str, Any]:
        """No host or port: the broker is a folder. kombu's default host made every connection warn
        "No hostname was supplied. Reverting to default 'localhost'" (twice at each ``make demo``)."""
        return {}
