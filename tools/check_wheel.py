"""Check a built wheel (CI, after ``python -m build``): its version and licence metadata match pyproject.toml,
and it carries the LICENSE file and the package's data files (rules, taxonomy, templates).

Usage: ``python tools/check_wheel.py DIST_DIR``; exits 1 with one line per problem.
"""

from __future__ import annotations

import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEEDED = ("ecins_link/__init__.py", "ecins_link/api/project.py", "ecins_link/scoring/rules.toml",
          "ecins_link/scoring/taxonomy.toml")


def problems(dist: Path) -> list[str]:
    """What is wrong with the wheel and sdist in ``dist`` (empty when nothing is)."""
    version = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    wheels = sorted(dist.glob("ecins_link-*.whl"))
    out = [] if wheels else [f"no wheel in {dist}"]
    if not sorted(dist.glob("ecins_link-*.tar.gz")):
        out.append(f"no sdist in {dist}")
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            meta_name = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
            if meta_name is None:
                out.append(f"{wheel.name}: no METADATA")
                continue
            meta = Parser().parsestr(zf.read(meta_name).decode("utf-8"))
        if meta["Version"] != version:
            out.append(f"{wheel.name}: Version {meta['Version']!r}, pyproject says {version!r}")
        if meta["License-Expression"] != "MIT":
            out.append(f"{wheel.name}: License-Expression {meta['License-Expression']!r}, expected 'MIT'")
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            out.append(f"{wheel.name}: LICENSE file missing")
        out += [f"{wheel.name}: {n} missing" for n in NEEDED if n not in names]
        out += [f"{wheel.name}: ships {n}" for n in names if n.startswith(("tests/", "notebooks/", "data/"))]
    return out


if __name__ == "__main__":
    found = problems(Path(sys.argv[1]))
    for line in found:
        print(f"check_wheel: {line}", file=sys.stderr)
    if not found:
        print("check_wheel: wheel and sdist ok")
    sys.exit(1 if found else 0)
