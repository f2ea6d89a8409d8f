"""A graph's gflops_per_item in an export is the exported config's, not the card preset's (a quick 64² two-block
CycleGAN is 0.15 GFLOPs per image, not the book's 99.1); manifests written before still load."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from zoo_cyclegan_hair.plugin import SPEC, generator_macs
from zoo_cyclegan_hair.recipe import CycleGANRecipe
from zoo_export.manifest import MANIFEST, config_gflops, load_export
from zoo_export.pipeline import ExportOptions, export_model
from zoo_export_testing import make_host, train_tiny

TINY = {"image_size": 32, "load_size": 32, "features": 4, "res_blocks": 1, "d_features": 4, "portraits": 24,
        "val_fraction": 0.25}


def expected_gflops(config: dict[str, object]) -> float:
    """The plugin's own multiply-add formula (checked against torch's counter by its card test), 2 FLOPs each."""
    return 2 * generator_macs(int(config["image_size"]), int(config["features"]), int(config["res_blocks"])) / 1e9


@pytest.mark.parametrize("preset", ["quick", "book"])
def test_counted_at_the_config(preset: str) -> None:
    config = {**SPEC.preset(preset).values, "preset": preset}
    for graph in SPEC.graphs:
        assert config_gflops(CycleGANRecipe(SPEC, config), graph) == pytest.approx(expected_gflops(config), rel=1e-9)
    if preset == "book":  # the card preset: the spec's figure
        assert config_gflops(CycleGANRecipe(SPEC, config), SPEC.graphs[0]) == pytest.approx(
            SPEC.graphs[0].gflops_per_item, rel=1e-9)
    else:
        assert expected_gflops(config) == pytest.approx(0.1518, abs=1e-4)  # 64², 16 features, 2 blocks


def test_an_export_states_its_own_config_and_old_manifests_still_load(tmp_path: Path, install_host) -> None:
    host = make_host(entry_points=True)
    install_host(host)
    registered = host.models["cyclegan_hair"]
    run = train_tiny(registered, tmp_path / "run", TINY, max_steps=1)
    export = export_model(registered, ExportOptions(run=run, out=tmp_path / "export", validate=False,
                                                    log=lambda line: None))
    manifest = json.loads((export / MANIFEST).read_text())
    config = manifest["config"]
    want = expected_gflops(config)
    assert want < 0.05 < SPEC.graphs[0].gflops_per_item  # 32², 4 features, 1 block: nothing like the card
    for name, graph in manifest["graphs"].items():
        assert graph["gflops_per_item"] == pytest.approx(want, rel=1e-9), name
        stamped = {p.key: p.value for p in onnx.load(export / graph["file"], load_external_data=False).metadata_props}
        stamped_gflops = json.loads(stamped["zoo_graph"])["gflops_per_item"]  # the .onnx file states the same
        assert stamped_gflops == pytest.approx(want, rel=1e-9), name
    # an export written before this change carries the card's figure: it still loads, figure and all
    for graph in manifest["graphs"].values():
        graph["gflops_per_item"] = SPEC.graphs[0].gflops_per_item
    (export / MANIFEST).write_text(json.dumps(manifest))
    record = load_export(export, "cyclegan_hair")
    assert record.graph_names == list(manifest["graphs"])
