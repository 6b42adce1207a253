"""Training config files that say only what differs: named model presets and ``extends``.

Like open_clip's ``model_configs/ViT-B-32.json``, a model is built by name: the files in
``vidla/presets/`` hold one model each (the fields of :class:`vidla.config.ModelConfig`),
and a training YAML names one, alone (``model: vidla-b32``) or with the values that differ
(``model: {preset: vidla-b32, num_frames: 32}``). A training YAML may also start from
another (``extends: finetune-base-b32.yaml``, a path relative to the file that says it), so
five fine-tuning recipes are one base and five small files.

Merging follows the schema: a config *section* (a pydantic model, e.g. ``optim`` or
``model.random_clip``) is merged key by key, every other value (a list, a plain dict such as
``data.scale_weights``) is replaced whole, as the shared loader's ``with_defaults`` does
(:mod:`vidla_format.config_files`, which also parses the overrides).
The order is: the ``extends`` chain (the child wins), then the ``key.sub=value`` overrides,
then the preset under the model keys that were given; so ``model.preset=vidla-b16`` on the
command line switches the preset and keeps the file's other model values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vidla_format.config_files import apply_override, read_mapping

#: Where the named model presets live (``<name>.yaml``), shipped with the package.
PRESETS_DIR = Path(__file__).resolve().parent / "presets"
_PRESET_KEY = "preset"
_EXTENDS_KEY = "extends"


def preset_names() -> list[str]:
    """The model presets that can be named, sorted (``vidla-b32``, ...)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The model fields of preset ``name``; a name that is not a preset is an error listing those that are."""
    path = PRESETS_DIR / f"{name}.yaml"
    if "/" in name or not path.is_file():
        raise ValueError(f"unknown model preset {name!r}; presets: {', '.join(preset_names())}")
    return read_mapping(path)


def merge_sections(base: dict[str, Any], over: dict[str, Any], schema: type[BaseModel]) -> dict[str, Any]:
    """``over`` laid on ``base``: sections of ``schema`` merged key by key, everything else replaced whole.

    Only sections merge because a plain dict value (scale weights, CLIP config kwargs) is one
    value: a child that names two scales must not inherit a third from its parent.
    """
    out = dict(base)
    for key, value in over.items():
        section = _section_type(schema, key)
        if section is not None and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_sections(out[key], value, section)
        else:
            out[key] = value
    return out


def train_config_data(
    path: str | Path | None, overrides: list[str] | None, schema: type[BaseModel]
) -> dict[str, Any]:
    """The raw mapping of a training config: extends resolved, overrides applied, preset expanded."""
    data = _read_with_extends(Path(path), schema, ()) if path is not None else {}
    for item in overrides or []:
        _name_preset(data)  # an earlier override may have named a preset: model=vidla-b16
        apply_override(data, item)
    _name_preset(data)
    return _expand_preset(data, schema)


def _read_with_extends(path: Path, schema: type[BaseModel], seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ValueError(f"config files extend each other in a cycle: {chain}")
    data = read_mapping(path)
    _name_preset(data)
    parent = data.pop(_EXTENDS_KEY, None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ValueError(f"{path}: 'extends' names one file, got {parent!r}")
    base = _read_with_extends(path.parent / parent, schema, (*seen, path))
    return merge_sections(base, data, schema)


def _name_preset(data: dict[str, Any]) -> None:
    """``model: vidla-b32`` is short for ``model: {preset: vidla-b32}``, so later keys can merge into it."""
    if isinstance(data.get("model"), str):
        data["model"] = {_PRESET_KEY: data["model"]}


def _expand_preset(data: dict[str, Any], schema: type[BaseModel]) -> dict[str, Any]:
    model = data.get("model")
    if not isinstance(model, dict) or _PRESET_KEY not in model:
        return data
    given = dict(model)
    name = given.pop(_PRESET_KEY)
    if not isinstance(name, str):
        raise ValueError(f"model.preset names a preset, got {name!r}")
    model_schema = _section_type(schema, "model")
    if model_schema is None:
        raise TypeError(f"{schema.__name__} has no model section for a preset")
    return {**data, "model": merge_sections(load_preset(name), given, model_schema)}


def _section_type(schema: type[BaseModel], key: str) -> type[BaseModel] | None:
    field = schema.model_fields.get(key)
    annotation = field.annotation if field is not None else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
