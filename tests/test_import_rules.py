"""Which package may import which (docs/architecture.md, "Import rules"), checked on the source.

The two halves meet only in ``vidla_format``: the model must install and run without the
curation stack, and the curation code without torch. An import that crosses a line works
in this checkout (everything is installed) and breaks only for a user with one half, so it
is caught here, statically: every ``import`` and ``from ... import`` statement of every .py
file, at module level or inside a function, relative imports resolved to absolute names.

A rule is one line of ``RULES``: the importing package (a dotted prefix) and the prefixes
it must not import. ``curate.textgen`` (the text-generation backends) imports no curation
stage: only its own modules, ``curate.config`` and ``curate.errors``, so it could be its own
package and a stage can never reach back into it through a cycle.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SKIP_DIRS = {"__pycache__", "build", "dist", "node_modules"}


def curation_modules(allowed: tuple[str, ...]) -> tuple[str, ...]:
    """Every module and package of ``curate/`` but ``allowed``: a stage added later is covered too."""
    entries = sorted((REPO / "curate").iterdir())
    names = [p.stem for p in entries if p.suffix == ".py" or (p / "__init__.py").exists()]
    return tuple(f"curate.{n}" for n in names if n not in (*allowed, "__init__", "__main__"))


@dataclass(frozen=True)
class Rule:
    """Modules under ``importer`` must not import any module under one of ``forbidden``."""

    importer: str
    forbidden: tuple[str, ...]


RULES: tuple[Rule, ...] = (
    Rule("vidla", ("curate", "pipelines", "vidla_train", "vidla_eval")),
    Rule("vidla_train", ("curate", "pipelines")),
    Rule("vidla_eval", ("curate", "pipelines", "vidla_train")),
    Rule("vidla_format", ("curate", "pipelines", "vidla", "vidla_train", "vidla_eval")),
    Rule("curate", ("pipelines", "vidla", "vidla_train", "vidla_eval")),
    Rule("curate.textgen", curation_modules(allowed=("textgen", "config", "errors"))),
)


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str
    imported: str
    rule: Rule

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} imports {self.imported} ({self.rule.importer} may not)"


def under(name: str, prefix: str) -> bool:
    """``name`` is ``prefix`` or inside it: ``vidla.data`` is under ``vidla``, ``vidla_format`` is not."""
    return name == prefix or name.startswith(prefix + ".")


def module_name(root: Path, path: Path) -> str:
    """The dotted module name of ``path`` relative to ``root`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from`` statement names; ``from ..x import y`` in ``a.b.c`` is ``a.x``."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, node.module] if node.module else base)


def imports_of(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement anywhere in ``tree``.

    ``from a import b`` yields both ``a`` and ``a.b``, since ``b`` may be a submodule.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = resolve_from(node, module, is_package)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def python_files(root: Path) -> list[Path]:
    """Every .py file under ``root``; hidden directories (``.venv``) and build outputs are not walked."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not (d.startswith(".") or d in SKIP_DIRS or d.endswith(".egg-info"))]
        found += [Path(folder, f) for f in files if f.endswith(".py")]
    return sorted(found)


def check_file(root: Path, path: Path, rules: tuple[Rule, ...]) -> list[Violation]:
    module = module_name(root, path)
    applying = [r for r in rules if under(module, r.importer)]
    if not applying:
        return []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = str(path.relative_to(root))
    violations = []
    for line, imported in imports_of(tree, module, path.name == "__init__.py"):
        for rule in applying:
            if any(under(imported, f) for f in rule.forbidden) and not under(imported, rule.importer):
                violations.append(Violation(rel, line, module, imported, rule))
    return violations


def find_violations(root: Path, rules: tuple[Rule, ...] = RULES) -> list[Violation]:
    """Every import under ``root`` that breaks one of ``rules``; ``from a import b`` counts once per line."""
    seen, out = set(), []
    for path in python_files(root):
        for v in check_file(root, path, rules):
            if (v.path, v.line, v.rule, v.imported.split(".")[0]) not in seen:
                seen.add((v.path, v.line, v.rule, v.imported.split(".")[0]))
                out.append(v)
    return out


# --- the repository ------------------------------------------------------------------------------


def test_repository_follows_the_import_rules():
    violations = find_violations(REPO)
    assert not violations, "imports across package lines:\n" + "\n".join(map(str, violations))


@pytest.fixture(scope="module")
def repo_modules() -> list[str]:
    return [module_name(REPO, p) for p in python_files(REPO)]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.importer)
def test_every_rule_has_code_to_check(rule, repo_modules):
    """A rule over a package with no files (renamed, say) would pass forever."""
    assert sum(under(m, rule.importer) for m in repo_modules) >= 2, rule.importer


# --- the checker itself, on small trees that break each rule -----------------------------------


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def package_files(package: str) -> dict[str, str]:
    """``__init__.py`` files for ``package`` and its parents, so module names resolve as in the repo."""
    parts = package.split(".")
    return {"/".join([*parts[: i + 1], "__init__.py"]): "" for i in range(len(parts))}


CASES = [(rule, forbidden) for rule in RULES for forbidden in rule.forbidden]


@pytest.mark.parametrize("rule,forbidden", CASES, ids=[f"{r.importer}-{f}" for r, f in CASES])
def test_each_rule_reports_a_violation(tmp_path, rule, forbidden):
    """Both statement forms, one at module level and one inside a function, are reported."""
    bad = rule.importer.replace(".", "/") + "/bad.py"
    write_tree(tmp_path, {
        **package_files(rule.importer),
        bad: f"import {forbidden}.thing\n\n\ndef later():\n    from {forbidden} import thing\n    return thing\n",
    })  # fmt: skip
    found = [(v.path, v.line, v.imported) for v in find_violations(tmp_path) if v.rule == rule]
    assert (bad, 1, f"{forbidden}.thing") in found
    assert (bad, 5, forbidden) in found


def test_relative_imports_are_resolved(tmp_path):
    """``from ..decode import x`` in ``curate/textgen/`` is ``curate.decode``: a finer rule is one line."""
    rule = Rule("curate.textgen", ("curate.decode",))
    write_tree(tmp_path, {
        **package_files("curate.textgen"),
        "curate/decode.py": "",
        "curate/textgen/a.py": "from ..decode import analyze\n",
        "curate/textgen/b.py": "def f():\n    from .. import decode\n",
        "curate/textgen/__init__.py": "from ..decode import analyze\n",
        "curate/textgen/ok.py": "from . import a\nfrom ..config import X\n",
    })  # fmt: skip
    found = sorted((v.path, v.line) for v in find_violations(tmp_path, (rule,)))
    assert found == [("curate/textgen/__init__.py", 1), ("curate/textgen/a.py", 1), ("curate/textgen/b.py", 2)]


def test_allowed_imports_are_not_reported(tmp_path):
    """``vidla_format`` is not under ``vidla``; a package may import itself; tests may import anything."""
    write_tree(tmp_path, {
        **package_files("vidla"), **package_files("curate"), **package_files("vidla_format"),
        "vidla/data.py": "import vidla_format.storage\nfrom vidla.config import X\n",
        "curate/sink.py": "from vidla_format import commits\n",
        "vidla_format/commits.py": "from vidla_format.layout import SCALES\nfrom . import storage\n",
        "tests/test_x.py": "import curate, pipelines, vidla, vidla_train\n",
    })  # fmt: skip
    assert find_violations(tmp_path) == []
