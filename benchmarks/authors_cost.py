"""The cost per image of the paper authors' ImageNet64 and FFHQ256 networks on this machine:
the BENCHMARKS.md table "The authors' checkpoints: cost per image".

The architecture is theirs (``models.authors.authors_config``) with random initial weights: the
cost does not depend on the weights. At batch 1, per configuration:

- ``one-call``: ``sampling.mmse`` (one network call at σ = 100), on the authors' strided motion
  blur (``motion-blur-folded-spectrum``), a random ``matrix`` and ``inpaint-patches``;
- ``dpm15``: ``sampling.posterior(solver="dpmpp2m", steps=15)``: 15 denoiser evaluations (one per
  step, the last step to σ = 0 included);
- ``heun63``: ``sampling.posterior(solver="heun", steps=32)``: 2·32 − 1 = 63 evaluations;

both posteriors on the motion blur. A class-conditional configuration (ImageNet64: 1,000 classes +
the null class) is run with class 207 alone (one network call per evaluation) and with class 207
and classifier-free guidance ``cfg = 2.0``, as the authors sample it (two calls per evaluation:
the class and the null class). The "network calls" column is counted (``sampling.NFECounter``
around the network), not derived. ``y = op.measure(x, seed=0)`` for a random ``x`` in [-1, 1].

Seconds per image: the median of N repeats (default 3 for one call, 1 for a posterior) of the
wall-clock (``time.perf_counter``) of the sampling call under ``torch.inference_mode()``, after one
untimed warm-up call per operator. Each configuration runs in a fresh process
(``--worker CONFIG``); its peak resident memory (``ru_maxrss``) is read after importing torch,
right after building the model (weights) and at the end (weights + activations + workspace).
With ``--device cuda`` the table adds ``torch.cuda.max_memory_allocated``.

The issue's targets: ImageNet64 at batch 1 on the 2-core CPU, one call ≤ 2 s and the 15-call
posterior ≤ 30 s. Each is printed as met or missed (for the unguided rows, whose call counts the
targets name, and for the CFG rows, at twice the calls); if one is missed, where one ImageNet64
network call spends its time: a timing of its parts (FDL, the rest of attention, feed-forward,
everything else) and ``torch.profiler``'s top 8 operators by self CPU time.

A posterior whose one-call time × network calls × repeats would exceed ``--budget-s`` (default
1,200 s) is measured with fewer repeats, or, if a single run would exceed it, given as one call ×
network calls and labelled "extrapolated", never as a measurement.

    python benchmarks/authors_cost.py --json benchmarks/results/authors-cost.json > benchmarks/results/authors-cost.md
    python benchmarks/authors_cost.py --configs imagenet64 --methods one-call dpm15 --repeats 5 1
    python benchmarks/authors_cost.py --configs my-config.json --threads 1   # their hyperparams entry as JSON
    python benchmarks/authors_cost.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("one-call", "dpm15", "heun63")
POSTERIORS = {"dpm15": ("dpmpp2m", 15), "heun63": ("heun", 32)}  # method → (solver, steps)
OPERATORS = ("motion-blur-folded-spectrum", "matrix", "inpaint-patches")
POSTERIOR_OPERATOR = OPERATORS[0]
CLASS_LABEL, CFG = 207, 2.0
TARGETS = (  # (config, method, seconds, what)
    ("imagenet64", "one-call", 2.0, "one call ≤ 2 s"),
    ("imagenet64", "dpm15", 30.0, "15-call posterior ≤ 30 s"),
)
RESULT = "AUTHORS-COST-RESULT "
TITLE = "The authors' checkpoints: cost per image"


def mib_rss() -> float:
    """This process's peak resident set so far, MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def config_name(config: str) -> str:
    return Path(config).stem if config.lower().endswith(".json") else config


# ----------------------------------------------------------------------------------------------
# Worker: one configuration in this (fresh) process.


def build(config: str, device: str):
    from invfussion import models
    from invfussion.models.authors import authors_config

    spec: str | dict = config
    preset, overrides = authors_config(spec)
    net = models.build(preset, "invfussion", **overrides).eval().requires_grad_(False)
    return net.to(device), overrides


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(fn, repeats: int, device: str) -> list[float]:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def run_worker(args) -> dict:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from invfussion import degradations as deg
    from invfussion import sampling

    rss_import = mib_rss()
    cuda = args.device.startswith("cuda")
    net, overrides = build(args.worker, args.device)
    rss_built = mib_rss()
    if cuda:
        torch.cuda.synchronize()
        cuda_built = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    resolution, channels = overrides["img_resolution"], overrides["img_channels"]
    num_classes = overrides["num_classes"]
    guidances = [(None, None)]
    if num_classes:
        label = min(CLASS_LABEL, num_classes - 1)
        guidances = [(label, None), (label, CFG)]
    counter = sampling.NFECounter(net)
    one_repeats, post_repeats = args.repeats

    operators = {}
    methods = [m for m in METHODS if m in args.methods]
    wanted = OPERATORS if "one-call" in methods else (POSTERIOR_OPERATOR,)
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(1, channels, resolution, resolution, generator=gen) * 2 - 1).to(args.device)
    for spec in wanted:
        op = deg.from_spec(spec, image_shape=(channels, resolution, resolution), batch=1, seed=0, device=args.device)
        operators[spec] = (op, op.measure(x, seed=0))

    rows, per_call = [], {}
    with torch.inference_mode():
        for spec, (op, y) in operators.items():  # untimed warm-up, one network call per operator
            sampling.mmse(net, op, y)
        for label, cfg in guidances:
            labels = None if label is None else torch.tensor([label], device=args.device)
            for method in methods:
                specs = OPERATORS if method == "one-call" else (POSTERIOR_OPERATOR,)
                for spec in specs:
                    op, y = operators[spec]
                    if method == "one-call":
                        steps, evaluations, repeats = None, 1, one_repeats

                        def call(op=op, y=y, labels=labels, cfg=cfg):
                            return sampling.mmse(counter, op, y, class_labels=labels, cfg=cfg)
                    else:
                        solver, steps = POSTERIORS[method]
                        evaluations = steps if solver == "dpmpp2m" else 2 * steps - 1
                        repeats = post_repeats

                        def call(op=op, y=y, labels=labels, cfg=cfg, solver=solver, steps=steps):
                            return sampling.posterior(counter, op, y, steps=steps, solver=solver,
                                                      class_labels=labels, cfg=cfg, seed=0)
                    calls_expected = evaluations * (1 if cfg is None else 2)
                    row = {"config": config_name(args.worker), "method": method, "operator": spec,
                           "class_label": label, "cfg": cfg, "steps": steps, "evaluations": evaluations}
                    known = per_call.get((label, cfg))
                    predicted = None if known is None else known * calls_expected
                    if method != "one-call" and predicted is not None and predicted > args.budget_s:
                        row.update(extrapolated=True, network_calls=calls_expected, repeats=0, times=[],
                                   seconds=predicted, seconds_per_call=known, load_average=os.getloadavg()[0])
                        print(f"[{row['config']}] {method} {label}/{cfg}: extrapolated {predicted:.0f} s "
                              f"(> budget {args.budget_s:.0f} s)", file=sys.stderr, flush=True)
                        rows.append(row)
                        continue
                    if predicted is not None and predicted * repeats > args.budget_s:
                        repeats = max(1, int(args.budget_s // predicted))
                    counter.reset()
                    times = measure(call, repeats, args.device)
                    calls = counter.nfe // repeats
                    seconds = statistics.median(times)
                    if method == "one-call" and spec == POSTERIOR_OPERATOR:
                        per_call[(label, cfg)] = seconds / calls
                    row.update(extrapolated=False, network_calls=calls, repeats=repeats, times=times,
                               seconds=seconds, seconds_per_call=seconds / calls, rss_so_far_mib=mib_rss(),
                               load_average=os.getloadavg()[0])
                    if calls != calls_expected:
                        raise RuntimeError(f"{method}: counted {calls} network calls, expected {calls_expected}")
                    print(f"[{row['config']}] {method} {spec} class={label} cfg={cfg}: {seconds:.2f} s, "
                          f"{calls} calls", file=sys.stderr, flush=True)
                    rows.append(row)
    params = sum(p.numel() for p in net.parameters())
    weight_bytes = sum(t.numel() * t.element_size() for t in [*net.parameters(), *net.buffers()])
    memory = {"config": config_name(args.worker), "parameters": params, "weights_mib": weight_bytes / 2**20,
              "rss_import_mib": rss_import, "rss_built_mib": rss_built, "rss_peak_mib": mib_rss()}
    if cuda:
        memory.update(cuda_built_mib=cuda_built, cuda_peak_mib=torch.cuda.max_memory_allocated() / 2**20)
    return {"rows": rows, "memory": memory, "threads": torch.get_num_threads()}


def run_breakdown(args) -> dict:
    """Where one network call (motion blur, first guidance's class, no CFG) spends its time."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    if args.threads:
        torch.set_num_threads(args.threads)
    from invfussion import degradations as deg
    from invfussion import sampling
    from invfussion.models.hdit import FeedForwardBlock, SelfAttentionBlock
    from invfussion.models.invfussion import FeatureDegradationLayer

    net, overrides = build(args.breakdown, args.device)
    resolution, channels = overrides["img_resolution"], overrides["img_channels"]
    label = min(CLASS_LABEL, overrides["num_classes"] - 1) if overrides["num_classes"] else None
    labels = None if label is None else torch.tensor([label], device=args.device)
    op = deg.from_spec(POSTERIOR_OPERATOR, image_shape=(channels, resolution, resolution), batch=1, seed=0,
                       device=args.device)
    x = (torch.rand(1, channels, resolution, resolution, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    y = op.measure(x.to(args.device), seed=0)

    parts = {"fdl": 0.0, "attention": 0.0, "ff": 0.0}
    started: dict[int, float] = {}

    def kind(module):
        if isinstance(module, FeatureDegradationLayer):
            return "fdl"
        if isinstance(module, SelfAttentionBlock):
            return "attention"
        return "ff" if isinstance(module, FeedForwardBlock) else None

    def pre(module, _inputs):
        sync(args.device)
        started[id(module)] = time.perf_counter()

    def post(module, _inputs, _output):
        sync(args.device)
        parts[kind(module)] += time.perf_counter() - started.pop(id(module))

    handles = []
    for module in net.modules():
        if kind(module):
            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    one_repeats = args.repeats[0]
    with torch.inference_mode():
        sampling.mmse(net, op, y, class_labels=labels)  # warm-up
        samples = []
        for _ in range(one_repeats):
            for key in parts:
                parts[key] = 0.0
            sync(args.device)
            start = time.perf_counter()
            sampling.mmse(net, op, y, class_labels=labels)
            sync(args.device)
            total = time.perf_counter() - start
            samples.append({"total": total, "fdl": parts["fdl"], "attention_without_fdl": parts["attention"] - parts["fdl"],
                            "feed_forward": parts["ff"], "rest": total - parts["attention"] - parts["ff"]})
        for handle in handles:
            handle.remove()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            sampling.mmse(net, op, y, class_labels=labels)
    median = {key: statistics.median(s[key] for s in samples) for key in samples[0]}
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    profiled_total = sum(e.self_cpu_time_total for e in events) / 1e6
    top = [{"name": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6, "calls": e.count} for e in events[:8]]
    return {"config": config_name(args.breakdown), "class_label": label, "operator": POSTERIOR_OPERATOR,
            "repeats": one_repeats, "load_average": os.getloadavg()[0], "parts_s": median, "profiled_self_cpu_s": profiled_total, "top_ops": top}


# ----------------------------------------------------------------------------------------------
# Parent: one worker per configuration, then the tables.


def machine(threads: int, device: str) -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "threads": threads,
            "device": device, "python": platform.python_version()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def git_state() -> dict:
    def git(*cmd):
        return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        tree = "dirty (uncommitted changes to tracked files)"
    elif git("status", "--porcelain"):
        tree = "clean tracked files, untracked files present"
    else:
        tree = "clean"
    return {"commit": commit, "tree": tree}


def worker_command(args, flag: str, config: str) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), flag, config, "--device", args.device,
               "--methods", *args.methods, "--repeats", *map(str, args.repeats), "--budget-s", str(args.budget_s)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    return command


def call_worker(command: list[str]) -> dict:
    run = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if run.returncode != 0:
        raise SystemExit(f"worker {' '.join(command[2:4])} failed (exit {run.returncode}); see its stderr above.")
    lines = [line for line in run.stdout.splitlines() if line.startswith(RESULT)]
    return json.loads(lines[-1][len(RESULT):])


def seconds_text(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 100 else f"{seconds:.1f}" if seconds >= 10 else f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds:.3f}"


def guidance_text(row: dict) -> str:
    if row["class_label"] is None:
        return "—"
    return f"class {row['class_label']}" + ("" if row["cfg"] is None else f", CFG {row['cfg']:g}")


def targets(rows: list[dict]) -> list[dict]:
    verdicts = []
    for config, method, limit, what in TARGETS:
        for row in rows:
            if row["config"] == config and row["method"] == method and row["operator"] == POSTERIOR_OPERATOR:
                verdicts.append({"target": what, "config": config, "method": method, "limit_s": limit,
                                 "guidance": guidance_text(row), "network_calls": row["network_calls"],
                                 "seconds": row["seconds"], "extrapolated": row["extrapolated"],
                                 "met": row["seconds"] <= limit})
    return verdicts


def print_report(info: dict, git: dict, command: str, rows: list[dict], memory: list[dict],
                 verdicts: list[dict], breakdown: dict | None) -> None:
    cuda = any("cuda_peak_mib" in m for m in memory)
    print(f"### {TITLE}\n")
    gpu = f" ({info['gpu']})" if "gpu" in info else ""
    print(f"Machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']}, {info['threads']} torch "
          f"threads, device {info['device']}{gpu}; load average at start {info['load_average_start'][0]:.2f}, "
          f"at end {info['load_average_end'][0]:.2f} (1 min).  ")
    print(f"Code: commit {git['commit']}, {git['tree']}.  ")
    print(f"Command: `{command}`  ")
    print("Random weights (cost does not depend on them), batch 1, float32, `torch.inference_mode()`; "
          "seconds per image = median of the repeats after one untimed warm-up call per operator; "
          "load = the machine's 1-minute load average when the row finished (above the core count, "
          "other processes were competing for the CPU and the row is slower than on an idle machine).\n")
    print("| config | method | operator | class / CFG | steps | evaluations | network calls (counted) "
          "| s / image | s / network call | repeats | load |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        seconds = seconds_text(r["seconds"]) if not r["extrapolated"] else f"≈ {seconds_text(r['seconds'])} (extrapolated: one call × calls, not measured)"
        repeats = str(r["repeats"]) if not r["extrapolated"] else "0"
        steps = "—" if r["steps"] is None else str(r["steps"])
        print(f"| {r['config']} | {r['method']} | {r['operator']} | {guidance_text(r)} | {steps} | {r['evaluations']} "
              f"| {r['network_calls']} | {seconds} | {r['seconds_per_call']:.3f} | {repeats} | {r['load_average']:.1f} |")
    print("\nPeak resident memory (`ru_maxrss`), one fresh process per configuration (MiB): after importing "
          "torch, right after building the model, and at the end of all its rows.\n")
    head = "| config | parameters | weights (fp32) | RSS after import | RSS after build | peak RSS | peak − after build |"
    print(head + (" CUDA allocated after build | CUDA peak allocated |" if cuda else ""))
    print("|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if cuda else ""))
    for m in memory:
        line = (f"| {m['config']} | {m['parameters'] / 1e6:.1f} M | {m['weights_mib']:.0f} | {m['rss_import_mib']:.0f} "
                f"| {m['rss_built_mib']:.0f} | {m['rss_peak_mib']:.0f} | {m['rss_peak_mib'] - m['rss_built_mib']:.0f} |")
        if cuda:
            line += f" {m.get('cuda_built_mib', float('nan')):.0f} | {m.get('cuda_peak_mib', float('nan')):.0f} |"
        print(line)
    if verdicts:
        print("\nTargets (ImageNet64, batch 1, the 2-core CPU; motion blur):\n")
        for v in verdicts:
            state = "met" if v["met"] else "missed"
            note = " (extrapolated)" if v["extrapolated"] else ""
            calls = f"{v['network_calls']} network call" + ("s" if v["network_calls"] != 1 else "")
            print(f"- {v['target']}, {v['guidance']} ({calls}): "
                  f"{seconds_text(v['seconds'])} s{note} — **{state}**")
    if breakdown:
        p = breakdown["parts_s"]
        print(f"\nWhere one {breakdown['config']} network call spends its time ({breakdown['operator']}, "
              f"class {breakdown['class_label']}, no CFG; median of {breakdown['repeats']}, forward hooks; "
              f"load {breakdown['load_average']:.1f}):\n")
        print("| part | s | share |")
        print("|---|---:|---:|")
        names = {"fdl": "FDL (feature degradation layers, operator on features)",
                 "attention_without_fdl": "attention without FDL (norms, QKV, joint K/V, attention, out)",
                 "feed_forward": "feed-forward", "rest": "rest (mapping, patching, merges/splits, A⁺y, preconditioning)"}
        for key, name in names.items():
            print(f"| {name} | {p[key]:.3f} | {p[key] / p['total']:.0%} |")
        print(f"| total | {p['total']:.3f} | 100% |")
        print(f"\n`torch.profiler`, one call, top 8 operators by self CPU time "
              f"(all operators: {breakdown['profiled_self_cpu_s']:.3f} s self CPU):\n")
        print("| operator | self CPU s | calls |")
        print("|---|---:|---:|")
        for op in breakdown["top_ops"]:
            print(f"| `{op['name']}` | {op['self_cpu_s']:.3f} | {op['calls']} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["imagenet64", "ffhq256"],
                        help="authors' configurations: imagenet64, ffhq256, ffhq64, or a JSON file of their hyperparams entry")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--repeats", nargs="+", type=int, default=[3, 1], metavar="N",
                        help="repeats for one call, then for the posteriors (one value: both); default 3 1")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget-s", type=float, default=1200.0,
                        help="a posterior predicted (one call × calls) above this is extrapolated, not run")
    parser.add_argument("--breakdown", nargs="?", const="imagenet64", default=None, metavar="CONFIG",
                        help="print the time breakdown of one call of CONFIG even if the targets are met")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--breakdown-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if len(args.repeats) == 1:
        args.repeats = args.repeats * 2
    if len(args.repeats) != 2 or min(args.repeats) < 1:
        parser.error("--repeats takes one or two positive counts (one call, posteriors)")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available here")

    if args.worker:
        print(RESULT + json.dumps(run_worker(args)), flush=True)
        return
    if args.breakdown_worker:
        args.breakdown = args.breakdown_worker
        print(RESULT + json.dumps(run_breakdown(args)), flush=True)
        return

    import torch

    command = "python benchmarks/authors_cost.py" + ("" if argv is None and len(sys.argv) == 1 else " " + " ".join(sys.argv[1:] if argv is None else argv))
    git = git_state()
    load_start = os.getloadavg()
    rows, memory, threads = [], [], None
    for config in args.configs:
        result = call_worker(worker_command(args, "--worker", config))
        rows += result["rows"]
        memory.append(result["memory"])
        threads = result["threads"]
    info = machine(threads or args.threads or torch.get_num_threads(), args.device)
    info["load_average_start"] = load_start
    verdicts = targets(rows)
    breakdown = None
    which = args.breakdown
    if which is None and any(not v["met"] for v in verdicts):
        which = "imagenet64"
    if which:
        breakdown = call_worker(worker_command(args, "--breakdown-worker", which))
    info["load_average_end"] = os.getloadavg()
    print_report(info, git, command, rows, memory, verdicts, breakdown)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"title": TITLE, "command": command, "machine": info, "git": git,
                                         "rows": rows, "memory": memory, "targets": verdicts,
                                         "breakdown": breakdown}, indent=2) + "\n")


if __name__ == "__main__":
    main()
