"""MkDocs hooks: pages made from the code and from the repository's other Markdown at build time.

- reference/model-cards.md: the card of every installed model (`zoo info MODEL --json`), so the page is the zoo
  the site was built with;
- reference/plugins-guide.md: PLUGINS.md, the plugin author's guide (kept at the repository root, where
  tests/test_plugins_docs.py holds it to the code);
- benchmarks/suite.md: BENCHMARKS.md with its plots (benchmarks/results/*.png) beside it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return " ".join(str(text).split()).replace("|", "\\|")


def _tensor(t: dict[str, Any]) -> str:
    shape = ",".join(str(d) for d in t.get("declared_shape") or t.get("shape") or [])
    value_range = t.get("value_range")
    within = f" in [{value_range[0]:g},{value_range[1]:g}]" if value_range else ""
    return f"`{t['name']}[{shape}]` {t.get('dtype', '')}{within}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows), ""]


def model_cards_page() -> str:
    from zoo_core.cards import model_card
    from zoo_core.registry import list_models

    lines = ["# Model cards", "",
             "Generated at build time from the installed plugins (the same data as `zoo info MODEL --json`). Sizes "
             "are at each model's card preset; named axes (`image_size`, `latent_dim`) take the preset's values.", ""]
    for model in list_models():
        card = model_card(model)
        lines += [f"## {card['name']}", "", card["summary"], "",
                  f"From `{card['distribution']}` {card['version']}; source: {card['source']}; "
                  f"license {card.get('license') or 'not stated'}; {card['params']:,} parameters at preset "
                  f"`{card['card_preset']}`; default preset `{card['default_preset']}`"
                  + (f", GPU preset `{card['gpu_preset']}`." if card.get("gpu_preset") else "."), ""]
        sections = [
            ("**Networks**", ["network", "parameters", "summary"],
             [[f"`{n['name']}`", f"{n['params']:,}", n["summary"]] for n in card["networks"]]),
            ("**Graphs** (what `zoo export` writes)", ["graph", "inputs", "outputs", "GFLOPs/item", "summary"],
             [[f"`{g['name']}`", "; ".join(map(_tensor, g["inputs"])), "; ".join(map(_tensor, g["outputs"])),
               f"{g['gflops_per_item']:g}", g["summary"]] for g in card["graphs"]]),
            ("**Presets** (`zoo train --preset NAME`)", ["preset", "summary", "values"],
             [[f"`{p['name']}`", p["summary"], ", ".join(f"{k}={v}" for k, v in p["values"].items())]
              for p in card["presets"]]),
            ("**Tasks** (`zoo generate MODEL TASK`)", ["task", "graphs", "summary"],
             [[f"`{t['name']}`", ", ".join(t["graphs"]), t["summary"]] for t in card["tasks"]]),
            ("**Data layouts** (`zoo train --data DIR`)", ["layout", "summary"],
             [[f"`{d['name']}`", d["summary"]] for d in card["data_layouts"]]),
        ]
        for title, header, rows in sections:
            lines += [title, "", *_table(header, rows)]
        shown = {"name", "summary", "distribution", "version", "graphs", "presets", "tasks", "params",
                 "params_preset", "tags", "source", "license", "card_preset", "default_preset", "gpu_preset",
                 "networks", "data_layouts"}
        for key, value in card.items():  # fields a newer core adds (weights, figures) appear without a code change
            if key in shown or value in (None, [], {}):
                continue
            lines += [f"**{key.replace('_', ' ').capitalize()}**", "", "```json",
                      json.dumps(value, indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def _exports(module_file: Path) -> list[tuple[str | None, str, str]]:
    """(group, name, "module.attribute") for each entry of a lazily exporting module's ``_EXPORTS`` table."""
    source = module_file.read_text()
    body = source[source.index("_EXPORTS"):]
    entries: list[tuple[str | None, str, str]] = []
    group: str | None = None
    for line in body.splitlines()[1:]:
        heading = re.match(r"\s*# -- (.+?) -+\s*$", line)
        entry = re.match(r'\s*"(\w+)": "([\w.]+):(\w+)",?', line)
        if heading:
            group = heading.group(1)
        elif entry:
            entries.append((group, entry.group(1), f"{entry.group(2)}.{entry.group(3)}"))
        elif line.startswith("}"):
            break
    return entries


def _api_page(title: str, intro: str, module: str, module_file: Path, elsewhere: dict[str, str] | None = None
              ) -> str:
    """mkdocstrings entries for a module's exports; a target in ``elsewhere`` (target -> page) is linked there,
    since one object gets one documented place."""
    lines = [f"# {title}", "", intro, "", f"::: {module}", "    options:", "      members: false",
             "      show_root_heading: false", ""]
    current: str | None = None
    for group, name, target in _exports(module_file):
        if group and group != current:
            current = group
            lines += [f"## {group[0].upper()}{group[1:]}", ""]
        if elsewhere and target in elsewhere:
            lines += [f"`{name}`: see [`{name}` in the plugin API]({elsewhere[target]}#{target}).", ""]
            continue
        lines += [f"::: {target}", "    options:", f"      heading_level: {3 if group else 2}",
                  f"      toc_label: {name}", ""]
    return "\n".join(lines)


def plugin_api_page() -> str:
    return _api_page(
        "Plugin API: `zoo_core.api`",
        "Everything a model plugin may import, generated at build time from `zoo_core.api` (its `_EXPORTS` table "
        "and each object's docstring). The [plugin guide](plugins-guide.md) explains how the names fit together, "
        "with examples.", "zoo_core.api", ROOT / "zoo_core" / "api.py")


def python_api_page() -> str:
    return _api_page(
        "Python API: `import zoo`",
        "The user's Python API, generated at build time from the `zoo` package (its `_EXPORTS` table and each "
        "object's docstring). [The same from Python](../tutorials/python.md) walks through it.", "zoo",
        ROOT / "zoo" / "__init__.py",
        {target: "plugin-api.md" for _, _, target in _exports(ROOT / "zoo_core" / "api.py")})


def extension_api_page() -> str:
    return _api_page(
        "Extension API: `zoo_core.extend`",
        "What a distribution that extends zoo beyond models (a runtime, an export format, `zoo serve`, `zoo bench`) "
        "may import besides the [plugin API](plugin-api.md), generated at build time from `zoo_core.extend`.",
        "zoo_core.extend", ROOT / "zoo_core" / "extend.py",
        {target: "plugin-api.md" for _, _, target in _exports(ROOT / "zoo_core" / "api.py")})


def plugins_guide_page() -> str:
    text = (ROOT / "PLUGINS.md").read_text()
    note = ("!!! note\n    This page is `PLUGINS.md` from the repository root, included as it is; "
            "[the plugin tutorial](../tutorials/plugin.md) is the short way in.\n\n")
    title, _, rest = text.partition("\n")
    return f"{title}\n\n{note}{rest}"


def benchmarks_page() -> str:
    text = (ROOT / "BENCHMARKS.md").read_text()
    # BENCHMARKS.md links its plots from the repository root; on the site they sit beside the page
    return re.sub(r"\]\((?:\./)?benchmarks/results/", "](results/", text)


# Docstrings cross-reference in Sphinx's style (:class:`~zoo_core.results.TaskResult`); mkdocstrings renders the role
# as text before the code span, so the role goes and the name stays as code (the last component for a ~name).
SPHINX_ROLE = re.compile(r":(?:py:)?(?:meth|class|func|attr|mod|data|exc|obj):<code>(~?)([\w.]+)(\(\))?</code>")


def on_page_content(html: str, **_: Any) -> str:
    return SPHINX_ROLE.sub(lambda m: f"<code>{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}{m[3] or ''}</code>", html)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    pages = {"reference/model-cards.md": model_cards_page(), "reference/plugin-api.md": plugin_api_page(),
             "reference/python-api.md": python_api_page(), "reference/extension-api.md": extension_api_page(),
             "reference/plugins-guide.md": plugins_guide_page(),
             "benchmarks/suite.md": benchmarks_page()}
    for uri, content in pages.items():
        files.append(File.generated(config, uri, content=content))
    for plot in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"benchmarks/results/{plot.name}", abs_src_path=str(plot)))
    return files
