"""deepinv interoperability: wrapped physics, the reconstructor, the denoiser, deepinv's samplers.

Analytic references: dense matrices for the Moore–Penrose identities, and a Gaussian prior whose
posterior mean and denoiser are known in closed form, computed in deepinv's own [0, 1] range so
that the value-range conversions are checked, not assumed.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch

dinv = pytest.importorskip("deepinv")

from invfussion import models, sampling
from invfussion.integrations import deepinv as bridge

F64 = torch.float64
SMALL = (1, 8, 8)
N_SMALL = 64


def _blur_filter(sigma: float) -> torch.Tensor:
    return dinv.physics.functional.blur.gaussian_blur(sigma=(sigma, sigma))


def _physics(name: str, shape=SMALL, noise: float = 0.0):
    noise_model = dinv.physics.GaussianNoise(noise) if noise else None
    g = torch.Generator().manual_seed(0)
    if name == "inpainting":
        mask = (torch.rand(shape, generator=g) < 0.5).float()
        return dinv.physics.Inpainting(img_size=shape, mask=mask, noise_model=noise_model)
    if name == "blur":
        return dinv.physics.BlurFFT(
            img_size=shape, filter=_blur_filter(1.0), noise_model=noise_model
        )
    if name == "cs":
        return dinv.physics.CompressedSensing(m=20, img_size=shape, rng=g, noise_model=noise_model)
    raise AssertionError(name)


PHYSICS = ["inpainting", "blur", "cs"]


def _gaussian_prior(seed: int = 0, scale: float = 0.05):
    """A Gaussian prior on 1×8×8 images in invfussion's [-1, 1] range, well inside it."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.randn(N_SMALL, N_SMALL, generator=g, dtype=F64)
    cov = scale * (basis @ basis.T / N_SMALL + 0.1 * torch.eye(N_SMALL, dtype=F64))
    mean = 0.2 * torch.randn(N_SMALL, generator=g, dtype=F64)
    return mean, cov


def _as_model(net: torch.nn.Module, conditioning: str) -> torch.nn.Module:
    """Give the analytic Gaussian denoiser the attributes the reconstructor reads from a model."""
    net.conditioning = conditioning
    net.img_channels, net.img_resolution = SMALL[0], SMALL[1]
    return net


@pytest.fixture(scope="module")
def unconditional():
    return models.load("mnist32-unconditional")


@pytest.fixture(scope="module")
def digits():
    from invfussion.data import balanced_indices, load_mnist

    images, _ = load_mnist("test")
    return images[balanced_indices(2, "test")]


# -- the operator ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PHYSICS)
def test_wrapped_physics_matches_physics_and_satisfies_moore_penrose(name):
    physics = _physics(name)
    rng = torch.get_rng_state()
    op = bridge.from_physics(physics, SMALL, batch_size=2)
    assert torch.equal(torch.get_rng_state(), rng)  # deepinv's samplers seed the global RNG
    x = torch.randn(2, *SMALL, generator=torch.Generator().manual_seed(1))
    assert torch.equal(op.A(x), physics.A(x).reshape(2, -1))
    assert torch.allclose(op.pinv(op.A(x)), physics.A_dagger(physics.A(x)).reshape(x.shape))
    # a stack of K images is each image in turn
    stack = torch.randn(2, 3, *SMALL, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(
        op.A(stack), torch.stack([physics.A(stack[:, k]).reshape(2, -1) for k in range(3)], 1)
    )

    A = sampling.dense_matrix(op)[0]  # (M, n)
    eye = torch.eye(A.shape[0], dtype=F64).reshape(A.shape[0], *op.measurement_shape)
    P = bridge.from_physics(physics, SMALL, batch_size=A.shape[0]).pinv(
        eye.reshape(A.shape[0], -1).float()
    )
    P = P.reshape(A.shape[0], -1).T.double()  # columns A⁺ e_j: (n, M)
    scale = A.abs().max() * P.abs().max()
    tol = 1e-5 * float(scale)
    assert (A @ P @ A - A).abs().max() < tol * float(A.abs().max())
    assert (P @ A @ P - P).abs().max() < tol * float(P.abs().max())
    assert ((A @ P) - (A @ P).T).abs().max() < tol
    assert ((P @ A) - (P @ A).T).abs().max() < tol


@pytest.mark.parametrize("name", PHYSICS)
def test_wrapped_adjoint_is_the_dense_transpose(name):
    """op.AT (physics.A_adjoint) has the transpose of op.A's dense matrix, and ⟨Ax, y⟩ = ⟨x, Aᵀy⟩."""
    op = bridge.from_physics(_physics(name), SMALL, batch_size=1)
    A = sampling.dense_matrix(op)[0]  # (M, n)
    M = A.shape[0]
    transpose = op.AT(torch.eye(M, dtype=F64)[None]).reshape(M, -1)  # row j: Aᵀ e_j
    torch.testing.assert_close(transpose, A, rtol=1e-5, atol=1e-6 * float(A.abs().max()))
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(1, *SMALL, generator=g), torch.randn(1, M, generator=g)
    torch.testing.assert_close((op.A(x) * y).sum(), (x * op.AT(y)).sum(), rtol=1e-5, atol=1e-5)


def test_noise_level_and_value_range_conversions():
    """σ_y doubles into [-1, 1] units, and 2·physics(x₀₁) − A1 is op.A(2x₀₁ − 1) plus that noise."""
    sigma = 0.05
    physics = _physics("inpainting", shape=(1, 32, 32), noise=sigma)
    op = bridge.from_physics(physics, (1, 32, 32), batch_size=8)
    assert torch.allclose(op.noise_std, torch.full((8,), 2 * sigma))

    x01 = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    x = bridge.from_deepinv_image(x01)
    clean = op.from_deepinv_measurement(physics.A(x01))
    assert torch.allclose(clean, op.A(x), atol=1e-6)
    assert torch.allclose(op.to_deepinv_measurement(op.A(x)), physics.A(x01), atol=1e-6)
    assert torch.allclose(bridge.to_deepinv_image(x), x01)

    torch.manual_seed(0)
    noise = op.from_deepinv_measurement(physics(x01)) - op.A(x)
    observed = physics.mask.expand(8, -1, -1, -1).reshape(8, -1).bool()
    assert noise[~observed].abs().max() == 0  # masked pixels stay 0 in y as in A x
    assert abs(float(noise[observed].std()) - 2 * sigma) < 0.1 * 2 * sigma

    per_example = dinv.physics.Inpainting(
        img_size=(1, 4, 4),
        mask=0.5,
        noise_model=dinv.physics.GaussianNoise(torch.tensor([0.1, 0.2])),
    )
    assert torch.allclose(
        bridge.from_physics(per_example, (1, 4, 4), batch_size=2).noise_std,
        torch.tensor([0.2, 0.4]),
    )


def test_bad_physics_are_one_clear_error():
    cases = [
        (dinv.physics.Physics(A=lambda x: x**2), SMALL, "not a deepinv LinearPhysics"),
        (
            dinv.physics.Inpainting(
                img_size=SMALL, mask=0.5, noise_model=dinv.physics.PoissonNoise()
            ),
            SMALL,
            "Gaussian measurement noise only",
        ),
        (
            dinv.physics.Inpainting(img_size=SMALL, mask=0.5, sensor_model=lambda y: y.clamp(0, 1)),
            SMALL,
            "non-identity sensor model",
        ),
        (_physics("cs"), (1, 16, 16), "does not accept"),
        (_physics("blur"), (8, 8), "image_shape = \\(C, H, W\\)"),
    ]
    for physics, shape, match in cases:
        with pytest.raises(ValueError, match=match) as info:
            bridge.from_physics(physics, shape)
        message = str(info.value)
        assert message.endswith(".") and ". " not in message, message


def test_operator_moves_with_its_physics():
    op = bridge.from_physics(_physics("blur"), SMALL, batch_size=2)
    moved = op.to("meta")
    assert moved.physics is not op.physics and moved.noise_std.device.type == "meta"
    assert next(op.physics.buffers()).device.type == "cpu"


def test_core_never_imports_deepinv_and_module_says_how_to_install(monkeypatch):
    code = (
        "import sys, invfussion, invfussion.cli, invfussion.sampling.zeroshot, invfussion.integrations;"
        "assert 'deepinv' not in sys.modules, 'core imported deepinv'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

    monkeypatch.delitem(sys.modules, "invfussion.integrations.deepinv")
    monkeypatch.setitem(sys.modules, "deepinv", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "invfussion\[deepinv\]"'):
        importlib.import_module("invfussion.integrations.deepinv")


# -- the reconstructor ----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "noise"), [("inpainting", 0.0), ("blur", 0.05), ("cs", 0.02)])
def test_reconstructor_mmse_is_the_gaussian_posterior_mean_in_deepinv_range(name, noise):
    """On a Gaussian prior the model's MMSE is E[x | y]; the reference is computed in [0, 1]."""
    mean, cov = _gaussian_prior()
    net = _as_model(sampling.GaussianDenoiser(mean, cov, SMALL), "invfussion")
    physics = _physics(name, noise=noise)
    g = torch.Generator().manual_seed(5)
    x = mean[:, None] + torch.linalg.cholesky(cov) @ torch.randn(N_SMALL, 3, generator=g, dtype=F64)
    x01 = bridge.to_deepinv_image(x.T.reshape(3, *SMALL)).float()
    torch.manual_seed(0)
    y01 = physics(x01)

    model = bridge.InvFussionReconstructor(net, method="mmse")
    out = model(y01, physics)
    assert out.shape == x01.shape and out.dtype == torch.float32

    # closed form in deepinv's range: x₀₁ ~ N((μ + 1)/2, Σ/4), y₀₁ = A x₀₁ + σ ε
    A = sampling.dense_matrix(bridge.from_physics(physics, SMALL))[0]
    reference = torch.stack(
        [
            sampling.gaussian_posterior(
                (mean + 1) / 2, cov / 4, A, y01[b].reshape(-1).double(), noise
            )[0]
            for b in range(3)
        ]
    ).reshape(x01.shape)
    assert (out - reference.clamp(0, 1)).abs().max() < 2e-3


def test_reconstructor_posterior_shape_range_and_seed(digits):
    net = models.load("mnist32-invfussion")
    physics = _physics("inpainting", shape=(1, 32, 32))
    y01 = physics(bridge.to_deepinv_image(digits))
    model = bridge.InvFussionReconstructor(net, method="posterior", steps=2, seed=3)
    a, b = model(y01, physics), model(y01, physics)
    assert a.shape == digits.shape and torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, model(y01, physics, seed=4))


def test_reconstructor_mmse_is_nearly_consistent_on_noiseless_inpainting(digits):
    """The trained InvFussion model keeps the visible pixels of a noiseless in-painting, and does
    so because y is converted: handing it deepinv's y₀₁ as if it were ours misses them badly."""
    net = models.load("mnist32-invfussion")
    physics = _physics("inpainting", shape=(1, 32, 32))
    x01 = bridge.to_deepinv_image(digits)
    y01 = physics(x01)
    observed = physics.mask.expand_as(x01).bool()

    def visible_rmse(x: torch.Tensor) -> float:
        return float((x - x01)[observed].square().mean().sqrt())

    out = bridge.InvFussionReconstructor(net, method="mmse")(y01, physics)
    op = bridge.from_physics(physics, (1, 32, 32), batch_size=2)
    unconverted = bridge.to_deepinv_image(sampling.mmse(net, op, y01.reshape(2, -1)))
    assert visible_rmse(out) < 0.1 and visible_rmse(out) < 0.5 * visible_rmse(unconverted)


def test_reconstructor_zero_shot_ddrm_is_exactly_consistent(unconditional, digits):
    """Noiseless DDRM (η_b = 1) keeps A x̂ = y exactly, so the conversion of y must be exact."""
    physics = _physics("inpainting", shape=(1, 32, 32))
    x01 = bridge.to_deepinv_image(digits)
    y01 = physics(x01)
    out = bridge.InvFussionReconstructor(unconditional, method="ddrm", steps=2)(y01, physics)
    assert torch.allclose(physics.A(out), y01, atol=1e-5)


def test_reconstructor_rejects_methods_its_model_cannot_run(unconditional):
    with pytest.raises(ValueError, match="zero-shot method"):
        bridge.InvFussionReconstructor(unconditional, method="posterior")
    palette = models.build("mnist32", "palette")
    with pytest.raises(ValueError, match="unconditional models"):
        bridge.InvFussionReconstructor(palette, method="dps")
    with pytest.raises(ValueError, match="unknown method"):
        bridge.InvFussionReconstructor(palette, method="map")


# -- the denoiser ---------------------------------------------------------------------------------


def test_denoiser_is_the_exact_gaussian_denoiser_in_deepinv_range():
    """Our prior N(μ, Σ) on [-1, 1] is N((μ+1)/2, Σ/4) on [0, 1]; deepinv's σ is in [0, 1] units."""
    mean, cov = _gaussian_prior(seed=1)
    denoiser = bridge.DeepinvDenoiser(sampling.GaussianDenoiser(mean, cov, SMALL))
    x01 = torch.rand(4, *SMALL, generator=torch.Generator().manual_seed(0), dtype=F64)
    sigma = torch.tensor([0.01, 0.1, 0.5, 2.0], dtype=F64)
    out = denoiser(x01, sigma)
    m01, c01 = (mean + 1) / 2, cov / 4
    eye = torch.eye(N_SMALL, dtype=F64)
    reference = torch.stack(
        [
            m01 + c01 @ torch.linalg.solve(c01 + s**2 * eye, x01[b].reshape(-1) - m01)
            for b, s in enumerate(sigma)
        ]
    )
    assert torch.allclose(out.reshape(4, -1), reference, atol=1e-5)
    assert torch.allclose(denoiser(x01, 0.1), denoiser(x01, torch.full((4,), 0.1, dtype=F64)))


def test_deepinv_minus_one_one_wrapper_gives_back_our_network(unconditional):
    """What deepinv's diffusion samplers call (its [-1, 1] wrapper) is our network itself."""
    wrapped = dinv.models.MinusOneOneDenoiserWrapper(bridge.DeepinvDenoiser(unconditional))
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.3, 5.0])
    with torch.no_grad():
        assert torch.allclose(wrapped(x, sigma), unconditional(x, sigma), atol=1e-5)
        floor = bridge.DeepinvDenoiser(unconditional)(x.clamp(0, 1), 0.0)
        assert torch.allclose(floor, x.clamp(0, 1), atol=0.02)  # σ = 0 is (nearly) the identity


def test_deepinv_samplers_run_on_our_prior(unconditional, digits):
    physics = _physics("inpainting", shape=(1, 32, 32))
    x01 = bridge.to_deepinv_image(digits)
    y01 = physics(x01)
    denoiser = bridge.DeepinvDenoiser(unconditional)

    ddrm = dinv.sampling.DDRM(denoiser=denoiser, sigmas=np.linspace(1, 0, 3))
    out = ddrm(y01, physics)
    assert out.shape == x01.shape and out.isfinite().all()

    diffpir = dinv.sampling.DiffPIR(
        model=denoiser, data_fidelity=dinv.optim.data_fidelity.L2(), max_iter=3, sigma=0.01
    )
    out = diffpir(y01, physics)
    assert out.shape == x01.shape and out.isfinite().all()

    dps = dinv.sampling.DPS(denoiser, num_steps=3)
    out = dps(y01, physics)
    assert out.shape == x01.shape and out.isfinite().all()


@pytest.mark.parametrize("name", PHYSICS)
def test_noise_aware_inverse_is_the_dense_tikhonov_solve(name):
    """op.pinv_noisy is the default conjugate-gradient solve through physics.A and A_adjoint:
    Aᵀ(AAᵀ + λI)⁻¹y from the dense matrix, λ = σ_y²/σ_d²; exactly A_dagger at σ_y = 0."""
    op = bridge.from_physics(_physics(name, noise=0.05), SMALL, batch_size=1)
    A = sampling.dense_matrix(op)[0]  # (M, n)
    lam = float(op.noise_std[0] / 0.5) ** 2
    y = torch.randn(1, A.shape[0], generator=torch.Generator().manual_seed(4), dtype=F64)
    reference = A.T @ torch.linalg.solve(A @ A.T + lam * torch.eye(A.shape[0], dtype=F64), y[0])
    atol = 1e-5 * float(reference.abs().max())
    torch.testing.assert_close(op.pinv_noisy(y).reshape(-1), reference, rtol=1e-4, atol=atol)
    op.noise_std = torch.zeros(1)
    assert torch.equal(op.pinv_noisy(y), op.pinv(y))
