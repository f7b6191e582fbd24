"""Reading the project's YAML configuration files, with errors that name the file."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import yaml

from linkage.errors import ConfigError

# libyaml's safe loader where PyYAML was built with it: the same documents, ten times faster
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> dict:
    """A YAML file holding a mapping; a missing or malformed file is a ConfigError naming it."""
    try:
        loaded = _parsed(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return copy.deepcopy(loaded)  # the caller's to change; the cached one stays as read


@lru_cache(maxsize=256)
def _parsed(text: str) -> object:
    """Parsed by its text, not its path: an edited file is parsed again (a night reads its
    configs several times, and parsing them is most of what loading them costs)."""
    return yaml.load(text, Loader=SAFE_LOADER)
