"""Reading one variable from the environment: trimmed, typed, range-checked, or a ConfigError naming it.

Every reader takes the mapping to read (``os.environ`` in production, a dict in tests) and
one or more names; the first non-blank one wins, so the old Node.js pipeline's names work as
fallbacks (``read_str(env, "VIDEO_PIPELINE_BUCKET", "S3_INPUT_BUCKET")``).
"""

from __future__ import annotations

from collections.abc import Mapping


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def read_str(env: Mapping[str, str], *names: str, default: str | None = None) -> str | None:
    for name in names:
        value = env.get(name)
        if value is not None and value.strip() != "":
            return value.strip()
    return default


def read_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = read_str(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise ConfigError(f"{name} must be {bounds}, got {value}")
    return value


def read_float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = read_str(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def read_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = read_str(env, name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def read_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...], *aliases: str) -> str:
    value = (read_str(env, name, *aliases, default=default) or default).lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def read_heights(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """``360,720,1080`` -> (360, 720, 1080): sorted, without repeats, each 144..4320."""
    raw = read_str(env, name)
    if raw is None:
        return default
    heights = set()
    for part in raw.replace(" ", "").split(","):
        height = part.lower().removesuffix("p")
        if not height.isdigit() or not 144 <= int(height) <= 4320:
            raise ConfigError(f"{name} must list heights between 144 and 4320 like 360,720,1080; got {raw!r}")
        heights.add(int(height))
    return tuple(sorted(heights))


def read_prefix(env: Mapping[str, str], name: str, default: str) -> str:
    value = read_str(env, name, default=default) or default
    return value if value.endswith("/") else value + "/"
