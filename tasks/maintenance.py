"""Periodic maintenance tasks (outbox relay, scheduled release, reconcile)."""
