"""The README's configuration table is the one generated from the settings object."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings, configuration_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_holds_the_generated_table() -> None:
    assert configuration_table() in README.read_text(), (
        "README.md's configuration table is stale: paste `python -m config.settings` into it"
    )


def test_every_setting_is_described() -> None:
    undescribed = [name for name, field in Settings.model_fields.items() if not field.description]
    assert not undescribed
