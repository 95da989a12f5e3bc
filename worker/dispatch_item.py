"""One message handed to dispatch, as every producer passes it to the publisher.

Intake, a campaign chunk, the outbox relay, reconcile and the batch path's retries all name a message for dispatch
the same way: its id, and the channel and type that choose its dispatch queue. A named tuple, so it still unpacks
and compares like the plain tuple it replaces, and reads by name where it is used.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["DispatchItem"]


class DispatchItem(NamedTuple):
    message_id: str
    #: The channel's value (SMS, VOICE, EMAIL) and the message type (OTP, TXN, MKT, ...): they pick the queue.
    channel: str
    message_type: str
