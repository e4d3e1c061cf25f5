"""The cluster path for real: a one-node Slurm (tools/slurm/local-cluster.sh), sharded sweeps as array tasks, a
cancelled shard resubmitted, and DDP training under Slurm requeued mid-run.

Marked ``slurm``. They need root (to apt-install slurm-wlm and munge) or both already installed; elsewhere they skip
with the reason, except when CI is set, where they must run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from hydra.utils import instantiate

import edit
from tests.conftest import ROOT, compose_config

pytestmark = pytest.mark.slurm

SCRIPT = ROOT / "tools" / "slurm" / "local-cluster.sh"
PORTS = {"COMPLEXFACE_SLURMCTLD_PORT": "16817", "COMPLEXFACE_SLURMD_PORT": "16818"}  # apart from a user's cluster
LAUNCHER = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
            "hydra.launcher.timeout_min=15"]
EDITS = ["expression=custom", "expression.edits=[AU4:3,AU6+AU12:3+3,AU1+AU2:3+3]", "logger=none", "workers=1",
         "progress=false"]


def _installable() -> str:
    """Why the cluster cannot come up here ('' when it can)."""
    if all(shutil.which(t) for t in ("slurmctld", "slurmd", "munged")):
        return ""
    if os.geteuid() == 0 and shutil.which("apt-get"):
        return ""
    return "Slurm tests need slurm-wlm and munge installed, or root to apt-install them (CI runs them)"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A one-node cluster in a temp dir for this module; torn down however the tests end. Yields the env to use."""
    reason = _installable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm")
    # jobs inherit this env: not the W&B service of this test process (a requeued job would find its old run there)
    inherited = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    env = {**inherited, **PORTS, "COMPLEXFACE_SLURM_DIR": str(state), "SLURM_CONF": str(state / "slurm.conf"),
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    try:
        up = subprocess.run([str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=900)
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        down = subprocess.run([str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert not subprocess.run(["pgrep", "-f", f"slurmctld.*{state}"], capture_output=True).stdout


def slurm(env: dict[str, str], *args: str) -> str:
    return subprocess.run(list(args), env=env, capture_output=True, text=True, check=True, timeout=60).stdout


def wait_for(condition, timeout: float, what: str, interval: float = 0.1) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def test_the_local_cluster_comes_up_with_this_machines_cores(cluster):
    node = slurm(cluster, "sinfo", "-h", "-o", "%T %c %P").split()
    assert node[0] in ("idle", "mixed") and int(node[1]) == os.cpu_count() and node[2] == "debug*"
    out = slurm(cluster, "srun", "-n", "2", "-c", "1", "--mem=100M", "printenv", "SLURM_PROCID")
    assert sorted(out.split()) == ["0", "1"]


def records_of(run_dir: Path) -> list[dict]:
    path = run_dir / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def complete(run_dir: Path) -> bool:
    path = run_dir / "run.json"
    return path.exists() and json.loads(path.read_text())["complete"]


def test_a_sharded_sweep_runs_as_array_tasks_resumes_a_cancelled_shard_and_merges_to_the_single_run(
        cluster, tmp_path):
    sweep = tmp_path / "sweep"
    command = [sys.executable, "edit.py", "-m", *LAUNCHER, "faceset.num_shards=4", *EDITS,
               f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=shard${faceset.shard}"]
    log = open(tmp_path / "launcher.log", "w")
    launcher = subprocess.Popen([*command, "faceset.shard=range(0,4)"], cwd=ROOT, env=cluster, stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        # cancel shard 2 once it has finished its first face (3 records) and before it finishes its last
        shard2 = sweep / "shard2"
        wait_for(lambda: len(records_of(shard2)) >= 3, 300, "shard 2 to finish a face")
        jobs = slurm(cluster, "squeue", "-h", "-o", "%i %K").split("\n")
        (task,) = [line.split()[0] for line in jobs if line.endswith(" 2")]
        # a plain scancel sends SIGTERM, which submitit lets pass, and kills after KillWait; SIGINT stops the
        # work at once, wherever it is, and the cancel ends the task
        slurm(cluster, "scancel", "--signal=INT", task)
        slurm(cluster, "scancel", task)
        for i in (0, 1, 3):
            wait_for(lambda i=i: complete(sweep / f"shard{i}"), 300, f"shard {i}")
    finally:
        launcher.kill()  # it waits on the cancelled task (a cluster without accounting cannot say it ended)
        launcher.wait()
        log.close()
    wait_for(lambda: not slurm(cluster, "squeue", "-h").strip(), 60, "the queue to empty")
    before = records_of(shard2)
    faces_before = {r["face_id"] for r in before}
    assert 3 <= len(before) < 15, "shard 2 finished before it was cancelled"
    evaluate_cmd = [sys.executable, "evaluate.py", f"input={sweep}", "logger=none", "progress=false"]
    partial = subprocess.run([*evaluate_cmd, f"hydra.run.dir={tmp_path / 'partial'}"], cwd=ROOT, env=cluster,
                             capture_output=True, text=True, timeout=300)
    assert partial.returncode == 0, partial.stderr[-2000:]
    assert f"shard 2 ({shard2}) is incomplete: {len(before)} of 15 items" in partial.stderr
    runs = pd.read_csv(tmp_path / "partial" / "runs.csv")
    assert runs["complete"].tolist() == [True, True, False, True] and runs["faces"].sum() == 20

    crops = {p: p.stat().st_mtime_ns for p in (shard2 / "crops").rglob("*.png")}
    again = subprocess.run([*command, "faceset.shard=2"], cwd=ROOT, env=cluster, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:]
    after = records_of(shard2)
    assert after[:len(before)] == before  # nothing recomputed: the finished faces keep their records and crops
    assert not faces_before & {r["face_id"] for r in after[len(before):]}
    assert all(p.stat().st_mtime_ns == t for p, t in crops.items() if p.parent.name in faces_before)
    assert len(after) == 15 and complete(shard2)

    merged = subprocess.run([*evaluate_cmd, f"hydra.run.dir={tmp_path / 'merged'}"], cwd=ROOT, env=cluster,
                            capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0 and "incomplete" not in merged.stderr, merged.stderr[-2000:]
    single = tmp_path / "single"
    edit.edit(compose_config("edit", EDITS), single)
    ours, theirs = pd.read_csv(tmp_path / "merged" / "metrics.csv"), pd.read_csv(single / "metrics.csv")
    assert len(ours) == 60 and ours["status"].eq("ok").all()
    pd.testing.assert_frame_equal(ours, theirs)  # same edits, same numbers
    assert "Runs merged" in (tmp_path / "merged" / "report.html").read_text()


def processes_of(sweep: Path) -> set[str]:
    """Pids of the submitit tasks running a job of ``sweep``."""
    found = subprocess.run(["pgrep", "-f", f"submitit.core._submit {sweep}/"], capture_output=True, text=True)
    return set(found.stdout.split())


def ended_late(pids: set[str]) -> bool:
    """Whether one of ``pids`` or a W&B service it started (``wandb-core --pid PID``) still runs."""
    services = subprocess.run(["pgrep", "-af", "wandb-core"], capture_output=True, text=True).stdout
    return any(Path(f"/proc/{pid}").exists() or f"--pid {pid}\n" in services + "\n" for pid in pids)


def job_state(env: dict[str, str], job: str) -> dict[str, str]:
    fields = slurm(env, "scontrol", "show", "job", job).split()
    return dict(f.split("=", 1) for f in fields if "=" in f)


@pytest.mark.slow
def test_ddp_training_under_slurm_requeued_mid_run_resumes_and_scores_like_one_process(
        cluster, catalog_dataset, tmp_path):
    import lightning as L

    sweep = tmp_path / "train"
    overrides = [f"data.root={catalog_dataset}", "data.language=en", "data.batch_size=8", "threads=1",
                 "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
                 "trainer.log_every_n_steps=1"]
    command = [sys.executable, "train.py", "-m", *LAUNCHER, "hydra.launcher.tasks_per_node=2",
               "hydra.launcher.mem_gb=4", *overrides, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
               "trainer.max_epochs=4", "train_logger=wandb", f"hydra.sweep.dir={sweep}"]
    log = open(tmp_path / "launcher.log", "w")
    launcher = subprocess.Popen(command, cwd=ROOT, env=cluster, stdout=log, stderr=subprocess.STDOUT)
    run_dir = sweep / "0"
    try:
        # preempt it (Slurm requeues a preempted job: kill, then start again) once the first epoch is saved
        # (checkpoints are renamed into place whole, so an existing last.ckpt is a complete one)
        wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").exists(), 300, "the first epoch")
        (job,) = slurm(cluster, "squeue", "-h", "-o", "%i").split()
        old = processes_of(sweep)
        assert len(old) >= 2  # the two tasks
        slurm(cluster, "scontrol", "requeue", job)
        wait_for(lambda: job_state(cluster, job)["JobState"] == "PENDING", 60, "the requeued job to be pending")
        # the sandbox's process tracking ends a killed step late: let the old tasks (and their W&B service) end, as a
        # node's cleanup would, before the job starts again on the same master port
        wait_for(lambda: not ended_late(old), 180, "the preempted tasks to end", interval=0.5)
        slurm(cluster, "scontrol", "update", f"JobId={job}", "StartTime=now")  # skip Slurm's 2-minute requeue hold
        launcher.wait(timeout=360)  # about 70 s here; a failed job must not hold CI for long
    finally:
        launcher.kill()
        log.close()
    assert launcher.returncode == 0, (tmp_path / "launcher.log").read_text()[-3000:]
    assert job_state(cluster, job)["Restarts"] == "1"
    logs = {p.name: p.read_text() for p in (sweep / ".submitit" / job).glob("*_log.err")}
    rank1 = logs[f"{job}_1_log.err"]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in rank1 and "SLURM auto-requeueing enabled" in rank1  # Slurm's ranks
    assert f"Restored all states from the checkpoint at {run_dir / 'checkpoints' / 'last.ckpt'}" in \
        logs[f"{job}_0_log.err"]
    run_id = (run_dir / "wandb_run_id.txt").read_text()
    segments = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(segments) == 2 and all(p.name.endswith(run_id) for p in segments)  # one W&B run, two segments

    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg = compose_config("train", overrides)
    datamodule = instantiate(cfg.data, _convert_="all")
    module = instantiate(cfg.model, _convert_="all")
    module.load_state_dict(torch.load(metrics["best_checkpoint"], weights_only=False)["state_dict"])
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                       default_root_dir=str(tmp_path)).test(module, datamodule=datamodule, verbose=False)[0]
    curves = next(v for k, v in torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)["callbacks"].items()
                  if k.startswith("TrainingCurves"))["history"]  # one history across both segments
    assert [row["epoch"] for row in curves] == [0, 1, 2, 3]
    assert curves[-1]["step"] == metrics["global_step"] == 4 * curves[0]["step"] > 0
    for name in single:
        assert metrics[name] == pytest.approx(single[name], abs=1e-5), name
