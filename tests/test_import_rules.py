"""The layer rules written in docs/ARCHITECTURE.md (```import-rules``` block), checked on every
import statement of the package (AST scan, imports inside functions included)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "clinfusion"


def rules():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = re.search(r"```import-rules\n(.*?)```", text, re.S).group(1)
    groups, forbidden = {}, []
    for line in filter(None, map(str.strip, block.splitlines())):
        if ":" in line:
            name, members = line.split(":", 1)
            groups[name.strip()] = members.split()
        else:
            src, dst = (part.split() for part in re.split(r" never imports? ", line))
            expand = lambda names: [m for n in names for m in groups.get(n, [n])]  # noqa: E731
            forbidden.append((expand(src), expand(dst)))
    return groups, forbidden


def top_level(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imports(path: Path):
    """(line, imported module) of every import in ``path``; clinfusion modules as 'clinfusion.<top>...'."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            if node.module == "clinfusion":  # from clinfusion import api
                yield from ((node.lineno, f"clinfusion.{a.name}") for a in node.names)


def target(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "clinfusion" and len(parts) > 1 else parts[0]


def test_rules_are_written_and_cover_the_package():
    groups, forbidden = rules()
    assert forbidden and "library" in groups and "application" in groups
    tops = {top_level(p) for p in PACKAGE.rglob("*.py")} - {"__init__", "__main__"}
    unplaced = sorted(tops - set(groups["library"]) - set(groups["application"]))
    assert unplaced == [], f"place these in a layer in docs/ARCHITECTURE.md: {unplaced}"


def test_layers_respect_the_import_rules():
    _, forbidden = rules()
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = top_level(path)
        for line, module in imports(path):
            for sources, banned in forbidden:
                if src in sources and target(module) in banned and target(module) != src:
                    broken.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert broken == [], "\n".join(broken)
