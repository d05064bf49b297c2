"""CLI conventions: results on stdout, logs and progress on stderr, exit codes, --json errors, early checks."""
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import edgeprune
from edgeprune.cli.main import app
from edgeprune.cli import output
from edgeprune.cli.output import Output, RichProgress, run_guarded
from edgeprune.errors import EdgepruneError
from edgeprune.models import build_model
from edgeprune.models.layer_space import build_layer_space
from edgeprune.progress import point_reporter


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_version():
    r = cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"edgeprune {edgeprune.__version__}"


def test_light_commands_answer_without_importing_torch():
    """Command modules load only when their command runs: --version and device list stay fast."""
    code = ("import sys; from edgeprune.cli.main import app\n"
            "for args in (['--version'], ['device', 'list', '--json']):\n"
            "    try: app(args)\n"
            "    except SystemExit as e: assert e.code == 0, (args, e.code)\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_layers_piped_writes_the_whole_table_to_stdout():
    """`edgeprune layers > f` (stdout not a terminal): the tables go to stdout, uncut; nothing of them on stderr."""
    r = cli("layers", "--model", "demo_cnn")
    assert r.exit_code == 0, r.output
    net, shape = build_model("demo_cnn")
    space = build_layer_space(net, shape)
    lines = r.stdout.splitlines()
    for layer in space.layers:  # every row whole, however narrow the terminal the tests run in
        assert any(f"│ {layer.name} " in line and f"│ {layer.in_group or 'fixed'} " in line
                   and f"│ {layer.out_group or 'fixed'} " in line for line in lines), (layer.name, r.stdout)
    for group in space.groups:
        members = ", ".join(group.members) if group.prunable else group.reason
        assert any(group.name in line and members in line for line in lines), (group.name, r.stdout)
    assert "…" not in r.stdout and "conv1" not in r.stderr


def test_json_failure_is_one_object_with_a_hint_never_a_traceback():
    r = cli("layers", "--input-shape", "1,3,32", "--json")
    assert r.exit_code == 1
    err = json.loads(r.stdout)  # exactly one JSON object: json.loads refuses anything after it
    assert "input shape" in err["error"] and "N,C,H,W" in err["hint"]
    assert "demo_cnn's own is 1,1,8,8" in err["hint"]  # the shape to give, not a generic example
    assert "Traceback" not in r.output and "Error:" not in err["error"]
    human = cli("layers", "--input-shape", "1,3,32")
    assert human.exit_code == 1 and human.stdout == ""
    assert human.stderr.startswith("error: demo_cnn does not run on input shape 1,3,32") and "hint:" in human.stderr


def test_usage_errors_exit_2_and_stay_json():
    r = cli("layers", "--no-such-option", "--json")
    assert r.exit_code == 2 and "--no-such-option" in json.loads(r.stdout)["error"]
    assert cli("layers", "--no-such-option").exit_code == 2


def test_an_internal_error_is_still_one_json_object(capsys):
    assert run_guarded(lambda: 1 / 0, as_json=True) == 1
    captured = capsys.readouterr()
    err = json.loads(captured.out)
    assert err["error"].startswith("internal error") and "EDGEPRUNE_DEBUG" in err["hint"]
    assert "Traceback" not in captured.err


def test_json_stdout_carries_the_object_alone_whatever_else_prints(capsys):
    def noisy_command():
        print("a library talking on stdout")
        Output(as_json=True).emit({"result": 1})

    assert run_guarded(noisy_command, as_json=True) == 0
    captured = capsys.readouterr()
    assert captured.out == '{"result": 1}\n' and "a library talking" in captured.err


def test_a_failure_mid_phase_closes_the_bar_and_still_reports(capsys):
    def failing_phase():
        bar = RichProgress()
        bar.start("calibrate layers", 10)
        bar.advance(3)
        raise EdgepruneError("the device went away", hint="run the same command again to resume")

    assert run_guarded(failing_phase, as_json=True) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"error": "the device went away", "exit_code": 1,
                                        "hint": "run the same command again to resume"}
    assert "calibrate layers" in captured.err and "3/10" in captured.err and not output._live_bars


def test_compress_rejects_a_budget_in_another_metric_before_calibrating(tmp_path):
    r = cli("compress", "--metric", "energy", "--budget", "3ms", "--out", tmp_path / "out", "--json")
    assert r.exit_code == 1
    err = json.loads(r.stdout)
    assert "metric is energy" in err["error"] and "--metric latency" in err["hint"]
    assert not (tmp_path / "tables").exists() and not (tmp_path / "out").exists()  # nothing calibrated or written


@pytest.mark.parametrize("option, value", [("--epochs", "-3"), ("--lr", "0"), ("--round-to", "0"),
                                           ("--data-limit", "0"), ("--warmup-epochs", "-1")])
def test_compress_rejects_a_setting_out_of_range_before_any_work(home, tmp_path, option, value):
    r = cli("--home", home, "compress", option, value, "--data", "npz:missing.npz", "--out",
            tmp_path / "out", "--json")
    assert r.exit_code == 1
    assert json.loads(r.stdout)["error"].startswith(f"{option} must be")  # not the missing data, checked later
    assert not home.exists() and not (tmp_path / "out").exists()


def test_demo_rejects_negative_epochs_before_training(tmp_path):
    r = cli("demo", "--epochs", "-1", "--out", tmp_path / "demo", "--json")
    assert r.exit_code == 2 and "--epochs" in json.loads(r.stdout)["error"] and not (tmp_path / "demo").exists()


def test_calibration_points_become_one_bar_per_phase():
    calls = []

    class Recorder:
        def start(self, phase, total):
            calls.append(("start", phase, total))

        def advance(self, steps=1):
            calls.append(("advance", steps))

        def finish(self):
            calls.append(("finish",))

    on_point = point_reporter(Recorder())
    for done in (1, 2, 3):
        on_point("layers", done, 3, True)
    on_point("network", 2, 4, False)  # a resumed phase starts part-way
    assert calls == [("start", "calibrate layers", 3), ("advance", 1), ("advance", 1), ("advance", 1),
                     ("start", "calibrate network", 4), ("advance", 2)]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A data folder given by --home alone (the narrower per-folder overrides unset)."""
    for name in ("TABLES", "MODELS", "CONFIG"):
        monkeypatch.delenv(f"EDGEPRUNE_{name}_DIR", raising=False)
    monkeypatch.setenv("EDGEPRUNE_HOME", str(tmp_path / "unused"))  # restored after --home sets it in-process
    return tmp_path / "home"


def test_calibrate_fit_models_predict_under_home(home):
    fast = ["--warmup", "1", "--min-repeats", "3", "--min-duration", "0.01"]
    cal = cli("--home", home, "calibrate", "--points", "1", "--network-variants", "4", *fast, "--json")
    assert cal.exit_code == 0, cal.output
    assert json.loads(cal.stdout)["table"] == str(home / "latency_tables" / "local.sqlite")
    for phase, total in (("layers", 3), ("network", 4)):  # demo_cnn: 3 signatures × 1 point, 4 variants
        assert f"calibrate {phase}" in cal.stderr and f"{total}/{total}" in cal.stderr

    fit = cli("--home", home, "fit", "--json")
    assert fit.exit_code == 0, fit.output
    report = json.loads(fit.stdout)
    assert report["heldout"] == {} and "--network-variants" in report["heldout_note"]
    assert report["cost_model"] == str(home / "cost_models" / "local-demo_cnn-1x1x8x8-onnxruntime-t1-latency.json")
    human = cli("--home", home, "fit")
    assert "no held-out accuracy" in human.stderr and "held-out whole-network accuracy" in human.stdout

    listed = json.loads(cli("--home", home, "models", "--json").stdout)
    assert listed["search_path"][0] == str(home / "cost_models")
    mine = [m for m in listed["models"] if m["file"] == report["cost_model"]]
    assert mine and mine[0]["input_shape"] == [1, 1, 8, 8] and mine[0]["device"] == "local"
    assert mine[0]["runtime"] == "onnxruntime" and mine[0]["model"] == "demo_cnn"
    table = cli("--home", home, "models").stdout
    assert "1×1×8×8" in table and report["cost_model"] in table

    pred = cli("--home", home, "predict", "--json")
    assert pred.exit_code == 0 and json.loads(pred.stdout)["provenance"]["cost_model"] == report["cost_model"]


def test_predict_without_a_cost_model_says_to_calibrate_and_fit(home):
    r = cli("--home", home, "predict", "--model", "resnet20", "--input-shape", "1,3,64,64", "--json")
    err = json.loads(r.stdout)
    assert r.exit_code == 1 and "no cost model for resnet20 at input 1×3×64×64" in err["error"]
    assert "edgeprune calibrate" in err["hint"] and "edgeprune fit" in err["hint"] and "1,3,64,64" in err["hint"]
