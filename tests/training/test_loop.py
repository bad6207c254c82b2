import json
import os

import pytest
import torch
from tiny_runs import TINY_MODEL, assert_same_tensors, checkpoint_tensors, tiny_config

from invfussion import data, models
from invfussion import degradations as deg
from invfussion.training import distributed
from invfussion.training.batches import StepBatches
from invfussion.training.losses import make_objective
from invfussion.training.loop import TrainConfig, Trainer, build_mixture, learning_rate, train


def logged(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_tiny_run_trains_and_its_loss_falls(tmp_path):
    final = train(tiny_config(tmp_path, steps=30, lr=2e-3, checkpoint_every=30, sample_every=30, sample_steps=2))
    losses = [r["loss"] for r in logged(tmp_path)]
    assert len(losses) == 6 and all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses
    assert final.name == "step-0000030.safetensors"
    assert (tmp_path / "samples" / "step-0000030.png").is_file()


def test_resume_equals_uninterrupted_bitwise(tmp_path):
    whole = train(tiny_config(tmp_path / "whole", steps=10))
    train(tiny_config(tmp_path / "split", steps=5))
    as_tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in tiny_config(tmp_path).overrides.items()}
    resumed = train(tiny_config(tmp_path / "split", steps=10, resume=True, overrides=as_tuples))
    assert_same_tensors(checkpoint_tensors(whole), checkpoint_tensors(resumed))
    a = json.loads(whole.with_suffix(".json").read_text())
    b = json.loads(resumed.with_suffix(".json").read_text())
    assert a["images_seen"] == b["images_seen"] == 80 and a["optimizer"] == b["optimizer"]


def test_existing_run_needs_resume_and_same_settings(tmp_path):
    train(tiny_config(tmp_path, steps=5))
    with pytest.raises(ValueError, match="--resume"):
        train(tiny_config(tmp_path, steps=10))
    with pytest.raises(ValueError, match="batch_size=8, not 4"):
        train(tiny_config(tmp_path, steps=10, batch_size=4, resume=True))


@pytest.mark.parametrize("conditioning,objective,classes", [
    ("unconditional", "diffusion", 0), ("palette", "mmse", 0), ("invfussion", "diffusion", 10),
])
def test_other_conditionings_and_objectives_train(tmp_path, conditioning, objective, classes):
    overrides = {**tiny_config(tmp_path).overrides, "num_classes": classes}
    final = train(tiny_config(tmp_path, steps=4, conditioning=conditioning, objective=objective, overrides=overrides,
                              sample_every=4, sample_steps=2, checkpoint_every=4))
    assert final.is_file() and (tmp_path / "samples" / "step-0000004.png").is_file()


def test_non_finite_gradients_skip_the_step(tmp_path):
    ctx = distributed.init("cpu")
    trainer = Trainer(tiny_config(tmp_path, steps=3), ctx)
    objective = trainer.objective
    trainer.objective = lambda net, batch: objective(net, batch) * (float("nan") if trainer.step == 1 else 1.0)
    batches = [trainer.batches[t] for t in range(3)]
    trainer._train_step(batches[0])
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    _, grad_norm = trainer._train_step(batches[1])
    assert not torch.isfinite(grad_norm)
    assert_same_tensors(before, trainer.net.state_dict())  # weights untouched by the NaN step
    assert int(trainer.optimizer.state_dict()["state"][0]["step"]) == 1  # Adam's count did not advance
    assert int(trainer.skipped) == 1
    trainer._train_step(batches[2])
    assert all(torch.isfinite(v).all() for v in trainer.net.state_dict().values())
    assert any(not torch.equal(before[k], v) for k, v in trainer.net.state_dict().items())  # training goes on


def step_batches(**kwargs) -> StepBatches:
    defaults = dict(seed=1, global_batch=8, positions=slice(0, 8), mixture=deg.Mixture(["matrix:noise=0.1", "inpaint-patches", "none"]),
                    num_classes=10, label_dropout=0.3, augment=data.Augment(0.5, xflip=True))
    defaults.update(kwargs)
    return StepBatches(data.open_dataset("mnist"), **defaults)


def test_shards_reassemble_the_global_batch():
    """What rank r of N sees is exactly its share of the single-process batch (DDP equivalence):
    each example, found by its global index, carries the same data and operator in both."""
    whole = step_batches()[3]
    halves = [step_batches(positions=slice(0, 4))[3], step_batches(positions=slice(4, 8))[3]]
    assert sorted(whole.indices.tolist()) == list(range(24, 32))
    assert sorted(halves[0].indices.tolist()) == list(range(24, 28))
    row_of = {int(g): (h, r) for h in halves for r, g in enumerate(h.indices)}
    restored = {name: [] for name in ("images", "noise", "sigma_normal", "class_labels", "aug_labels", "share_draw")}
    for b, g in enumerate(whole.indices.tolist()):
        half, row = row_of[g]
        for name, rows in restored.items():
            rows.append(getattr(half, name)[row])
        assert torch.allclose(whole.op.pinv(whole.y)[b], half.op.pinv(half.y)[row])
    for name, rows in restored.items():
        assert torch.equal(getattr(whole, name), torch.stack(rows)), name


def test_batches_hold_each_family_as_one_contiguous_slice():
    """The loader orders a batch by family (and blur stride); each example keeps its own draws."""
    batches = step_batches(mixture=deg.Mixture(["matrix", "motion-blur", "inpaint-patches", "none"]), global_batch=32,
                           positions=slice(0, 32))
    batch = batches[2]
    assert isinstance(batch.op, deg.GroupedOperator) and batch.op.contiguous
    assert all(part.contiguous for part in batch.op.parts if isinstance(part, deg.GroupedOperator))
    assert sorted(batch.indices.tolist()) == list(range(64, 96)) and batch.indices.tolist() != list(range(64, 96))
    # example g's operator is the one the mixture draws for g alone
    for b in (0, 13, 31):
        alone = batches.mixture.sample(None, (1, 32, 32), seed=batches.seed, indices=[int(batch.indices[b])])
        torch.testing.assert_close(alone.A(batch.images[b : b + 1]), batch.op.A(batch.images)[b : b + 1, : alone.measurement_size])


def test_epochs_visit_every_image_once():
    dataset = data.open_dataset("mnist")
    batches = step_batches(global_batch=500, positions=slice(0, 500), mixture=None, augment=None, label_dropout=0.0)
    items = [batches._item(g) for g in range(len(dataset))]
    assert sorted(items) == list(range(len(dataset)))
    assert items[:20] != list(range(20))  # shuffled


def test_label_dropout_and_missing_labels_use_the_null_class():
    kept = step_batches(label_dropout=0.0, global_batch=64, positions=slice(0, 64))[0]
    dropped = step_batches(label_dropout=1.0, global_batch=64, positions=slice(0, 64))[0]
    assert (kept.class_labels < 10).all() and (dropped.class_labels == 10).all()
    some = step_batches(label_dropout=0.3, global_batch=64, positions=slice(0, 64))[0]
    assert 5 <= int((some.class_labels == 10).sum()) <= 35


def test_learning_rate_schedule():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, lr_ref_steps=100)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 100) == pytest.approx(1e-3)
    assert learning_rate(cfg, 400) == pytest.approx(5e-4)


def test_bad_settings_are_clear_errors(tmp_path):
    for changes, message in [
        (dict(conditioning="cond"), "unknown conditioning"),
        (dict(objective="l1"), "unknown objective"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(degradations=["matrix"], degradation_weights=[1, 2]), "one weight per entry"),
        (dict(conditioning="unconditional", degradations=["matrix"]), "without degradations"),
    ]:
        with pytest.raises(ValueError, match=message):
            tiny_config(tmp_path, **changes).validate()


def test_measurement_noise_levels_reach_every_spec_without_its_own():
    cfg = TrainConfig(degradations=["matrix", "sr:noise=0.3", "inpaint-patches"], measurement_noise="0:0.2,zero=0.5")
    mixture = build_mixture(cfg)
    op = mixture.sample(64, (1, 32, 32), seed=0)
    own = torch.tensor([spec == "sr:noise=0.3" for spec in mixture.choose(0, range(64))])
    assert torch.all(op.noise_std[own] == 0.3)
    drawn = op.noise_std[~own]
    assert 0.25 < float((drawn == 0).float().mean()) < 0.75 and float(drawn.max()) <= 0.2
    assert build_mixture(TrainConfig(measurement_noise="0")).noise is None
    with pytest.raises(ValueError, match="noise levels"):
        TrainConfig(measurement_noise="0.2:0.1").validate()


def test_augmentation_labels_must_fit_the_model(tmp_path):
    with pytest.raises(ValueError, match="augment_dim=7"):
        train(tiny_config(tmp_path / "a", aug_p=0.2, overrides=dict(tiny_config(tmp_path).overrides, augment_dim=3)))
    overrides = dict(tiny_config(tmp_path).overrides, augment_dim=data.Augment.label_dim)
    assert train(tiny_config(tmp_path / "b", aug_p=0.5, xflip=True, steps=2, overrides=overrides)).is_file()


def test_noisy_training_makes_a_noise_aware_model_that_resumes(tmp_path):
    cfg = tiny_config(tmp_path / "run", steps=4, measurement_noise="0:0.2,zero=0.5")
    final = train(cfg)
    net = models.load(final)
    assert net.config["noise_conditioning"] and net.backbone.mapping.measurement_proj is not None
    # the σ_y embedding changes the output: it is wired in
    op = deg.from_spec("matrix", (1, 32, 32), batch=2, seed=0)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        quiet = net(x, torch.ones(2), op, op.A(x))
        noisy = net(x, torch.ones(2), op.with_noise_std(torch.full((2,), 0.2)), op.A(x))
    assert not torch.allclose(quiet, noisy)
    train(tiny_config(tmp_path / "run", steps=6, measurement_noise="0:0.2,zero=0.5", resume=True))
    with pytest.raises(ValueError, match="measurement_noise"):
        train(tiny_config(tmp_path / "run", steps=8, measurement_noise="0", resume=True))
    assert TrainConfig().measurement_noise == "0:0.2,zero=0.5"  # noisy by default


def test_label_dropout_trains_the_null_class_that_guidance_calls():
    """Dropped labels become index ``num_classes``, the extra row of the class embedding: the
    loss of a fully dropped batch moves that row only, and it is the row a call without a class
    (the null branch of CFG) uses."""
    whole = step_batches(global_batch=32, positions=slice(0, 32), label_dropout=0.0)[3]
    dropped = step_batches(global_batch=32, positions=slice(0, 32), label_dropout=0.3)[3]
    null = dropped.class_labels == 10
    assert 0 < int(null.sum()) < 32 and 0 <= int(whole.class_labels.max()) < 10
    assert torch.equal(dropped.class_labels, torch.where(null, 10, whole.class_labels))
    net = models.build("mnist32", "invfussion", **TINY_MODEL, num_classes=10)
    embedding = net.backbone.mapping.class_embed
    assert embedding.num_embeddings == 11
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():  # leave the zero initialisation, so the class reaches the output
            p.add_(0.05 * torch.randn_like(p))
    batch = step_batches(label_dropout=1.0)[3]
    assert bool((batch.class_labels == 10).all())
    make_objective("diffusion")(net, batch).sum().backward()
    moved = embedding.weight.grad.abs().sum(1) > 0
    assert moved.tolist() == [False] * 10 + [True]
    sigma = torch.ones(len(batch.images))
    with torch.no_grad():
        assert torch.equal(net(batch.images, sigma, batch.op, batch.y, class_labels=batch.class_labels),
                           net(batch.images, sigma, batch.op, batch.y))


def test_runs_from_before_a_setting_resume_with_what_they_were_trained_with(tmp_path):
    """A checkpoint written before ``mmse_share`` existed was trained without it: resuming it with
    today's default (0.25) would change the recipe mid-run, so it must say so; 0 resumes."""
    from invfussion.training.loop import check_resumable

    saved = {k: v for k, v in TrainConfig().to_json().items() if k not in ("mmse_share", "measurement_noise")}
    saved["overrides"] = {}
    with pytest.raises(ValueError, match="measurement_noise='0', not '0:0.2,zero=0.5'"):
        check_resumable(saved, TrainConfig(), tmp_path)
    with pytest.raises(ValueError, match="mmse_share=0.0, not 0.25"):
        check_resumable(saved, TrainConfig(measurement_noise="0"), tmp_path)
    check_resumable(saved, TrainConfig(mmse_share=0.0, measurement_noise="0"), tmp_path)


def test_compile_defaults_to_on_for_the_cpu_and_compiles_the_training_network_only(tmp_path, capsys):
    """``compile=None`` compiles on the CPU (measured faster there), saying so first; the EMA copy
    stays eager."""
    from invfussion.models.hdit import SelfAttentionBlock

    def compiled_blocks(cfg):
        trainer = Trainer(cfg, distributed.init("cpu"))
        blocks = [m for m in trainer.net.modules() if isinstance(m, SelfAttentionBlock)]
        ema_blocks = [m for m in trainer.ema.net.modules() if isinstance(m, SelfAttentionBlock)]
        assert not any("attention" in vars(m) for m in ema_blocks)
        return all("attention" in vars(m) for m in blocks)

    assert compiled_blocks(tiny_config(tmp_path / "auto", compile=None))
    assert "note: compiling the model for this CPU, about 90 s the first time" in capsys.readouterr().err
    assert not compiled_blocks(tiny_config(tmp_path / "off"))
    assert "compiling" not in capsys.readouterr().err
    assert TrainConfig().compile is None


def test_the_eta_clock_restarts_after_a_slow_first_step():
    """The bar's rate leaves out the first step (a compile): 3 quick steps after a slow one."""
    import time

    from tqdm import tqdm

    from invfussion.training.loop import restart_clock

    progress = tqdm(total=100, initial=40, disable=False, file=open(os.devnull, "w"))
    time.sleep(0.5)  # the compile
    progress.update(1)
    restart_clock(progress)
    for _ in range(3):
        time.sleep(0.01)
        progress.update(1)
    info = progress.format_dict
    assert info["n"] == 44 and info["initial"] == 41 and info["elapsed"] < 0.3
    progress.close()
