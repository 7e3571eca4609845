"""The configuration reference in README.md, generated from the settings classes.

`python -m inferhook.settings_doc` prints the table; tests/test_docs.py fails when the
README's copy differs, so the documented variables are always the ones the code reads.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from inferhook.settings import REPO_ROOT, Settings

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"


def _rows(cls: type[BaseSettings]) -> list[tuple[str, str, str]]:
    prefix = str(cls.model_config.get("env_prefix", ""))
    rows: list[tuple[str, str, str]] = []
    nested: list[type[BaseSettings]] = []
    for name, field in cls.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            nested.append(annotation)
            continue
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        if isinstance(default, list):
            default = ",".join(str(item) for item in default)
        shown = str(default).replace(str(REPO_ROOT), ".") if default not in (None, "") else ""
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append((f"{prefix}{name}".upper(), shown, description))
    for section in nested:
        rows.extend(_rows(section))
    return rows


def table() -> str:
    """The Markdown table of every INFERHOOK_* variable, its default and meaning."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | `{default}` | {meaning} |" if default else f"| `{name}` |  | {meaning} |"
              for name, default, meaning in _rows(Settings)]
    return "\n".join(lines)


def block() -> str:
    """The table between the README's markers."""
    return f"{START}\n{table()}\n{END}"


if __name__ == "__main__":
    print(block())
