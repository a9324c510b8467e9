"""Intake: call events → requests, calls, legs, transfers, recordings, notifications
(journal/intake/engine.py says how a batch is applied)."""

from journal.intake.engine import Intake

__all__ = ["Intake"]
