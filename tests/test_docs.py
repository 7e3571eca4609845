"""The README documents exactly the configuration the code reads."""

from __future__ import annotations

from inferhook.settings import REPO_ROOT
from inferhook.settings_doc import END, START, block


def test_readme_configuration_table_is_current() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert START in readme and END in readme, "README needs the settings markers"
    current = readme[readme.index(START):readme.index(END) + len(END)]
    assert current == block(), "run `python -m inferhook.settings_doc` and paste it into README.md"


def test_every_setting_has_a_description() -> None:
    undocumented = [line for line in block().splitlines()[3:-1] if line.rstrip().endswith("|  |")]
    assert not undocumented, f"settings without a docstring: {undocumented}"
