"""`inferhook models build` runs a model's build script when any file it writes is missing:
the ONNX file, each extra session's file (whisper's decoder), or the example input."""

from __future__ import annotations

import shutil
from pathlib import Path

from cli.stack import build_models, build_outputs
from inferhook.catalog import load_catalog
from inferhook.settings import Settings

BUILD = """
from pathlib import Path
for name in ("encoder.onnx", "decoder.onnx"):
    Path(name).write_text("built")
Path("example_input.json").write_text("{}")
with open("runs.log", "a") as runs:
    runs.write("run\\n")
"""


def test_every_file_of_the_build_counts(tmp_path: Path) -> None:
    real = load_catalog(Settings().models_dir)
    assert build_outputs(real["inferhook/whisper-tiny-en"]) == [
        "encoder.onnx", "decoder.onnx", "example_input.json"]
    assert build_outputs(real["inferhook/ocr"]) == ["example_input.json"]  # a package ships the ONNX

    folder = tmp_path / "whisper"
    shutil.copytree(Settings().models_dir / "whisper", folder,
                    ignore=shutil.ignore_patterns("*.onnx", "example_*.json", "__pycache__"))
    (folder / "build.py").write_text(BUILD)
    settings = Settings(models_dir=tmp_path)
    assert build_models(settings) == ["inferhook/whisper-tiny-en"]
    assert build_models(settings) == []  # everything there: nothing runs
    (folder / "decoder.onnx").unlink()  # only an extra session's file is missing
    assert build_models(settings) == ["inferhook/whisper-tiny-en"]
    assert (folder / "runs.log").read_text().splitlines() == ["run", "run"]
