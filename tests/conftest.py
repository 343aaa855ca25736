import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The hostile-input world's good run and export (tests/_hostile_world.py), once per module."""
    from _hostile_world import make_good

    return make_good(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def world(good, tmp_path):
    """A private copy of the good world for one test."""
    from _hostile_world import copy_world

    return copy_world(good, tmp_path / "w")


@pytest.fixture
def here(world, monkeypatch):
    """The test module's ``world`` folder as the working directory and the runs folder
    (``EDGECNN_RUNS``): commands run as a user in their project folder would."""
    monkeypatch.chdir(world)
    monkeypatch.setenv("EDGECNN_RUNS", str(world / "runs"))
    return world
