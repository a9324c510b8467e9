"""hotline: the composition root (service wiring, CLI) and the web layer."""
