"""Proof that our network computes what the paper authors' network computes (issue 26).

    python tools/authors_parity.py PATH/TO/InvFusion [--commit SHA] [--out tests/models/data/authors]

PATH is a checkout of github.com/noamelata/InvFusion (their code is imported from there, never
copied into this repository; it needs ``einops``, ``scipy`` and ``pillow``). The script

1. builds their ``Precond(HDiT)`` for two reduced configurations written in their
   ``hyperparams.py`` layout — ``tiny-imagenet`` (class-conditional, a neighbourhood level and a
   global level, every level with an FDL) and ``tiny-ffhq256`` (neighbourhood 5 and 3, then a
   global level without an FDL, as FFHQ256's innermost) — with seeded random weights (every
   parameter non-zero, including those they initialise to zero);
2. saves each state in their file layout: ``tiny-imagenet.pt`` as a training-state file as their
   ``CheckpointIO`` writes it (``state`` as their ``dnnlib.util.EasyDict``, ``net``, ``ema``),
   ``tiny-ffhq256.pt`` as an EMA-only file (``{"ema": state}``);
3. runs their network on fixed inputs for each of their operator families (random matrix with
   2..16 rows, patch in-painting, strided motion blur with a stand-in kernel draw, see
   :class:`ShakeKernel`), their zero operator, no operator at all, with and without a
   class label and with classifier-free guidance (their ``ref.lerp(cond, w)``), and records the
   inputs, the operators' parameters, ``y = H(x)``, ``H_pinv(y)`` and the outputs in
   ``cases.safetensors`` + ``cases.json``;
4. lists the tensor names and shapes of their full ``ImageNet64`` and ``FFHQ256`` networks
   (``keys-imagenet64.json``, ``keys-ffhq256.json``).

Finally it imports the saved files with our restricted reader, recomputes every recorded tensor
with our network and operators (:func:`ours_against_theirs`) and prints the largest relative
differences (the table quoted in BENCHMARKS.md). ``tests/models/test_authors_parity.py`` runs the
same comparison on the committed fixture and asserts that every difference is at float tolerance.

NATTEN (their neighbourhood attention kernels) ships CUDA builds only; where it does not import,
``natten.functional.na2d_qk`` / ``na2d_av`` are replaced by a gather-based reference of NATTEN's
window rule (a window of ``kernel`` keys centred on the query, shifted inward at the borders),
written here independently of our mask-based attention. The script prints which was used.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

TINY = {
    "tiny-imagenet": {
        "patch_size": [2, 2], "depths": [1, 1], "widths": [24, 48], "joint": [True, True],
        "self_attns": [{"type": "neighborhood", "d_head": 8, "kernel_size": 5}, {"type": "global", "d_head": 8}],
        "mapping_width": 32, "img_resolution": 16, "img_channels": 3, "label_dim": 10,
    },
    "tiny-ffhq256": {
        "patch_size": [2, 2], "depths": [1, 1, 1], "widths": [24, 48, 48], "joint": [True, True, False],
        "self_attns": [{"type": "neighborhood", "d_head": 8, "kernel_size": 5},
                       {"type": "neighborhood", "d_head": 8, "kernel_size": 3}, {"type": "global", "d_head": 8}],
        "mapping_width": 32, "img_resolution": 32, "img_channels": 3, "label_dim": 0,
    },
}
MATRIX_ROWS = (2, 16)  # their Degradation(deg_dim=...): 2..16 rows keep the fixture small (default 2..128)
FULL = {"imagenet64": ("ImageNet64", 64, 1000), "ffhq256": ("FFHQ256", 256, 0)}
BATCH = 2
CFG_WEIGHT = 2.0


def natten_reference() -> types.ModuleType:
    """A stand-in ``natten`` module: 2-D neighbourhood attention by gathering each query's window."""

    def neighbours(n: int, kernel: int) -> torch.Tensor:  # (n, kernel) key indices along one axis
        start = (torch.arange(n) - kernel // 2).clamp(0, n - kernel)
        return start[:, None] + torch.arange(kernel)

    def window(h: int, w: int, kernel: int) -> torch.Tensor:  # (h, w, kernel²) flat key indices
        rows, cols = neighbours(h, kernel), neighbours(w, kernel)
        return (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(h, w, kernel * kernel)

    def na2d_qk(q, k, kernel_size):  # (B, nh, H, W, D) → (B, nh, H, W, kernel²)
        idx = window(q.shape[2], q.shape[3], kernel_size)
        keys = k.flatten(2, 3)[:, :, idx]
        return torch.einsum("bnxyd,bnxykd->bnxyk", q, keys)

    def na2d_av(a, v, kernel_size):  # (B, nh, H, W, kernel²), (B, nh, H, W, D) → (B, nh, H, W, D)
        idx = window(v.shape[2], v.shape[3], kernel_size)
        values = v.flatten(2, 3)[:, :, idx]
        return torch.einsum("bnxyk,bnxykd->bnxyd", a, values)

    module = types.ModuleType("natten")
    module.functional = types.SimpleNamespace(na2d_qk=na2d_qk, na2d_av=na2d_av)
    return module


class ShakeKernel:
    """Stand-in for their ``motionblur.Kernel``: it draws the path with line width
    ``int(diagonal / 150)``, which is 0 below ~53-pixel kernels, and Pillow ≥ 13 draws nothing at
    width 0, so the kernel is all zero and normalising it gives NaN. A fixed random positive
    ``kernelMatrix`` instead; everything their ``MotionBlur`` does after the draw (Gaussian
    smoothing, normalisation, spectra) is theirs."""

    def __init__(self, size: tuple[int, int], intensity: float, seed: int | None = None):
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        self.kernelMatrix = (torch.rand(size, generator=gen, dtype=torch.float64) ** 8).numpy()


def import_theirs(checkout: Path):
    sys.path.insert(0, str(checkout))
    import models.hdit as hdit  # noqa: E402  (theirs)

    natten = "installed"
    if hdit.natten is None:
        hdit.natten = natten_reference()
        natten = "reference (NATTEN not installed)"
    import degradation  # noqa: E402  (theirs)
    from models.hyperparams import dataset_hyperparams  # noqa: E402
    from torch_utils import dist  # noqa: E402
    from training.precond import Precond  # noqa: E402
    import dnnlib  # noqa: E402

    return types.SimpleNamespace(hdit=hdit, degradation=degradation, hyperparams=dataset_hyperparams,
                                 dist=dist, Precond=Precond, dnnlib=dnnlib, natten=natten)


def their_network(theirs, name: str, spec: dict, random_weights: bool = True) -> torch.nn.Module:
    layout = {k: v for k, v in spec.items() if k not in ("img_resolution", "img_channels", "label_dim")}
    theirs.hyperparams[name] = layout
    unet = theirs.hdit.HDiT(img_channels=spec["img_channels"], in_mult=2, img_resolution=spec["img_resolution"],
                            label_dim=spec["label_dim"], joint=True, data=name)
    net = theirs.Precond(unet, img_resolution=spec["img_resolution"], img_channels=spec["img_channels"],
                         label_dim=spec["label_dim"], use_fp16=False)
    if random_weights:
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for key, p in net.named_parameters():
                if key.endswith(".scale") and p.dim() == 1 and "norm" not in key:  # attention scales (≈10)
                    p.copy_(5 + 10 * torch.rand(p.shape, generator=gen))
                elif key.endswith(".fac"):
                    p.copy_(torch.rand(p.shape, generator=gen))
                elif key.endswith("norm.scale"):
                    p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
                else:
                    fan_in = p.shape[-1] if p.dim() > 1 else 1
                    p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)
    return net.eval()


def operators(theirs, shape: tuple[int, int, int, int]) -> dict:
    """Their four families on ``shape`` with fixed seeds, and the parameters that rebuild them."""
    deg = theirs.degradation
    cpu = torch.device("cpu")
    ops = {}
    gen = torch.Generator().manual_seed(3)
    matrix = deg.Degradation(shape, deg_dim=MATRIX_ROWS, device=cpu, generator=gen)
    ops["matrix"] = (matrix, {"matrix": matrix.deg_matrix})
    gen, gen_cpu = torch.Generator().manual_seed(4), torch.Generator().manual_seed(5)
    patches = deg.MissingPatches(shape, device=cpu, generator=gen, gen_cpu=gen_cpu)
    ops["patches"] = (patches, {"mask": patches.deg_mask[:, 0, 0]})
    captured = {}
    original = deg.SRConv.compute_fft_kernel

    def capture(self, kernel):  # their MotionBlur does not keep its spatial kernel: record it here
        captured["kernel"] = kernel.detach().clone()
        return original(self, kernel)

    deg.SRConv.compute_fft_kernel, their_kernel = capture, deg.Kernel
    deg.Kernel = ShakeKernel
    try:
        blur = deg.MotionBlur(shape, device=cpu, generator=torch.Generator().manual_seed(6),
                              gen_cpu=torch.Generator().manual_seed(7))
    finally:
        deg.SRConv.compute_fft_kernel, deg.Kernel = original, their_kernel
    ops["blur"] = (blur, {"kernel": captured["kernel"][:, 0], "stride": torch.tensor(blur.stride)})
    ops["zero"] = (deg.NoDegradation(shape, device=cpu), {})
    return ops


def record(theirs, name: str, spec: dict, out: Path) -> tuple[dict, dict]:
    torch.manual_seed(0)  # their FourierFeatures / MPFourier buffers
    net = their_network(theirs, name, spec)
    c, r, classes = spec["img_channels"], spec["img_resolution"], spec["label_dim"]
    shape = (BATCH, c, r, r)
    gen = torch.Generator().manual_seed(2)
    x0 = torch.rand(shape, generator=gen) * 2 - 1
    sigma = torch.tensor([0.7, 3.0])
    x_noisy = x0 + sigma[:, None, None, None] * torch.randn(shape, generator=gen)
    tensors = {"x0": x0, "x_noisy": x_noisy, "sigma": sigma}
    labels = torch.tensor([3, 7]) if classes else None
    meta: dict = {"config": spec, "cases": {}}
    with torch.no_grad():
        for family, (op, params) in operators(theirs, shape).items():
            y = op.H(x0) if family != "zero" else op.H(x0[:, None])  # (B, 1, M)
            op.ndim = 4
            pinv = op.H_pinv(y)
            tensors.update({f"{family}.y": y[:, 0].contiguous(), f"{family}.pinv": pinv.contiguous()})
            tensors.update({f"{family}.{k}": v.contiguous() for k, v in params.items()})
            for label_case in (("null", "class", "cfg") if classes else ("none",)):
                one_hot = None
                if label_case in ("class", "cfg"):
                    one_hot = torch.nn.functional.one_hot(labels, classes).float()
                out_t = net(x_noisy, sigma, op, y, class_labels=one_hot)
                if label_case == "cfg":
                    out_t = net(x_noisy, sigma, op, y).lerp(out_t, CFG_WEIGHT)
                tensors[f"{family}.{label_case}.out"] = out_t
                meta["cases"][f"{family}.{label_case}"] = {"family": family, "labels": label_case}
        for label_case in (("null", "class") if classes else ("none",)):
            one_hot = torch.nn.functional.one_hot(labels, classes).float() if label_case == "class" else None
            tensors[f"no-operator.{label_case}.out"] = net(x_noisy, sigma, None, None, class_labels=one_hot)
            meta["cases"][f"no-operator.{label_case}"] = {"family": None, "labels": label_case}
    if classes:
        tensors["labels"] = labels
    save_file({f"{name}/{k}": v.contiguous() for k, v in tensors.items()}, str(out / f"{name}.safetensors"))
    ema = net.state_dict()
    if spec["label_dim"]:  # a training-state file, as their CheckpointIO writes it
        state = theirs.dnnlib.EasyDict(cur_nimg=1 << 20, total_elapsed_time=1.0)
        theirs.dist.CheckpointIO(state=state, net=net, ema=types.SimpleNamespace(state_dict=lambda: ema)).save(
            str(out / f"{name}.pt"), verbose=False)
    else:
        torch.save({"ema": ema}, out / f"{name}.pt")
    return meta, {k: list(v.shape) for k, v in ema.items()}


def our_operator(family: str, t: dict[str, torch.Tensor]):
    """Our operator rebuilt from the parameters of their ``family`` recorded in ``t``."""
    from invfussion.degradations import FoldedSpectrumConvolution, MaskOperator, MatrixOperator, ZeroOperator

    batch, image_shape = t["x0"].shape[0], tuple(t["x0"].shape[1:])
    if family == "matrix":
        matrix = t["matrix.matrix"]
        rows = [int((m.abs().sum(1) > 0).sum()) for m in matrix]
        return MatrixOperator(image_shape, [m[:r] for m, r in zip(matrix, rows)], batch, matrix.shape[1])
    if family == "patches":
        return MaskOperator(image_shape, t["patches.mask"].bool())
    if family == "blur":
        return FoldedSpectrumConvolution(image_shape, t["blur.kernel"], int(t["blur.stride"]))
    return ZeroOperator(image_shape, batch)


def ours_against_theirs(fixture_dir: Path) -> dict[str, float]:
    """Import the recorded files with our reader and recompute every recorded tensor with our network
    and operators: ``{model/case: max |ours − theirs| / max |theirs|}``."""
    from safetensors.torch import load_file

    from invfussion.models.authors import load_authors, read_authors_file
    from invfussion.sampling.guidance import guided

    index = json.loads((fixture_dir / "cases.json").read_text(encoding="utf-8"))
    errors = {}

    def rel(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))

    for name, meta in sorted(index["models"].items()):
        net = load_authors(read_authors_file(fixture_dir / f"{name}.pt"), meta["config"])
        t = {k.split("/", 1)[1]: v for k, v in load_file(str(fixture_dir / f"{name}.safetensors")).items()}
        for family in ("matrix", "patches", "blur"):
            op = our_operator(family, t)
            errors[f"{name}/{family}.y"] = rel(op.A(t["x0"]), t[f"{family}.y"])
            errors[f"{name}/{family}.pinv"] = rel(op.pinv(t[f"{family}.y"]), t[f"{family}.pinv"])
        with torch.no_grad():
            for case, spec in meta["cases"].items():
                family, labels = spec["family"], spec["labels"]
                op = None if family is None else our_operator(family, t)
                y = None if op is None else op.A(t["x0"])
                class_labels = t["labels"] if labels in ("class", "cfg") else None
                denoiser = guided(net, class_labels, index["cfg_weight"] if labels == "cfg" else None)
                errors[f"{name}/{case}"] = rel(denoiser(t["x_noisy"], t["sigma"], op, y), t[f"{case}.out"])
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of github.com/noamelata/InvFusion")
    parser.add_argument("--commit", default=None, help="their commit (read from the checkout's git if omitted)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/models/data/authors")
    args = parser.parse_args()
    commit = args.commit or subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"],
                                           capture_output=True, text=True).stdout.strip()
    if not commit:
        parser.error("cannot read the checkout's commit; pass --commit")
    torch.set_num_threads(1)
    theirs = import_theirs(args.checkout)
    args.out.mkdir(parents=True, exist_ok=True)
    index = {"authors_commit": commit, "natten": theirs.natten, "cfg_weight": CFG_WEIGHT, "models": {}}
    for name, spec in TINY.items():
        meta, _ = record(theirs, name, spec, args.out)
        index["models"][name] = meta
        print(f"{name}: {len(meta['cases'])} cases recorded")
    for name, (entry, resolution, classes) in FULL.items():
        spec = dict(theirs.hyperparams[entry], img_resolution=resolution, img_channels=3, label_dim=classes)
        with torch.device("meta"):
            net = their_network(theirs, entry, spec, random_weights=False)
        shapes = {k: list(v.shape) for k, v in net.state_dict().items()}
        (args.out / f"keys-{name}.json").write_text(json.dumps(shapes, indent=1) + "\n", encoding="utf-8")
        print(f"{name}: {len(shapes)} tensors, {sum(torch.Size(s).numel() for s in shapes.values()) / 1e6:.1f}M values")
    (args.out / "cases.json").write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    print(f"authors' commit {commit}; NATTEN: {theirs.natten}; fixture in {args.out}")
    errors = ours_against_theirs(args.out)
    print("\n| recorded tensor | max relative difference, ours vs theirs |\n|---|---|")
    for key, value in errors.items():
        print(f"| {key} | {value:.1e} |")
    worst = max(errors, key=errors.get)
    print(f"\nlargest: {errors[worst]:.1e} ({worst}) over {len(errors)} tensors")


if __name__ == "__main__":
    main()
