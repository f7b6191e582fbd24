"""Reading the project's YAML configuration files, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from linkage.errors import ConfigError


def read_yaml(path: Path) -> dict:
    """A YAML file holding a mapping; a missing or malformed file is a ConfigError naming it."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded
