"""Tests of genixer.runs.tracking against a sqlite store and a real local MLflow server."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf

from genixer.runs.tracking import (
    MAX_PARAM_VALUE_LENGTH,
    PARENT_RUN_TAG,
    SWEEP_ID_TAG,
    Tracker,
    default_tracking_uri,
    flatten,
)


def _tracker(tmp_path: Path, name: str = "exp") -> Tracker:
    return Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", name, str(tmp_path / "artifacts"))


def test_flatten_nested() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": {}}) == {
        "a.b": 1,
        "a.c.d": "x",
        "e": [1, 2],
        "f": {},
    }
    assert flatten({"x": 1}, prefix="p") == {"p.x": 1}


def test_default_tracking_uri(tmp_path: Path) -> None:
    assert default_tracking_uri(tmp_path) == "sqlite:///" + str((tmp_path / "mlflow.db").resolve())


def test_run_params_metrics_artifact(tmp_path: Path) -> None:
    tr = _tracker(tmp_path)
    run_id = tr.start_run("r1", tags={"kind": "unit"})
    cfg = OmegaConf.create(
        {
            "model": {"hidden": 64, "name": "${data.name}-llava"},
            "data": {"name": "toy", "sizes": [1, 2]},
            "long": "y" * (MAX_PARAM_VALUE_LENGTH + 50),
            "many": {f"k{i}": i for i in range(150)},  # more than one log_batch of params
        }
    )
    tr.log_params(run_id, cfg)
    tr.log_metrics(run_id, {"val": {"acc": 0.5, "ok": True, "note": "n/a"}, "loss": 1}, step=3)
    tr.log_metrics(run_id, {"loss": 0.5}, step=4)
    art = tmp_path / "samples.txt"
    art.write_text("hello")
    tr.log_artifact(run_id, art, artifact_path="out")
    tr.end_run(run_id)

    client = MlflowClient(tr.tracking_uri)
    run = client.get_run(run_id)
    p = run.data.params
    assert p["model.hidden"] == "64"
    assert p["model.name"] == "toy-llava"  # interpolation resolved
    assert p["data.sizes"] == "[1, 2]"
    assert len(p["long"]) == MAX_PARAM_VALUE_LENGTH
    assert p["many.k149"] == "149"
    assert run.data.metrics == {"val.acc": 0.5, "val.ok": 1.0, "loss": 0.5}
    hist = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in hist] == [(3, 1.0), (4, 0.5)]
    assert run.data.tags["kind"] == "unit"
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "r1"
    assert [f.path for f in client.list_artifacts(run_id, "out")] == ["out/samples.txt"]
    local = client.download_artifacts(run_id, "out/samples.txt", str(tmp_path / "dl"))
    assert Path(local).read_text() == "hello"
    assert run_id in tr.run_url_or_uri(run_id)
    assert "mlflow.db" in tr.run_url_or_uri(run_id)


def test_sweep_parent_and_children(tmp_path: Path) -> None:
    children = []
    for job in range(2):  # two jobs of one sweep, one after another, each with its own Tracker
        tr = _tracker(tmp_path, "sweep-exp")
        parent = tr.find_or_create_parent("sweep-exp", "2024-01-01_12-00-00")
        child = tr.start_run(f"job{job}", parent_run_id=parent)
        tr.log_metrics(child, {"acc": job / 2})
        tr.end_run(child)
        tr.end_run(parent)
        children.append((parent, child))
    assert children[0][0] == children[1][0]
    parent = children[0][0]

    tr = _tracker(tmp_path, "sweep-exp")
    other = tr.find_or_create_parent(None, "another-sweep")
    assert other != parent

    client = MlflowClient(tr.tracking_uri)
    runs = client.search_runs([tr.experiment_id])
    assert len(runs) == 4  # two parents, two children
    kids = [r for r in runs if r.data.tags.get(PARENT_RUN_TAG) == parent]
    assert sorted(r.info.run_name for r in kids) == ["job0", "job1"]
    assert client.get_run(parent).data.tags[SWEEP_ID_TAG] == "2024-01-01_12-00-00"


def test_failed_status(tmp_path: Path) -> None:
    tr = _tracker(tmp_path)
    run_id = tr.start_run("boom")
    tr.end_run(run_id, status="FAILED")
    assert MlflowClient(tr.tracking_uri).get_run(run_id).info.status == "FAILED"
    with pytest.raises(ValueError):
        tr.end_run(run_id, status="DONE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200 and resp.read().strip() == b"OK":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer OK within {timeout_s} s")


def test_real_http_server(tmp_path: Path) -> None:
    port = _free_port()
    log_file = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'srv.db'}",
            "--default-artifact-root",
            str(tmp_path / "art"),
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so its workers end with it
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(f"{uri}/health", proc)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}\n{(tmp_path / 'server.log').read_text()[-3000:]}") from exc
        tr = Tracker(uri, "http-exp")
        run_id = tr.start_run("over-http", tags={"via": "http"})
        tr.log_params(run_id, {"a": {"b": 2}})
        tr.log_metrics(run_id, {"m": 0.25}, step=1)
        art = tmp_path / "a.txt"
        art.write_text("over http")
        tr.log_artifact(run_id, art)
        tr.end_run(run_id)

        run = MlflowClient(uri).get_run(run_id)
        assert run.data.params == {"a.b": "2"}
        assert run.data.metrics == {"m": 0.25}
        assert run.data.tags["via"] == "http"
        assert run.info.status == "FINISHED"
        assert [f.path for f in MlflowClient(uri).list_artifacts(run_id)] == ["a.txt"]
        url = tr.run_url_or_uri(run_id)
        assert url == f"{uri}/#/experiments/{tr.experiment_id}/runs/{run_id}"

        # the pipeline itself, told to log to this server
        from tests.conftest import tiny_overrides

        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "genixer.run",
                *tiny_overrides(tmp_path),
                f"logger.tracking_uri={uri}",
                f"hydra.run.dir={tmp_path}/run",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert cli.returncode == 0, cli.stderr[-3000:]
        exp = MlflowClient(uri).get_experiment_by_name("genixer")
        (pipeline_run,) = MlflowClient(uri).search_runs([exp.experiment_id])
        assert pipeline_run.info.status == "FINISHED"
        assert "downstream.accuracy" in pipeline_run.data.metrics
        assert pipeline_run.data.params["generator.name"] == "genixer_l"
        names = {f.path for f in MlflowClient(uri).list_artifacts(pipeline_run.info.run_id)}
        assert "summary.json" in names
        assert not (tmp_path / "mlflow.db").exists()  # nothing went to the default store
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log_file.close()
