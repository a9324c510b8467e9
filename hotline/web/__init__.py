"""HTTP API, websocket hub and the operator/administrator pages."""
