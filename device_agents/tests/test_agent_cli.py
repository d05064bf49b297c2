"""The edgeprune-agent command line: token handling, info, local measure."""
import json
import stat

import httpx
import pytest

from agent_fixtures import conv_model  # noqa: F401 (fixtures)
from agent_testlib import write_file
from edgeprune_agent.cli import CliError, load_or_create_token, main


def test_missing_token_file_is_generated_0600(tmp_path, capsys):
    path = tmp_path / "keys" / "agent.token"
    token = load_or_create_token(str(path))
    assert len(token) >= 40 and path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "generated a new token" in capsys.readouterr().err
    assert load_or_create_token(str(path)) == token


def test_readable_token_file_is_refused_unless_allowed(tmp_path, capsys):
    path = tmp_path / "t"
    path.write_text("  s3cret-token \n")
    path.chmod(0o644)
    with pytest.raises(CliError, match="readable by other users: chmod 600"):
        load_or_create_token(str(path))
    assert load_or_create_token(str(path), allow_readable=True) == "s3cret-token"
    assert "readable by other users" in capsys.readouterr().err
    path.chmod(0o600)
    assert load_or_create_token(str(path)) == "s3cret-token"


def test_tls_needs_cert_and_key(tmp_path, capsys):
    assert main(["serve", "--token-file", str(tmp_path / "tok"), "--tls-cert", "x.pem"]) == 2
    assert "both --tls-cert and --tls-key" in capsys.readouterr().err


def test_agent_serves_https_and_states_its_fingerprint(tmp_path):
    from agent_testlib import LiveServer, make_tls_cert
    from edgeprune_agent.cli import cert_fingerprint
    import hashlib
    import ssl

    cert, key = make_tls_cert(tmp_path)
    with LiveServer(tls=(cert, key), sensor_name="none") as live:
        with live.client() as client:
            assert client.get("/v1/info").status_code == 200
        with pytest.raises(httpx.ConnectError):  # an unknown self-signed certificate is not trusted
            httpx.get(live.url + "/v1/health", timeout=5)
        with pytest.raises(httpx.RemoteProtocolError):  # no plain HTTP on the TLS port
            httpx.get(live.url.replace("https", "http") + "/v1/health", timeout=5)
        host, port = live.url.removeprefix("https://").split(":")
        served = ssl.get_server_certificate((host, int(port)))
    assert cert_fingerprint(str(cert)) == "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(served)).hexdigest()


def test_token_errors(tmp_path):
    with pytest.raises(CliError, match="--token-file is required"):
        load_or_create_token(None)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(CliError, match="empty"):
        load_or_create_token(str(empty))


def test_serve_without_token_file_exits_2(capsys):
    assert main(["serve"]) == 2
    assert "--token-file is required" in capsys.readouterr().err


def test_info_prints_json(tmp_path, capsys):
    write_file(tmp_path, "proc/cpuinfo", "model name\t: Test CPU 9000\n")
    assert main(["info", "--sysfs-root", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cpu_model"] == "Test CPU 9000" and info["available_sensors"] == ["estimate"]


def test_measure_command(tmp_path, capsys, conv_model):
    model = tmp_path / "m.onnx"
    model.write_bytes(conv_model)
    assert main(["measure", str(model), "--warmup", "1", "--min-repeats", "5", "--min-duration-s", "0.02",
                 "--sensor", "estimate"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["latency_ms"]["n"] >= 5 and result["energy_mj"]["kind"] == "estimate"
    model.write_bytes(b"junk")
    assert main(["measure", str(model)]) == 2
    assert "could not load" in capsys.readouterr().err


def test_info_and_measure_on_a_fake_jetson_tree(tmp_path, capsys, conv_model):
    from agent_testlib import write_sysfs

    write_sysfs(tmp_path, "jetson_jp4_nano_ina3221x_iio.txt")
    assert main(["info", "--sysfs-root", str(tmp_path), "--bin-dir", str(tmp_path / "bin")]) == 0
    assert json.loads(capsys.readouterr().out)["available_sensors"] == ["ina3221", "estimate"]
    model = tmp_path / "m.onnx"
    model.write_bytes(conv_model)
    assert main(["measure", str(model), "--warmup", "1", "--min-repeats", "5", "--min-duration-s", "0.02",
                 "--sysfs-root", str(tmp_path), "--sensor-refresh-s", "0.005", "--energy-windows", "1",
                 "--energy-window-s", "0.05", "--idle-s", "0.05"]) == 0
    energy = json.loads(capsys.readouterr().out)["energy_mj"]
    assert (energy["source"], energy["kind"]) == ("ina3221", "measured")
    assert energy["idle_power_w"] == pytest.approx(5.976) and abs(energy["marginal_per_inference"]) < 1e-9
    assert energy["protocol"] == {"windows": 1, "min_window_s": 0.05, "idle_s": 0.05}
    assert main(["measure", str(model), "--energy-windows", "0", "--sensor", "estimate"]) == 2
    assert "invalid energy protocol" in capsys.readouterr().err
