"""``edgeprune deep-compress``: pruning, k-means weight sharing and Huffman coding (Han et al., ICLR'16)."""
from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from edgeprune.cli.common import JsonOpt
from edgeprune.cli.output import Output, RichProgress


def _load(model_dir: Path | None, model: str | None, weights: Path | None):
    """The model to compress: a compressed-model directory or a zoo/file spec with optional weights."""
    if model_dir is not None:
        if model is not None:
            raise ValueError("give either a model directory or --model, not both")
        from edgeprune.prune.artifact import load_compressed

        net, info = load_compressed(model_dir)
        return net, tuple(info["input_shape"]), str(model_dir)
    from edgeprune.models import build_model

    spec = model or "demo_cnn"
    net, shape = build_model(spec, weights)
    return net, shape, spec


def deep_compress_command(model_dir: Path = typer.Argument(None, help="A compressed-model directory "
                                                           "(channels.json + weights.pt)."),
                          model_dir_opt: Path = typer.Option(None, "--model-dir", help="Same as the argument."),
                          model: str = typer.Option(None, "--model", "-m", help="Zoo name or path/to/file.py:fn "
                                                    "(instead of a model directory)."),
                          weights: Path = typer.Option(None, "--weights", help="Checkpoint for --model."),
                          data: str = typer.Option("digits", "--data", help="digits, npz:PATH, cifar10:DIR or "
                                                   "module:function."),
                          prune: float = typer.Option(0.9, "--prune", help="Fraction of weights pruned per layer."),
                          conv_bits: int = typer.Option(8, "--conv-bits", help="Cluster-index bits for conv."),
                          fc_bits: int = typer.Option(5, "--fc-bits", help="Cluster-index bits for linear."),
                          epochs: int = typer.Option(3, "--epochs", help="Retraining epochs after pruning."),
                          centroid_epochs: int = typer.Option(1, "--centroid-epochs", help="Centroid fine-tuning "
                                                              "epochs."),
                          lr: float = typer.Option(0.05, "--lr", help="Retraining learning rate."),
                          measure: bool = typer.Option(True, "--measure/--no-measure", help="Time dense vs pruned "
                                                       "in onnxruntime."),
                          out: Path = typer.Option(Path("deepcompressed"), "--out", help="Output directory."),
                          as_json: bool = JsonOpt):
    """Prune, share weights by k-means, Huffman-code; report the size at each stage and the real speed-up."""
    from edgeprune.data import load_data
    from edgeprune.deepcompress import deep_compress

    o = Output(as_json)
    net, shape, source = _load(model_dir or model_dir_opt, model, weights)
    bundle = load_data(data)
    summary, _ = deep_compress(net, bundle, prune=prune, conv_bits=conv_bits, fc_bits=fc_bits, epochs=epochs,
                               centroid_epochs=centroid_epochs, lr=lr, input_shape=shape, measure=measure,
                               out=out, say=o.log, reporter=RichProgress(o.console))
    summary.update(model=source, data=data)
    o.emit(summary)
    print_deep_summary(o, summary)


def print_deep_summary(o: Output, s: dict) -> None:
    """Stage table, accuracies and theoretical vs measured speed-up."""
    t = Table("stage", "bytes", "ratio", title=f"Deep Compression of {s['model']} — prune {s['prune']:.0%}, "
              f"conv {s['conv_bits']} bits, fc {s['fc_bits']} bits")
    for row in s["stages"]:
        t.add_row(row["stage"], f"{row['bytes']:,}", f"{row['ratio']:.1f}×")
    o.print(t)
    o.print("accuracy: " + ", ".join(f"{k} {v:.2%}" for k, v in s["accuracy"].items()))
    o.print(f"decoded weights bit-exact: {s['decoded_bit_exact']}; saved {s.get('artifact')}")
    sp = s.get("speed")
    if sp:
        o.print(f"speed-up: theoretical {sp['theoretical_speedup']:.1f}× (MACs), measured "
                f"{sp['measured_speedup']:.2f}× ({sp['dense_latency_ms']:.3g} → {sp['pruned_latency_ms']:.3g} ms, "
                f"{sp['runtime']})")
        o.print(f"[yellow]note:[/] {sp['note']}")
