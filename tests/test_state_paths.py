"""Where state lives: one per-user data folder, narrower overrides, the shipped cost models, shape-keyed names."""
import json

import pytest

from edgeprune import paths
from edgeprune.costmodel.store import default_model_path, find_model_file, list_models
from edgeprune.models import build_model
from helpers_export import synthetic_cost_model

KEY = ("local", "demo_cnn", "onnxruntime", 1, "latency")


@pytest.fixture
def bare_env(monkeypatch):
    """No edgeprune folder variables at all."""
    for name in ("HOME", "TABLES_DIR", "MODELS_DIR", "CONFIG_DIR", "CACHE_DIR"):
        monkeypatch.delenv(f"EDGEPRUNE_{name}", raising=False)
    return monkeypatch


def test_default_home_is_the_per_user_data_folder_not_the_current_one(bare_env, tmp_path):
    bare_env.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    bare_env.chdir(tmp_path)
    assert paths.home() == tmp_path / "xdg" / "edgeprune"
    assert paths.tables_dir() == tmp_path / "xdg" / "edgeprune" / "latency_tables"
    assert paths.config_dir() == paths.home()  # the device registry lives there too


def test_one_variable_moves_everything_and_the_narrow_ones_still_win(bare_env, tmp_path):
    bare_env.setenv("EDGEPRUNE_HOME", str(tmp_path / "h"))
    assert (paths.tables_dir(), paths.models_dir(), paths.config_dir()) == (
        tmp_path / "h" / "latency_tables", tmp_path / "h" / "cost_models", tmp_path / "h")
    bare_env.setenv("EDGEPRUNE_TABLES_DIR", str(tmp_path / "t"))
    assert paths.tables_dir() == tmp_path / "t" and paths.models_dir() == tmp_path / "h" / "cost_models"


def test_a_device_registered_where_older_versions_kept_them_gets_a_hint(bare_env, tmp_path):
    from edgeprune.measure.registry import DeviceConfigError, open_device

    bare_env.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    bare_env.setenv("EDGEPRUNE_HOME", str(tmp_path / "h"))
    (tmp_path / "cfg" / "edgeprune").mkdir(parents=True)
    (tmp_path / "cfg" / "edgeprune" / "devices.json").write_text(json.dumps({"pi": {"url": "http://pi:8765"}}))
    with pytest.raises(DeviceConfigError, match="unknown device 'pi'") as err:
        open_device("pi")
    assert str(tmp_path / "cfg" / "edgeprune" / "devices.json") in err.value.hint
    with pytest.raises(DeviceConfigError) as other:
        open_device("nano")
    assert other.value.hint is None


def _save(shape, path=None):
    net, _ = build_model("demo_cnn", input_shape=shape)
    prov = {"device": {"name": "local"}, "runtime": {"name": "onnxruntime", "threads": 1}, "metric": "latency",
            "model": {"name": "demo_cnn", "input_shape": list(shape)}}
    return synthetic_cost_model(net, shape).save(path or default_model_path(*KEY, shape), prov)


def test_two_input_shapes_of_one_architecture_keep_two_cost_models():
    small, large = (1, 1, 8, 8), (1, 1, 16, 16)
    a, b = _save(small), _save(large)
    assert a != b and a.is_file() and b.is_file()
    assert find_model_file(*KEY, small) == a and find_model_file(*KEY, large) == b
    shapes = sorted(tuple(m["input_shape"]) for m in list_models() if m["model"] == "demo_cnn")
    assert shapes == [small, large]


def test_a_cost_model_under_its_old_name_loads_for_the_shape_it_records(tmp_path):
    old = paths.models_dir() / "local-demo_cnn-onnxruntime-t1-latency.json"  # the name before shapes
    _save((1, 1, 8, 8), old)
    assert find_model_file(*KEY, (1, 1, 8, 8)) == old
    assert find_model_file(*KEY, (1, 1, 16, 16)) is None


def test_shipped_cost_models_are_found_from_any_folder_read_only(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    found = find_model_file("local", "resnet20", "onnxruntime", 1, "latency", (1, 3, 32, 32))
    assert found is not None and found.parent == paths.shipped_models_dir()
    assert json.loads(found.read_text())["model"]["name"] == "resnet20"
    shipped = [m for m in list_models() if m["read_only"]]
    assert shipped and all(m["heldout"]["n"] > 0 for m in shipped)
    assert default_model_path("local", "resnet20", "onnxruntime", 1, "latency", (1, 3, 32, 32)).parent \
        == paths.models_dir() != paths.shipped_models_dir()  # fit writes to the user's folder, never there
