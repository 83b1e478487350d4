"""Documentation that users rely on stays true: the README's commands and configuration table."""

from __future__ import annotations

import re
from pathlib import Path

from receiver.settings import Settings, settings_reference_markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_configuration_table_matches_the_settings_class():
    """Every setting appears in the README table with its current default; run `python -c 'from receiver.settings import update_readme_table; from pathlib import Path; update_readme_table(Path(\"README.md\"))'` to refresh."""
    assert settings_reference_markdown() in README
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.M))
    assert documented == {name.upper() for name in Settings.model_fields}


def test_readme_starts_with_the_demo_and_test_commands_and_ci_runs_the_test_command():
    """The first two shell blocks are install+demo and install+tests; .ci/run calls the latter verbatim."""
    blocks = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)
    assert "pip install -e ." in blocks[0] and "receiver demo" in blocks[0]
    assert "pip install -e '.[test]'" in blocks[1] and "pytest" in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert blocks[1] in ci
