"""Service configuration: ``HOTLINE_*`` environment variables and an optional TOML routing file."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
