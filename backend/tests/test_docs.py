"""What ships stays self-contained and the README documents every setting.

* Nothing users get (README, docs/, deploy/, gateway/, backend/src) points at files outside the
  repository: the design notes and interop checklist the project was built from are not part
  of it, so a rule must be stated where it is used, or the OpAMP specification cited.
* Every ``FLOWGATE_*`` setting (a field of :class:`Settings`) has its own row in the README's
  "Configuration" table, and every row there names a real setting.
"""

from __future__ import annotations

import re
from pathlib import Path

from flowgate.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SHIPPED = [README, REPO / "docs", REPO / "deploy", REPO / "gateway", REPO / "backend" / "src"]
OUTSIDE_REFERENCES = ("shared/", "DESIGN.md", "opamp-interop.md")


def shipped_text_files() -> list[Path]:
    files: list[Path] = []
    for root in SHIPPED:
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in candidates:
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            data = path.read_bytes()
            if b"\0" in data:
                continue  # binary
            files.append(path)
    return files


def settings_table() -> list[str]:
    """The variables named in the first column of the README's "Configuration" table."""
    text = README.read_text()
    section = re.search(r"^## Configuration\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README.md lost its Configuration section"
    rows = [line for line in section.group(1).splitlines() if line.startswith("|")]
    assert len(rows) > 2, "the Configuration section has no settings table"
    names: list[str] = []
    for row in rows[2:]:  # past the header and the |---| line
        first = row.split("|")[1]
        names += re.findall(r"`(FLOWGATE_[A-Z0-9_]+)`", first)
    return names


def setting_variables() -> set[str]:
    prefix = str(Settings.model_config.get("env_prefix", ""))
    assert prefix == "FLOWGATE_"
    return {prefix + name.upper() for name in Settings.model_fields}


def test_shipped_files_do_not_point_outside_the_repository() -> None:
    files = shipped_text_files()
    assert len(files) > 50, "the walk found too few files"
    offenders = []
    for path in files:
        text = path.read_text(errors="replace")
        for needle in OUTSIDE_REFERENCES:
            if needle in text:
                line = text[: text.index(needle)].count("\n") + 1
                offenders.append(f"{path.relative_to(REPO)}:{line}: {needle}")
    assert not offenders, "references to files users do not have:\n" + "\n".join(offenders)


def test_readme_settings_table_lists_every_setting() -> None:
    documented = settings_table()
    expected = setting_variables()
    missing = sorted(expected - set(documented))
    assert not missing, f"settings without a row in the README's Configuration table: {missing}"
    unknown = sorted(set(documented) - expected)
    assert not unknown, f"README rows for settings that do not exist: {unknown}"
    duplicated = sorted({name for name in documented if documented.count(name) > 1})
    assert not duplicated, f"settings with more than one README row: {duplicated}"
