"""The model catalog: every model folder under INFERHOOK_MODELS_DIR, read once at start."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

from schemas.manifest import ModelManifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogEntry:
    """A model's manifest, its folder and a compiled validator for its input."""

    manifest: ModelManifest
    folder: Path
    validator: Draft202012Validator

    @property
    def name(self) -> str:
        return self.manifest.name


def load_model(folder: Path) -> CatalogEntry:
    """Read one model folder; raise ValueError naming the folder when its manifest is bad."""
    raw = yaml.safe_load((folder / "manifest.yaml").read_text())
    manifest = ModelManifest.model_validate(raw)
    if manifest.example_input is None and manifest.example_input_file:
        example = folder / manifest.example_input_file
        if example.exists():
            manifest = manifest.model_copy(update={"example_input": json.loads(example.read_text())})
    Draft202012Validator.check_schema(manifest.input_schema)
    return CatalogEntry(manifest, folder, Draft202012Validator(manifest.input_schema))


def load_catalog(models_dir: Path) -> dict[str, CatalogEntry]:
    """Every model under `models_dir` (folders with a manifest.yaml), by name."""
    catalog: dict[str, CatalogEntry] = {}
    for manifest_path in sorted(models_dir.glob("*/manifest.yaml")):
        entry = load_model(manifest_path.parent)
        if entry.name in catalog:
            raise ValueError(f"model {entry.name} is defined twice ({manifest_path.parent})")
        catalog[entry.name] = entry
    log.info("catalog: %d models from %s", len(catalog), models_dir)
    return catalog
