"""The fault suite run by `make chaos` (see run.py)."""
