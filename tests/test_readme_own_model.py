"""The README's "your own model and data" example files work as it says."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _example(name: str) -> str:
    """The README's python block that starts with ``# name``."""
    blocks = re.findall(r"```python\n(# (\S+)\n.*?)```", README.read_text(), re.S)
    return next(code for code, title in blocks if title == name)


def test_readme_model_and_data_examples_load(tmp_path):
    from edgeprune.data import load_data
    from edgeprune.models import build_model
    from edgeprune.models.layer_space import build_layer_space

    for name in ("my_model.py", "my_data.py"):
        (tmp_path / name).write_text(_example(name))
    net, shape = build_model(f"{tmp_path / 'my_model.py'}:build")
    data = load_data(f"{tmp_path / 'my_data.py'}:load", batch_size=64)
    assert shape == (1, 3, 32, 32) == data.input_shape and data.num_classes == 10
    x, y = next(iter(data.train))
    assert net(x).shape == (len(y), data.num_classes)
    space = build_layer_space(net, shape)
    assert {layer.name for layer in space.layers} == {"0", "3", "8"}
