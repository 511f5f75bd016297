"""Provides mlxchat's themes: one built in, plus theme files (TOML) users can copy and edit.

The app registers Textual's own themes, `mlxchat` (the default), the theme files shipped in the package
(`mlxchat/themes/`, linked from the checkout's top-level `themes/`) and the files in `<config_dir>/themes/`.
A theme file is the fields of Textual's `Theme` as TOML:

    name = "dusk"
    dark = true
    primary = "#7aa2f7"
    background = "#1a1b26"

    [variables]              # optional: any Textual theme variable
    "footer-key-foreground" = "#7aa2f7"

Every theme is checked with `Theme.to_color_system()` when loaded, so a bad colour is one readable problem
line, not a crash when the user picks it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from textual.theme import Theme

from mlxchat import paths

DEFAULT_THEME = "mlxchat"

MLXCHAT_THEME = Theme(
    name="mlxchat",
    primary="#7aa2f7",
    secondary="#bb9af7",
    accent="#e0af68",
    warning="#e0af68",
    error="#f7768e",
    success="#9ece6a",
    foreground="#c0caf5",
    background="#16161e",
    surface="#1f2335",
    panel="#24283b",
    dark=True,
    variables={"footer-key-foreground": "#7aa2f7", "block-cursor-text-style": "none"},
)

_THEME_FIELDS = {f.name for f in fields(Theme)} - {"name"}


@dataclass(frozen=True)
class ThemeFiles:
    """Themes read from files, and one line per file that could not be used."""

    themes: tuple[Theme, ...]
    problems: tuple[str, ...]


def source_theme_folder() -> Path:
    """The theme files shipped with mlxchat: `mlxchat/themes/`, package data, so a wheel install has them too
    (the checkout's top-level `themes/` is a link to it, for users to find and copy)."""
    return Path(__file__).resolve().parents[1] / "themes"


def user_theme_folder() -> Path:
    return paths.config_dir() / "themes"


def load_theme_file(path: Path) -> Theme:
    """A `Theme` from a TOML file. Raises `ValueError` with a readable reason when the file cannot be used."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read as TOML ({exc})") from None
    name = data.pop("name", path.stem)
    unknown = set(data) - _THEME_FIELDS
    if unknown:
        raise ValueError(f"{path}: unknown theme fields {', '.join(sorted(unknown))}")
    if "primary" not in data:
        raise ValueError(f"{path}: a theme needs at least a primary colour")
    try:
        theme = Theme(name=str(name), **data)
        theme.to_color_system()
    except Exception as exc:  # Textual raises several kinds for bad colours
        raise ValueError(f"{path}: {exc}") from None
    return theme


def load_theme_folders(*folders: Path) -> ThemeFiles:
    """Every `*.toml` theme in `folders` (later folders win on equal names)."""
    themes: dict[str, Theme] = {}
    problems = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.toml")):
            try:
                theme = load_theme_file(path)
            except ValueError as exc:
                problems.append(str(exc))
                continue
            themes[theme.name] = theme
    return ThemeFiles(tuple(themes.values()), tuple(problems))


def all_themes() -> ThemeFiles:
    """The built-in theme plus the source and user theme folders."""
    files = load_theme_folders(source_theme_folder(), user_theme_folder())
    return ThemeFiles((MLXCHAT_THEME, *files.themes), files.problems)
