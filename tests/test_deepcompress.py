"""Deep Compression: Huffman, CSR padding-zero rule, k-means, bit-exact codec, stage sizes, CLI."""
import copy
import io
import json
import random

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from edgeprune.cli.main import app
from edgeprune.deepcompress import (decode, deep_compress, encode, finetune_centroids, huffman_decode, huffman_encode,
                                    kmeans_1d, linear_init, magnitude_masks, prunable, quantize_model, retrain,
                                    stage_sizes)
from edgeprune.deepcompress.csr import from_relative, to_relative
from edgeprune.deepcompress.huffman import canonical_codes, code_lengths
from edgeprune.deepcompress.quantize import Codebook
from edgeprune.models import build_model
from edgeprune.train import evaluate, train_from_scratch


@pytest.fixture(scope="module")
def trained():
    """demo_cnn briefly trained on digits."""
    from edgeprune.data import load_data

    data = load_data("digits")
    torch.manual_seed(0)
    net, _ = build_model("demo_cnn")
    train_from_scratch(net, data, 2)
    return net, data


@pytest.fixture(scope="module")
def result(trained):
    """One full pipeline run (with the latency measurement)."""
    net, data = trained
    return deep_compress(net, data, prune=0.9, epochs=1, centroid_epochs=1)


# --- Huffman ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("symbols", [[], [5], [3] * 100, [0, 1], [1, 1, 1, 2, 2, 3, 9, 9, 9, 9] * 7,
                                     [2 ** 32 - 1, 0, 2 ** 32 - 1]])
def test_huffman_round_trip_edge_cases(symbols):
    assert huffman_decode(huffman_encode(symbols)) == symbols


def test_huffman_round_trip_random_is_prefix_free_and_compresses_skewed_data():
    rng = random.Random(0)
    for alphabet in (2, 17, 300):
        data = [min(int(rng.expovariate(0.3)), alphabet - 1) for _ in range(5000)]
        blob = huffman_encode(data)
        assert huffman_decode(blob) == data
        codes = canonical_codes(code_lengths({s: data.count(s) for s in set(data)}))
        words = [format(c, f"0{n}b") for c, n in codes.values()]
        assert not any(a != b and b.startswith(a) for a in words for b in words)
    fixed_bytes = 5000 * 9 / 8  # 300 symbols need 9 bits each
    assert len(blob) < fixed_bytes


def test_huffman_rejects_truncated_stream():
    blob = huffman_encode(list(range(50)) * 3)
    with pytest.raises(ValueError):
        huffman_decode(blob[:-4])


# --- CSR relative indices with padding zeros ---------------------------------------------------------------------

def test_padding_zero_rule_round_trip_with_forced_large_gap():
    positions = np.array([0, 3, 8, 300, 301])
    labels = np.array([4, 1, 2, 7, 0])
    gaps, syms = to_relative(positions, labels, pos_bits=3, pad_symbol=99)
    assert gaps.max() <= 7  # every code fits in 3 bits
    n_pad = int((syms == 99).sum())
    assert n_pad == (300 - 8 - 1) // 8  # gap 292 > 8 needs 36 padding entries of span 8
    pos, lab = from_relative(gaps, syms, pad_symbol=99)
    assert pos.tolist() == positions.tolist() and lab.tolist() == labels.tolist()


def test_padding_zero_rule_through_the_codec():
    mask = torch.zeros(4, 8, 3, 3, dtype=torch.bool)
    mask.view(-1)[[0, 287]] = True  # one gap of 287 with 8-bit positions forces a padding zero
    book = Codebook(torch.tensor([-0.5, 0.25]), torch.tensor([1, 0]), mask, bits=1)
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 4, 3, bias=False))
    enc = encode(model, {"0": book}, conv_pos_bits=8)
    assert enc["layers"]["0.weight"]["n_pad"] == 1 and enc["layers"]["0.weight"]["n_entries"] == 3
    w = decode(enc)["0.weight"].flatten()
    assert w[0] == 0.25 and w[287] == -0.5 and int((w != 0).sum()) == 2


# --- pruning and k-means -----------------------------------------------------------------------------------------

def test_masks_prune_each_layer_to_the_fraction_and_retraining_keeps_zeros(trained):
    net, data = trained
    net = copy.deepcopy(net)
    masks = magnitude_masks(net, 0.8)
    for name, keep in masks.items():
        assert abs(1 - keep.float().mean().item() - 0.8) < 0.01, name
    before = {n: m.weight.detach().clone() for n, m in prunable(net).items()}
    retrain(net, masks, data, 1)
    for name, layer in prunable(net).items():
        assert torch.all(layer.weight[~masks[name]] == 0)
        assert not torch.equal(layer.weight[masks[name]], before[name][masks[name]])


def test_linear_init_and_kmeans():
    vals = np.array([-1.0, -0.9, 0.1, 0.2, 3.0])
    assert np.allclose(linear_init(vals, 5), [-1.0, 0.0, 1.0, 2.0, 3.0])
    cent, labels = kmeans_1d(vals, 5, iters=0)
    assert np.allclose(cent, np.linspace(-1, 3, 5)) and labels.tolist() == [0, 0, 1, 1, 4]
    rng = np.random.default_rng(0)
    data = np.concatenate([rng.normal(-2, 0.01, 200), rng.normal(5, 0.01, 100)])
    cent, labels = kmeans_1d(data, 2, iters=20)
    assert np.allclose(sorted(cent), [-2, 5], atol=0.01)
    assert np.bincount(labels).tolist() == [200, 100]


def test_weight_sharing_and_centroid_finetuning_keep_weights_tied(trained):
    net, data = trained
    net = copy.deepcopy(net)
    masks = magnitude_masks(net, 0.5)
    books = quantize_model(net, masks, conv_bits=4, fc_bits=2)
    start = {n: b.centroids.clone() for n, b in books.items()}
    finetune_centroids(net, books, data, 1, lr=1e-3)
    for name, layer in prunable(net).items():
        w = layer.weight.detach()
        assert torch.all(w[~masks[name]] == 0)
        assert torch.unique(w[masks[name]]).numel() <= 2 ** books[name].bits
        assert torch.equal(w[masks[name]], books[name].centroids[books[name].labels])
    assert any(not torch.equal(start[n], books[n].centroids) for n in books)


# --- the codec and the full pipeline -----------------------------------------------------------------------------

def test_encode_decode_is_bit_exact_and_weights_only_loadable(trained):
    net, _ = trained
    net = copy.deepcopy(net)
    books = quantize_model(net, magnitude_masks(net, 0.9))
    buf = io.BytesIO()
    torch.save(encode(net, books), buf)
    buf.seek(0)
    state = decode(torch.load(buf, weights_only=True))
    ref = net.state_dict()
    assert state.keys() == ref.keys()
    for k in ref:
        assert state[k].dtype == ref[k].dtype and torch.equal(state[k], ref[k]), k


def test_pipeline_stage_sizes_decrease_and_decoded_accuracy_matches(result, trained):
    summary, enc = result
    sizes = [s["bytes"] for s in summary["stages"]]
    assert all(a > b for a, b in zip(sizes, sizes[1:])), sizes
    ratios = [s["ratio"] for s in summary["stages"]]
    assert ratios[0] == 1.0 and ratios[-1] > 8 and ratios == sorted(ratios)
    assert summary["decoded_bit_exact"] is True
    acc = summary["accuracy"]
    assert acc["decoded"] == acc["quantized_finetuned"]
    model = copy.deepcopy(trained[0])
    model.load_state_dict(decode(enc))
    assert evaluate(model.eval(), trained[1].val)["accuracy"] == acc["decoded"]
    assert stage_sizes(enc) == summary["stages"]


def test_speed_report_is_theoretical_next_to_measured(result):
    sp = result[0]["speed"]
    assert sp["theoretical_speedup"] == pytest.approx(10, rel=0.01)
    assert sp["dense_latency_ms"] > 0 and sp["pruned_latency_ms"] > 0
    assert sp["measured_speedup"] < 3  # dense kernels: no 10x from unstructured zeros
    assert "do not speed up" in sp["note"]


def test_cli_json(trained, tmp_path):
    net, _ = trained
    torch.save(net.state_dict(), tmp_path / "dense.pt")
    res = CliRunner().invoke(app, ["deep-compress", "--model", "demo_cnn", "--weights", str(tmp_path / "dense.pt"),
                                      "--prune", "0.8", "--conv-bits", "6", "--fc-bits", "4", "--epochs", "0",
                                      "--centroid-epochs", "0", "--no-measure", "--out", str(tmp_path / "out"),
                                      "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["conv_bits"] == 6 and len(obj["stages"]) == 4 and obj["decoded_bit_exact"] is True
    saved = torch.load(obj["artifact"], weights_only=True)
    assert decode(saved).keys() == net.state_dict().keys()


def test_cli_reads_a_compressed_model_dir_and_rejects_two_sources(trained, tmp_path):
    from edgeprune.models.layer_space import build_layer_space
    from edgeprune.prune.artifact import save_compressed

    net, _ = trained
    shape = (1, 1, 8, 8)
    kept = {g: list(range(w)) for g, w in build_layer_space(net, shape).dense_widths().items()}
    model_dir = save_compressed(tmp_path / "m", net, "demo_cnn", shape, kept, {"data": "digits"})
    args = ["deep-compress", str(model_dir), "--epochs", "0", "--centroid-epochs", "0", "--no-measure", "--out",
            str(tmp_path / "out"), "--json"]
    obj = json.loads(CliRunner().invoke(app, args).stdout)
    assert obj["model"] == str(model_dir) and obj["stages"][-1]["ratio"] > 1
    res = CliRunner().invoke(app, [*args, "--model", "demo_cnn"])
    assert res.exit_code == 1 and "error" in json.loads(res.stdout)


@pytest.mark.parametrize("setting, message", [({"conv_bits": 0}, "--conv-bits must be in 1..16"),
                                              ({"epochs": -1}, "--epochs must be >= 0"),
                                              ({"prune": 1.0}, r"--prune must be in \[0, 1\)")])
def test_settings_out_of_range_are_refused_before_any_training(setting, message):
    with pytest.raises(ValueError, match=message):  # data=None: it is not even looked at
        deep_compress(build_model("demo_cnn")[0], None, **setting)
