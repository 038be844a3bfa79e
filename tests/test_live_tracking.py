"""With MLFLOW_TRACKING_URI naming a server, training also logs live (a real MLflow server
on loopback); `register` afterwards leaves exactly one run per run key."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import git_env, make_workspace, snakemake


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    exe = Path(sys.executable).parent / "mlflow"
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    proc = subprocess.Popen(
        [
            str(exe),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--default-artifact-root",
            str(tmp_path / "artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("mlflow server exited")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not start within 90 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_training_logs_live_to_a_server(tmp_path, mlflow_server):
    from mlflow.tracking import MlflowClient

    ws = make_workspace(tmp_path / "repo")
    snakemake(ws, "--cores", "1", "--config", "scale=smoke", "papers=[egfn]", "--until", "setup_env")  # its env only
    env = git_env()
    env["MLFLOW_TRACKING_URI"] = mlflow_server
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "--scale",
            "smoke",
            "train",
            "--paper",
            "egfn",
            "--experiment",
            "hypergrid",
            "--method",
            "tb",
            "--seed",
            "0",
        ],
        cwd=ws,
        env=env,
        check=True,
        capture_output=True,
    )
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("rl-repro/egfn")
    runs = client.search_runs([exp.experiment_id], "tags.`rlrepro.live` = 'true'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["method"] == "tb" and run.data.tags["scale"] == "smoke"
    curve_rows = (ws / "results/smoke/egfn/hypergrid/tb/seed0/curve.csv").read_text().strip().splitlines()[1:]
    assert len(client.get_metric_history(run.info.run_id, "exact_tv")) == len(curve_rows)
