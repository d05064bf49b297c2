import json

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from edgeprune.cli.main import app
from edgeprune.export import onnx_parity, tflite
from edgeprune.export.artifact import export_artifact
from edgeprune.export.onnx_parity import ParityError, check_parity, export_onnx
from edgeprune.export.samples import take_samples
from edgeprune.export.tflite import export_tflite, interpreter_class, run_tflite
from edgeprune.formats import to_onnx_bytes
from edgeprune.models import build_model
from helpers_export import save_dir, trained_demo


@pytest.fixture(scope="module")
def trained():
    return trained_demo()


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory):
    net, shape, _ = trained
    return save_dir(tmp_path_factory.mktemp("compressed"), net, shape)


def test_onnx_export_from_model_dir_passes_parity(model_dir):
    r = export_artifact(model_dir, "onnx", samples=32)
    assert r["parity"]["passed"] and r["parity"]["samples"] == 32 and r["parity"]["top1_agreement"] == 1.0
    assert r["parity"]["max_abs_diff"] < 1e-4 and r["data"] == "digits"  # data source taken from the meta
    assert r["size_bytes"] == len(open(r["artifact"], "rb").read()) > 0


def test_tflite_nchw_and_nhwc_parity(trained, tmp_path):
    net, shape, data = trained
    rep = export_tflite(net, shape, tmp_path / "m.tflite", data.val, samples=16)
    assert rep.passed and rep.layout == "NCHW" and rep.max_abs_diff < 1e-4


def test_tflite_nhwc_parity_accounts_for_layout(tmp_path):
    torch.manual_seed(1)
    net, shape = build_model("demo_cnn", in_channels=3, input_shape=(1, 3, 8, 8))  # NHWC differs from NCHW
    loader = [(torch.randn(8, 3, 8, 8), torch.zeros(8, dtype=torch.long)) for _ in range(2)]
    rep = export_tflite(net, shape, tmp_path / "n.tflite", loader, samples=16, nhwc=True)
    assert rep.passed and rep.layout == "NHWC" and rep.top1_agreement == 1.0 and rep.max_abs_diff < 1e-4
    data = (tmp_path / "n.tflite").read_bytes()
    interp = interpreter_class()(model_content=data)
    assert list(interp.get_input_details()[0]["shape"]) == [1, 8, 8, 3]
    x = loader[0][0]
    with torch.no_grad():
        ref = net.eval()(x).numpy()
    unpermuted = run_tflite(data, x.numpy().reshape(8, 8, 8, 3))  # NCHW bytes fed as if NHWC
    assert np.abs(unpermuted - ref).max() > 1e-2


def test_parity_against_another_model_raises(trained, tmp_path, monkeypatch):
    net, shape, data = trained
    other, _ = build_model("demo_cnn")
    other_onnx = to_onnx_bytes(other, shape)
    report = check_parity(net, other_onnx, take_samples(data.val, 32))
    assert not report.passed and report.max_abs_diff > 1e-2
    monkeypatch.setattr(onnx_parity, "to_onnx_bytes", lambda m, s: other_onnx)
    with pytest.raises(ParityError, match="ONNX output differs"):
        export_onnx(net, shape, tmp_path / "x.onnx", data.val, samples=16)
    other_tfl = tflite.tflite_bytes(other, shape)
    monkeypatch.setattr(tflite, "tflite_bytes", lambda m, s, nhwc=False: other_tfl)
    with pytest.raises(ParityError, match="TFLite output differs"):
        export_tflite(net, shape, tmp_path / "x.tflite", data.val, samples=16)


def test_onnx_int8_reports_accuracy_change(model_dir, tmp_path):
    r = export_artifact(model_dir, "onnx", int8=True, out=tmp_path / "q.onnx", samples=64)
    q = r["quantization"]
    assert q["fp32_accuracy"] > 0.6 and abs(q["accuracy_change"]) < 0.05
    assert q["accuracy_change"] == pytest.approx(q["int8_accuracy"] - q["fp32_accuracy"])
    assert r["size_bytes"] < q["fp32_size_bytes"] / 2
    ops = {n.op_type for n in onnx.load(r["artifact"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_tflite_int8_reports_accuracy_change(model_dir, tmp_path, capsys):
    r = export_artifact(model_dir, "tflite", int8=True, out=tmp_path / "q.tflite", nhwc=True)
    assert capsys.readouterr().out == ""  # converters print nothing on stdout (`--json` relies on it)
    q = r["quantization"]
    assert abs(q["accuracy_change"]) < 0.05 and r["size_bytes"] < q["fp32_size_bytes"] / 2


def test_cli_json_and_missing_data(trained, model_dir, tmp_path):
    res = CliRunner().invoke(app, ["export", "--model-dir", str(model_dir), "--format", "tflite", "--nhwc",
                                      "--out", str(tmp_path / "c.tflite"), "--samples", "8", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["format"] == "tflite" and out["layout"] == "NHWC" and out["parity"]["passed"]
    assert out["size_bytes"] == (tmp_path / "c.tflite").stat().st_size
    net, shape, _ = trained
    bare = save_dir(tmp_path / "bare", net, shape, meta={})
    res = CliRunner().invoke(app, ["export", "--model-dir", str(bare), "--int8", "--json"])
    assert res.exit_code == 1 and "--data" in json.loads(res.stdout)["error"]


def test_parity_tolerance_grows_with_the_output_scale(trained):
    net, shape, data = trained
    x = take_samples(data.val, 16)
    loud = torch.nn.Sequential(net, torch.nn.Linear(10, 10))  # logits in the tens: float32 rounding grows alike
    with torch.no_grad():
        loud[1].weight.copy_(torch.eye(10) * 1000.0)
        loud[1].bias.zero_()
    report = check_parity(loud, to_onnx_bytes(loud, shape), x)
    assert report.output_scale > 100 and report.passed
    assert report.max_abs_diff <= report.atol * report.output_scale
