"""Call recordings: locate MixMonitor files, verify them, serve them by request number."""
