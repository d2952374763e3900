"""Configs as Python dicts, TOML text or files, checked by the same code as ``cm train``.

A config has the four tables of the TOML files (``data``, ``model``, ``method``, ``train``);
every field has a default and unknown fields or bad values raise :class:`ConfigError` (a
``ValueError``) with the CLI's message, which names the field::

    >>> import consistency_models as cm
    >>> cfg = cm.config.default("ict")          # the full default config, as a dict
    >>> cfg["train"]["steps"] = 500
    >>> cm.config.parse(cfg)["train"]["steps"]  # validated and resolved
    500
    >>> cm.config.parse({"train": {"stepz": 3}})
    Traceback (most recent call last):
    ...
    consistency_models.ConfigError: invalid config: unknown field `stepz`, ...
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Mapping, Optional, Union

from . import _native
from ._native import ConfigError

ConfigLike = Union[None, str, "os.PathLike[str]", Mapping[str, Any]]

__all__ = ["ConfigError", "ConfigLike", "default", "parse", "to_toml", "from_toml", "methods"]


def methods() -> list:
    """The method names ``[method] name`` accepts (``ict``, ``cd``, ``sct``, …)."""
    return list(_native.builtins()[1])


def default(method: str = "ict", preset: Optional[str] = None) -> Dict[str, Any]:
    """The full default config of ``method`` as a dict (``cm inspect config --method M``).

    ``preset`` starts ``[method]`` from an official configuration (``"cifar10"``,
    ``"imagenet64"``, … by method), as ``cm inspect config --preset P`` does.
    """
    return from_toml(_native.config_default(method, preset))


def from_toml(text: str) -> Dict[str, Any]:
    """TOML text → dict, without validation (see :func:`parse` for that)."""
    return json.loads(_native.toml_to_json(text))


def to_toml(config: ConfigLike) -> str:
    """The resolved, validated config as TOML text (what a run folder's ``config.toml`` holds)."""
    return _native.config_parse(_text(config))


def parse(config: ConfigLike) -> Dict[str, Any]:
    """Validates a config and returns it with every default filled in, as a dict.

    ``config`` is a dict (missing tables and fields take their defaults), TOML text, the path
    of a TOML file (``str`` or ``os.PathLike``), or None for all defaults. Raises
    :class:`ConfigError` naming the field for unknown fields and bad values, exactly as
    ``cm train`` reports them.
    """
    return from_toml(to_toml(config))


def _text(config: ConfigLike) -> str:
    """TOML text of any accepted config form (not yet validated)."""
    if config is None:
        return ""
    if isinstance(config, Mapping):
        return _native.json_to_toml(json.dumps(_plain(config)))
    if isinstance(config, os.PathLike) or (isinstance(config, str) and _looks_like_path(config)):
        path = os.fspath(config)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"no such config file: {path} (pass a dict, TOML text or the path of a .toml file)"
            )
        # The CLI's reader, so that its messages ("in PATH: …") are the same.
        return _native.config_load(path)
    if isinstance(config, str):
        return config
    raise TypeError(f"config must be a dict, TOML text, a path or None, got {type(config).__name__}")


def _looks_like_path(s: str) -> bool:
    # TOML text always has a table header or a key = value line; a path has neither.
    return "\n" not in s and "=" not in s and not s.lstrip().startswith("[") and s.strip() != ""


def _plain(v: Any) -> Any:
    """Dicts, tuples and NumPy scalars → JSON-able values (NumPy ints stay ints)."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # NumPy scalars
        return v.item()
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    return v
