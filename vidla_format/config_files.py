"""YAML config files with ``key.sub=value`` overrides: the loader both halves share.

Curation (``curate/config.py``, ``pipelines/config.py``) and training (``vidla/config_files.py``)
take a YAML file plus command-line overrides, and a user moving between them must find the same
rules: an override's value is parsed as YAML (``3``, ``2.5``, ``true``, ``[en]``), sections are
created as needed, and a section named in a file or an override is merged into the defaults key
by key while plain values (lists, dicts that are one value) are replaced whole. The typed models
themselves stay with their owners; only this generic part lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo


def read_mapping(path: Path) -> dict[str, Any]:
    """The mapping a YAML config file holds (an empty file is an empty mapping; anything else is an error)."""
    loaded = yaml.safe_load(path.read_text())
    if loaded is not None and not isinstance(loaded, dict):
        raise ValueError(f"{path}: a config file must hold a mapping")
    return loaded or {}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value), the value parsed as YAML (so 3, 2.5, true, [en] work)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key.sub=value")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ValueError(f"override {text!r} has an empty key")
    return path, yaml.safe_load(raw)


def config_data(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The raw mapping of a YAML config with ``key.sub=value`` overrides applied (not yet validated)."""
    data = read_mapping(Path(path)) if path is not None else {}
    for item in overrides or []:
        apply_override(data, item)
    return data


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set one ``key.sub=value`` override in a nested mapping (sections created as needed)."""
    keys, value = parse_override(item)
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {item!r}: {key} is not a section")
    node[keys[-1]] = value


def with_defaults(default: BaseModel, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` laid over ``default``'s values, section by section.

    So ``plan.short.min_s=4`` changes one field and keeps the scale's other defaults (a
    scale has no class-level defaults: short, medium and long differ). Plain dict fields
    (``samples.splits``) are replaced whole, never merged key by key. A section that is a
    discriminated union (a text backend: ``backend`` names its class) and whose kind ``data``
    changes keeps only the defaults the new kind also has: ``text.llm.backend=openai`` keeps
    the model, and the hf-only options of the default summariser do not follow it.
    """
    out = default.model_dump()
    for name, value in data.items():
        current = getattr(default, name, None)
        if not (isinstance(current, BaseModel) and isinstance(value, dict)):
            out[name] = value
            continue
        switched = _switched_kind(type(default).model_fields.get(name), current, value)
        if switched is None:
            out[name] = with_defaults(current, value)
        else:
            shared = {k: v for k, v in current.model_dump().items() if k in switched.model_fields}
            out[name] = shared | value
    return out


def _switched_kind(field: FieldInfo | None, current: BaseModel, value: dict[str, Any]) -> type[BaseModel] | None:
    """The union member ``value`` switches the section to, when it names another kind than ``current``'s."""
    key = field.discriminator if field is not None else None
    if not isinstance(key, str) or key not in value or value[key] == getattr(current, key, None):
        return None
    for member in get_args(field.annotation):
        literal = member.model_fields.get(key) if isinstance(member, type) and issubclass(member, BaseModel) else None
        if literal is not None and value[key] in get_args(literal.annotation):
            return member
    return None  # an unknown kind: validation names the choices
