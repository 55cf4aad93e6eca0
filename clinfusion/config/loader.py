"""Load a YAML config, apply dotted overrides, validate, and explain errors in one line.

``load_config("configs/x.yaml", ["pretrain.epochs=2", "cohort.table=/d/c.csv"])``

* the file must be a YAML mapping (``yaml.safe_load``, never arbitrary objects);
* overrides are ``key.path=value`` with the value parsed as YAML (``2``, ``[a, b]``, ``null``);
* an unknown key names its full path and the closest valid key;
* a wrong type names the key, the value received and the expected type;
* relative ``cohort.table`` / ``cohort.omics.table`` / ``gene_sets`` / weights paths are
  resolved against the config file's folder, so a config travels with its data;
* ``extends: base.yaml`` (the one inheritance key; path relative to the file) starts from
  the base file and overrides it key by key (nested sections merge, lists are replaced);
  a base may extend another, a cycle is an error.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from clinfusion.config.schema import RunConfig
from clinfusion.errors import ConfigError

# Config keys holding file paths, resolved relative to the config file.
PATH_KEYS = (
    ("cohort", "table"),
    ("cohort", "omics", "table"),
    ("cohort", "omics", "gene_sets"),
    ("model", "image_encoder", "weights"),
    ("image", "cache_dir"),
    ("federated", "root_certificates"),
)


def read_yaml_mapping(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} not found: check the path")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"config file {str(p)!r} is not valid YAML{where}: fix the syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(p)!r} must be a YAML mapping of sections (cohort:, model:, ...), "
            f"got a {type(data).__name__}"
        )
    return data


def parse_override(text: str) -> tuple[List[str], Any]:
    """``"a.b.c=value"`` -> (["a", "b", "c"], parsed value)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value (e.g. pretrain.epochs=2)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key: use key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: Dict[str, Any], overrides: Iterable[str]) -> Dict[str, Any]:
    """Return a copy of ``data`` with each dotted override set (validated later)."""
    out = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            nxt = node.get(k)
            if not isinstance(nxt, dict):
                nxt = {}
                node[k] = nxt
            node = nxt
        node[keys[-1]] = value
    return out


def _model_at(path: Sequence[Any]) -> Optional[type[BaseModel]]:
    """The pydantic model class that owns the key at ``path`` (for suggestions)."""
    model: Any = RunConfig
    for part in path:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        model = _unwrap_model(ann)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _format_error(err: Dict[str, Any]) -> str:
    # pydantic puts union branch names into loc (e.g. 'list[str]'); drop them from the path
    loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("literal")))]
    clean = [str(p) for p in loc if not isinstance(p, int)]
    key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")  # e.g. image.size[0]
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _model_at(clean[:-1])
        hint = ""
        if parent is not None:
            close = difflib.get_close_matches(clean[-1], list(parent.model_fields), n=1, cutoff=0.5)
            if close:
                hint = f"; did you mean '{'.'.join(clean[:-1] + [close[0]])}'?"
            else:
                hint = f"; valid keys here: {', '.join(parent.model_fields)}"
        return f"unknown config key '{key}'{hint}"
    value = err.get("input")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    if kind == "missing":
        return f"config key '{key}' is required"
    return f"config key '{key}' got {shown}: {err['msg']}"


def validate_config(data: Dict[str, Any], source: str = "config",
                    overridden: Optional[Dict[str, Any]] = None) -> RunConfig:
    """Validate against the schema (types, ranges) and the registries (component names); an error in a
    key set by a command-line override (``overridden``: their nested mapping) is said to come from it."""
    from clinfusion.config.names import check_registered_names

    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = _format_error(errors[0])
        if overridden and _set_by(overridden, [p for p in errors[0]["loc"] if isinstance(p, str)]):
            source = "command-line override"
        others = [".".join(str(x) for x in e.get("loc", ())) or "(top level)" for e in errors[1:]]
        more = f" (also: {', '.join(others[:5])}{', ...' if len(others) > 5 else ''})" if others else ""
        raise ConfigError(f"{source}: {first}{more}") from None
    try:
        check_registered_names(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg


def _resolve_paths(data: Dict[str, Any], base: Path) -> None:
    for keys in PATH_KEYS:
        node: Any = data
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict):
            val = node.get(keys[-1])
            if isinstance(val, str) and val and not os.path.isabs(val) and not val.startswith("pkg://"):
                node[keys[-1]] = str((base / val).resolve())
    fed = data.get("federated")
    tables = fed.get("site_tables") if isinstance(fed, dict) else None
    if isinstance(tables, dict):  # {site: table}: every value is a path
        for site, val in tables.items():
            if isinstance(val, str) and val and not os.path.isabs(val) and not val.startswith("pkg://"):
                tables[site] = str((base / val).resolve())


EXTENDS = "extends"  # the one inheritance key: a config file path, relative to the file naming it


def read_config_file(path: str | os.PathLike, _seen: Optional[List[Path]] = None) -> Dict[str, Any]:
    """The file's mapping with its ``extends:`` chain merged in and relative paths resolved."""
    p = Path(path).resolve()
    seen = list(_seen or [])
    if p in seen:
        chain = " -> ".join(str(s) for s in [*seen, p])
        raise ConfigError(f"config file {str(path)!r}: '{EXTENDS}' makes a cycle ({chain}): remove one link")
    data = read_yaml_mapping(path)
    _resolve_paths(data, p.parent)
    base = data.pop(EXTENDS, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"config file {str(path)!r}: '{EXTENDS}' must be the path of a base config file, got {base!r}")
    base_path = Path(base).expanduser()
    base_path = base_path if base_path.is_absolute() else p.parent / base_path
    if not base_path.is_file():
        raise ConfigError(f"config file {str(path)!r}: '{EXTENDS}: {base}' not found ({base_path}): "
                          f"give the base file's path relative to this file")
    return _deep_merge(read_config_file(base_path, [*seen, p]), data)


def load_config(path: Optional[str | os.PathLike] = None, overrides: Iterable[str] = ()) -> RunConfig:
    """Load ``path`` (or the defaults when None), apply dotted overrides, validate.

    Relative paths in the file resolve against the file's folder; relative paths given
    as overrides resolve against the current directory. ``extends:`` names a base file.
    """
    data: Dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        data = read_config_file(path)
        source = str(path)
    over_list = list(overrides)
    if over_list:
        over_data = apply_overrides({}, over_list)
        _resolve_paths(over_data, Path.cwd())
        data = _deep_merge(data, over_data)
        return validate_config(data, source, over_data)
    return validate_config(data, source)


def _set_by(nested: Dict[str, Any], loc: List[str]) -> bool:
    """Whether the key path ``loc`` (or a prefix of it holding a non-mapping value) is set in ``nested``."""
    node: Any = nested
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
        if not isinstance(node, dict):
            return True
    return True


def _deep_merge(a: Dict[str, Any], b: Dict[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML (written into every run directory)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def save_config(cfg: RunConfig, path: str | os.PathLike) -> None:
    Path(path).write_text(dump_config(cfg))
