"""`zoo plugin new NAME`: write a complete, installable third-party model plugin from the templates.

The package appears all at once: the files are written into a hidden sibling folder that is
renamed into place, so an interrupted run leaves nothing half-written behind.
"""

from __future__ import annotations

import datetime
import importlib.util
import os
import re
import shutil
import tempfile
from pathlib import Path

from zoo_core.api import API_VERSION, compatible_range
from zoo_core.errors import UsageError

TEMPLATE_DIR = Path(__file__).parent / "scaffold_template"
TEMPLATE_SUFFIX = ".tmpl"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
MAX_NAME_LENGTH = 40
# Template path parts that become other names in the package (dot-files are awkward to ship as package data).
RENAMED_PARTS = {"dot-github": ".github", "dot-gitignore": ".gitignore"}
PLACEHOLDER = re.compile(r"\{\{([a-z_]+)\}\}")


def check_name(name: str) -> None:
    """Refuse names that would not make a valid model name, module ``zoo_NAME`` and distribution ``zoo-NAME``."""
    if not NAME_PATTERN.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        suggestion = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        suggestion = suggestion if suggestion and suggestion[0].isalpha() else f"my_{suggestion}".rstrip("_")
        raise UsageError(f"plugin name {name!r} must be lowercase letters and digits joined by single underscores, "
                         f"starting with a letter, at most {MAX_NAME_LENGTH} characters; try "
                         f"`zoo plugin new {suggestion[:MAX_NAME_LENGTH]}`")
    module = f"zoo_{name}"
    if importlib.util.find_spec(module) is not None:
        raise UsageError(f"a package named {module} is already importable here (it would shadow or be shadowed by "
                         "the new plugin); choose another name")


def names_for(name: str) -> dict[str, str]:
    """The values of the template placeholders for model ``name``."""
    return {
        "name": name,
        "module": f"zoo_{name}",
        "distribution": f"zoo-{name.replace('_', '-')}",
        "class_name": "".join(part.capitalize() for part in name.split("_")),
        "title": name.replace("_", " ").capitalize(),
        # The generated package pins the API it is written against; zoo-export releases alongside zoo-core.
        "zoo_requirement": compatible_range(API_VERSION),
        "export_requirement": compatible_range(API_VERSION).replace("zoo-core", "zoo-export"),
        "year": str(datetime.date.today().year),
    }


def render(text: str, values: dict[str, str]) -> str:
    """Replace ``{{key}}`` placeholders; an unknown key is a bug in the templates, so it raises."""
    def value(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return PLACEHOLDER.sub(value, text)


def target_path(template: Path, values: dict[str, str]) -> Path:
    """Where one template file goes inside the package (``package/`` becomes the module folder)."""
    parts = list(template.relative_to(TEMPLATE_DIR).parts)
    parts[-1] = parts[-1].removesuffix(TEMPLATE_SUFFIX)
    if parts[0] == "package":
        parts[0] = values["module"]
    return Path(*(RENAMED_PARTS.get(part, part) for part in parts))


def template_files() -> list[Path]:
    return sorted(p for p in TEMPLATE_DIR.rglob(f"*{TEMPLATE_SUFFIX}") if p.is_file())


def _check_directory(directory: Path) -> None:
    if directory.is_file() or (directory.is_dir() and any(directory.iterdir())):
        raise UsageError(f"{directory} already exists and is not empty; choose another --dir or remove it first")


def write_plugin(name: str, directory: Path | None = None) -> Path:
    """Write the plugin package for model ``name`` into ``directory`` (default ``./zoo-NAME``); returns it."""
    check_name(name)
    values = names_for(name)
    target = Path(directory) if directory is not None else Path.cwd() / values["distribution"]
    _check_directory(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for template in template_files():
            path = staging / target_path(template, values)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes a private folder; a package is an ordinary one
        _check_directory(target)  # again, just before the rename, in case something appeared meanwhile
        if target.is_dir():
            target.rmdir()
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target
