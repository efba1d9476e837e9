"""Reading, merging and writing params.yaml: profiles over the schema's defaults, the ``-S`` grammar,
the error messages that name each bad key, and the checks that need a family's own arithmetic.
The schema itself (``components/config.py``) stays a leaf; this module is what commands call.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from components.config import MelforgeConfig
from components.config_base import ConfigError
from components.profiles import PROFILES
from components.storage import atomic_write_bytes

def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def profile_params(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}")
    return _deep_merge(MelforgeConfig().to_params(), PROFILES[name])


def _allowed_keys(path: tuple[str, ...]) -> list[str]:
    model: type[BaseModel] = MelforgeConfig
    for part in path:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return []
        model = field.annotation
    return [f.alias or n for n, f in model.model_fields.items()]


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(str(p) for p in e["loc"])
        key = ".".join(loc) or "<root>"
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            lines.append(f"{origin}: unknown key '{key}'; allowed keys here: {', '.join(allowed)}")
        else:
            got = e.get("input")
            shown = "" if isinstance(got, (dict, list)) and e["type"] == "value_error" else f" (got {got!r})"
            where = f"'{key}': " if loc else ""
            lines.append(f"{origin}: {where}{e['msg'].removeprefix('Value error, ')}{shown}")
    return "\n".join(lines)


def validate_params(params: dict[str, Any], origin: str = "params.yaml") -> MelforgeConfig:
    """Validate a params mapping; raise ConfigError naming every bad key."""
    if not isinstance(params, dict):
        raise ConfigError(f"{origin}: expected a mapping of sections, got {type(params).__name__}")
    try:
        config = MelforgeConfig.model_validate(params)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None
    for problem in [*table_problems(config), *family_problems(config)]:
        raise ConfigError(f"{origin}: {problem}")
    return config


def table_problems(cfg: MelforgeConfig) -> list[str]:
    """Keys that name a stage the stage table does not have (the schema knows no stage, so they are
    checked here, where the table may be read)."""
    from components.stages import STAGE_NAMES

    allowed = {"default", *STAGE_NAMES, "registry"}
    unknown = sorted(set(cfg.orchestration.stage_timeout_minutes) - allowed)
    return [f"'orchestration.stage_timeout_minutes': unknown stage(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"] if unknown else []


def family_problems(cfg: MelforgeConfig) -> list[str]:
    """What the enabled generator families cannot produce with these clip and mel settings (their own
    torch-free shape arithmetic, so it is checked before any work starts)."""
    from components.gan.specs import config_problems

    return config_problems(cfg)


OVERRIDE_GRAMMAR = ("melforge accepts key=value: a dotted key that params.yaml has (mel.n_mels) and a YAML "
                    "value (64, [48, 60], {default: 5}, null); not Hydra's +key=, ++key= or ~key, since every key "
                    "already exists and none can be removed")


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value``, the value as YAML: the plain form of ``dvc exp run -S`` (see
    ``OVERRIDE_GRAMMAR``). Merging stays here, not in OmegaConf: a few lines that name the bad key
    in melforge's words, with pydantic validating the result."""
    if text.startswith(("+", "~")):
        raise ConfigError(f"-S {text!r}: {OVERRIDE_GRAMMAR}")
    if "=" not in text:
        raise ConfigError(f"-S {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise ConfigError(f"-S {text!r}: expected a dotted key such as mel.n_mels")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"-S {text!r}: value is not valid YAML ({exc})") from None
    return parts, value


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``params`` with every override applied (unknown keys caught on validation)."""
    result = copy.deepcopy(params)
    for text in overrides:
        parts, value = parse_override(text)
        node = result
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"-S {text!r}: '{'.'.join(parts[:i + 1])}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one section (lines {seen[key]} and {line}); "
                    "keep one, since the second would silently replace the first", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_params_file(path: Path, *, allow_empty: bool = False) -> dict[str, Any]:
    """params.yaml as a dict. An empty file is refused: it would silently mean "every schema
    default", a configuration nobody chose."""
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run from the project root or create it with `melforge run --profile demo`")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected sections (data:, audio:, mel:, ...), got a {type(data).__name__}")
    if not data and not allow_empty:
        raise ConfigError(f"{path}: is empty; start from a profile with `melforge run --profile demo` "
                          f"(or {', '.join(p for p in PROFILES if p != 'demo')}), which writes it")
    return data


def load_config(path: Path, overrides: list[str] | None = None) -> MelforgeConfig:
    """Load params.yaml, apply ``-S`` overrides, validate."""
    params = apply_overrides(read_params_file(path), overrides or [])
    origin = f"{path.name}" + (" with -S overrides" if overrides else "")
    return validate_params(params, origin)


class _ParamsDumper(yaml.SafeDumper):
    """Sections as blocks, lists of values inline: params.yaml stays short and diff-friendly."""


_ParamsDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True))


def write_params_file(path: Path, config: MelforgeConfig) -> None:
    """Write params.yaml atomically (temp file + rename)."""
    text = "# melforge parameters: the record DVC tracks. Edit, or use `melforge run -S key=value`.\n"
    text += yaml.dump(config.to_params(), Dumper=_ParamsDumper, sort_keys=False, default_flow_style=False, width=100)
    atomic_write_bytes(path, text.encode())


def resolve_params(params_path: Path, *, profile: str | None = None, overrides: list[str] | None = None,
                   write: bool = True) -> MelforgeConfig:
    """The config a run will use: profile (or the current params.yaml) + ``-S`` overrides.

    Validated before anything else happens; written back to params.yaml (atomically, only when
    it changed) so DVC records exactly what ran, like ``dvc exp run -S``.
    """
    if profile is not None:
        base = profile_params(profile)
    elif params_path.is_file():
        base = read_params_file(params_path)
    else:
        base = profile_params("demo")
    merged = apply_overrides(base, overrides or [])
    origin = params_path.name if profile is None else f"profile {profile!r}"
    config = validate_params(merged, origin + (" with -S overrides" if overrides else ""))
    if write:
        current = read_params_file(params_path, allow_empty=True) if params_path.is_file() else None
        if current != config.to_params():
            write_params_file(params_path, config)
    return config
