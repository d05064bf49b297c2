"""Android over adb at the command layer: what is pushed and run, and parsing of captured outputs (no phone)."""
import json
from pathlib import Path

import pytest

from conftest import run_cli
from edgeprune.measure.android import (CONDITIONS_SCRIPT, REMOTE_DIR, AndroidDevice, parse_battery_lines,
                                       per_layer_latency)
from edgeprune.measure.devices import MeasurementRejected
from edgeprune.measure.registry import measurement_warnings
from edgeprune.measure.settings import MeasureSettings

FIXTURES = Path(__file__).parent / "fixtures"
SETTINGS = MeasureSettings(threads=2, warmup=5, min_repeats=50, min_duration_s=1.0)


def _battery_lines(phase, current, n, t0, counter0=3421000):
    """EPBAT lines as the on-phone sampler prints them (Pixel: uA, negative = discharging, uV)."""
    return [f"EPBAT {phase} {t0 + 0.25 * i:.2f} {current} 3874000 {counter0} Discharging" for i in range(n)]


class FakeAdb:
    """Records pushes and shell commands; answers with captured outputs."""

    def __init__(self, status="Discharging", bench_fixture="tflite_benchmark_model_op_profiling.txt"):
        self.pushed, self.commands, self.status = [], [], status
        bench = (FIXTURES / bench_fixture).read_text()
        self.run_output = "\n".join(_battery_lines("idle0", -300000, 8, 100.0) + _battery_lines(
            "load", -412500, 40, 102.0) + [bench, "EPRC 0"] + _battery_lines("idle1", -300000, 8, 113.0))

    def push(self, data, remote, mode=0o644):
        self.pushed.append((remote, len(data), mode))

    def shell(self, command, timeout_s=600.0):
        self.commands.append(command)
        if command.startswith("getprop"):
            return "Google\nPixel 7\ngs201\narm64-v8a\n14\n"
        if command == "nproc":
            return "8\n"
        if command == "dumpsys battery":
            if self.status == "Charging":
                return (FIXTURES / "android_dumpsys_battery_after_unplug.txt").read_text()
            return "Current Battery Service state:\n  AC powered: false\n  USB powered: false\n  status: 3\n"
        if command == CONDITIONS_SCRIPT:
            return "CPU 4 performance 2350000 2350000\nCPU 5 performance 2350000 2350000\nTZ 41200 soc_therm\n"
        if command.endswith("/status"):
            return self.status + "\n"
        if "benchmark_model" in command:
            return self.run_output
        return ""


@pytest.fixture
def binary(tmp_path):
    path = tmp_path / "benchmark_model"
    path.write_bytes(b"\x7fELF fake benchmark_model")
    return path


def test_push_and_run_command(binary):
    adb = FakeAdb()
    phone = AndroidDevice("phone", "R5CT12345", binary, runner=adb, cores="f0")
    first = phone.measure(b"TFL3 model one", "litert", SETTINGS)
    phone.measure(b"TFL3 model two", "litert", SETTINGS)
    bench = [(r, m) for r, _, m in adb.pushed if r.endswith("/benchmark_model")]
    assert bench == [(f"{REMOTE_DIR}/benchmark_model", 0o755)]  # pushed once, executable
    models = [r for r, _, _ in adb.pushed if r.endswith(".tflite")]
    assert len(models) == 2 and all(r.startswith(REMOTE_DIR + "/") for r in models)
    run = next(c for c in adb.commands if "benchmark_model --graph" in c)
    model_name = models[0].rsplit("/", 1)[1]
    assert f"taskset f0 ./benchmark_model --graph={model_name} --num_threads=2 --warmup_runs=5 " \
           "--num_runs=50 --min_secs=10 " in run  # on battery: >= 10x the fuel gauge's ~1 s refresh
    assert "--enable_op_profiling=true" in run and "--use_xnnpack=false" in run
    assert "/sys/class/power_supply/battery/current_now" in run and "s idle0 &" in run and "s idle1 &" in run
    assert (first.runtime, first.runtime_version, first.threads) == ("litert", phone.binary_version, 2)


def test_result_parses_latency_ops_and_battery_energy(binary):
    result = AndroidDevice("phone", "R5CT12345", binary, runner=FakeAdb()).measure(b"m", "litert", SETTINGS)
    assert result.latency.mean == pytest.approx(31.7725) and result.latency.n == 50 and result.latency.p10 is None
    assert len(result.result["per_op"]) == 31 and result.result["benchmark"]["layout"] == "current"
    assert (result.energy.kind, result.energy.source) == ("measured", "android_battery")
    energy = result.result["energy_mj"]
    load_w, idle_w = 0.4125 * 3.874, 0.3 * 3.874
    assert energy["kind"] == "measured" and energy["source"] == "android_battery"
    assert energy["load_power_w"] == pytest.approx(load_w) and energy["idle_power_w"] == pytest.approx(idle_w)
    assert energy["total_per_inference"] == pytest.approx(load_w * 0.0317725 * 1000)
    assert energy["marginal_per_inference"] == pytest.approx((load_w - idle_w) * 0.0317725 * 1000)
    assert energy["params"]["convention"]["discharge_sign"] == -1
    assert result.result["conditions_before"]["governor"] == "performance"
    assert result.result["conditions_before"]["temperatures_c"] == {"soc_therm": 41.2}
    assert json.dumps(result.result)


def test_legacy_layout_and_layer_mapping(binary):
    adb = FakeAdb(bench_fixture="tflite_benchmark_model_op_profiling_legacy.txt")
    result = AndroidDevice("phone", "S", binary, runner=adb).measure(b"m", "litert", SETTINGS)
    assert result.result["benchmark"]["layout"] == "legacy (with [start])"

    class Sig:
        def __init__(self, op):
            self.op = op

    class Layer:
        def __init__(self, name, op):
            self.name, self.signature = name, Sig(op)

    class Space:
        layers = [Layer("conv0", "conv")] + [Layer(f"b{i}.{k}", op) for i in range(1, 14)
                                             for k, op in (("dw", "dwconv"), ("pw", "conv"))] + [Layer("fc", "conv")]

    mapped = per_layer_latency(result, Space())
    assert mapped["exact"] and mapped["layers"]["b3.pw"]["avg_ms"] == 2.601


def test_charging_phone_gives_no_energy_and_a_warning(binary):
    phone = AndroidDevice("phone", "S", binary, runner=FakeAdb(status="Charging"))
    result = phone.measure(b"m", "litert", SETTINGS)
    assert result.energy is None and result.result["conditions_before"]["on_battery"] is False
    run = next(c for c in phone.runner.commands if "benchmark_model --graph" in c)
    assert "--min_secs=1 " in run
    info = phone.info()
    assert info["battery"]["charging_despite_unplug"] and info["available_sensors"] == []
    assert any("cable still charges" in w for w in measurement_warnings(info))
    assert info["runtime_versions"]["litert"].startswith("benchmark_model sha256:")


def test_info_fingerprint_and_onnx_refused(binary):
    phone = AndroidDevice("phone", "S", binary, runner=FakeAdb())
    info = phone.info()
    assert info["device_model"] == "Google Pixel 7" and info["cores_logical"] == 8
    assert info["fingerprint_id"] == AndroidDevice("p2", "T", binary, runner=FakeAdb()).info()["fingerprint_id"]
    with pytest.raises(MeasurementRejected, match="tflite"):
        phone.measure(b"m", "onnxruntime", SETTINGS)


def test_battery_lines_ignore_benchmark_noise():
    text = "EPBAT load 12.5 -400000 3874000 - Not charging\nINFO: count=3\nEPBAT bogus 1 2 3 4 x\n"
    phases = parse_battery_lines(text)
    assert len(phases["load"]) == 1 and phases["load"][0].status == "Not charging"
    assert phases["load"][0].charge_counter_uah is None


def test_device_add_adb_cli(binary):
    added = json.loads(run_cli("device", "add", "phone", "--adb", "192.168.1.7:5555", "--benchmark-binary", binary,
                               "--cores", "c0", "--json").stdout)
    assert added["kind"] == "android" and added["cores"] == "c0" and added["serial"] == "192.168.1.7:5555"
    listed = json.loads(run_cli("device", "list", "--json").stdout)
    assert [d["name"] for d in listed["devices"]] == ["local", "phone"]
    missing = run_cli("device", "add", "p2", "--adb", "X", "--json", check=False)
    assert missing.returncode == 1 and "--benchmark-binary" in json.loads(missing.stdout)["error"]


@pytest.mark.slow
def test_calibrate_on_a_phone_through_the_fake_runner(binary, tmp_path):
    from edgeprune.measure.calibrate import calibrate
    from edgeprune.models import build_model
    from edgeprune.models.layer_space import build_layer_space
    from edgeprune.tables.store import LatencyTable

    model, shape = build_model("demo_cnn")
    space = build_layer_space(model, shape)
    with LatencyTable(tmp_path / "phone.sqlite") as table:
        result = calibrate(AndroidDevice("phone", "S", binary, runner=FakeAdb()), "demo_cnn", model, space, table,
                           runtime="litert", points=1, network_variants=1)
        row = next(table.rows("layer"))
    assert result.points_measured == result.points_planned and result.energy_source == "android_battery"
    assert row["device_name"] == "phone" and row["runtime_version"].startswith("benchmark_model sha256:")
