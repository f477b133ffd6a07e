"""Ingestion of the real data in ../shared (read in place)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from flare.core.config import DataConfig
from flare.data.ingest import ingest
from flare.data.leakage import check_leakage

pytestmark = pytest.mark.shared_data


def test_gz1_ingests_5314_images_in_6_classes_with_objid_origins(shared_dir, tmp_path):
    # GZ1 file names are SDSS objids: the stem is the object, whatever class folder it sits in
    result = ingest(shared_dir / "datasets" / "gz1", tmp_path / "gz1", seed=0, taxonomy="gz1", origin_from="stem")
    frame = result.manifest.frame
    assert len(frame) == 5314 and result.quarantined == []
    assert frame["label"].value_counts().to_dict() == {
        "elliptical": 3727, "edge_on": 793, "spiral_anticlockwise": 351, "spiral_clockwise": 313,
        "merger": 86, "dont_know": 44}
    assert frame["origin_id"].str.fullmatch(r"\d{18}").all()  # SDSS DR7 objid
    assert set(frame["macro_label"]) == {"smooth", "disk", "irregular"}
    assert check_leakage(result.manifest).ok
    # stratified: every class has val and test members, even the 44 dont_know
    per_class = frame.groupby(["label", "split"]).size().unstack(fill_value=0)
    assert (per_class[["train", "val", "test"]] > 0).all().all()


def test_mirabest_fits_gives_67_usable_images(shared_dir, tmp_path):
    config = DataConfig(stretch="asinh", interval="percentile", background_clip=True)
    result = ingest(shared_dir / "datasets" / "mirabest_fits", tmp_path / "mb", config, seed=0)
    assert len(result.manifest) == 67 and result.quarantined == []
    assert result.manifest.frame["label"].value_counts().to_dict() == {"FRI": 24, "FRII": 24, "hybrid": 19}
    row = result.manifest.records()[0]
    image = np.asarray(Image.open(result.manifest.resolve(row["path"])))
    assert image.shape == (300, 300, 3)
    # background clip + stretch: the sky is dark, the radio source is bright
    assert np.median(image) < 40 and image.max() > 200
