"""Station configuration: one TOML file per station, validated before anything starts.

``load_config(path)`` returns a frozen :class:`StationConfig` or raises
:class:`ConfigError` listing every problem with its key, the bad value and what is
allowed. ``station config check FILE`` prints the same.
"""

from station.config.load import ConfigError, StationConfig, load_config, parse_config

__all__ = ["ConfigError", "StationConfig", "load_config", "parse_config"]
