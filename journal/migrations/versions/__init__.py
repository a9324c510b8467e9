"""Alembic revisions, oldest first: NNNN_<what>.py (see docs/DESIGN-NOTES.md)."""
