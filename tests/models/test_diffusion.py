"""The diffusion and distillation math, pinned against its formulas."""

import pytest
import torch

from components.distill.objective import two_teacher_steps
from components.models.diffusion import (LOSS_WEIGHTINGS, alpha, ddim_step, diffuse, distillation_target, eps_from_z_v, multistep_x,
                                         exponential_step, log_snr, sigma, snr, v_from_x_eps, v_from_z_x, v_loss_weight,
                                         x_from_z_v, x_loss_weight)
from components.models.sampler import SAMPLERS, ddim_sample, dpmpp_2m_sample, get_sampler, predict_x
from components.models.unet import UNet1d, UNetSpec



@pytest.fixture(autouse=True)
def _float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def _data(batch=3, shape=(4, 8), seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((batch, *shape), generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn((batch, *shape), generator=g, dtype=torch.float64)
    return x, eps


def test_schedule_endpoints_and_conversions_round_trip():
    assert alpha(torch.tensor(0.0)) == 1 and sigma(torch.tensor(0.0)) == 0
    assert abs(float(alpha(torch.tensor(1.0)))) < 1e-15 and sigma(torch.tensor(1.0)) == 1
    x, eps = _data()
    t = torch.tensor([0.1, 0.5, 0.9])
    z = diffuse(x, eps, t)
    v = v_from_x_eps(x, eps, t)
    torch.testing.assert_close(x_from_z_v(z, v, t), x)
    torch.testing.assert_close(eps_from_z_v(z, v, t), eps)
    torch.testing.assert_close(v_from_z_x(z, x, t), v)
    torch.testing.assert_close(alpha(t) ** 2 + sigma(t) ** 2, torch.ones(3))


def test_loss_weightings_have_the_stated_values():
    t = torch.tensor([0.1, 0.5, 0.9])
    s = snr(t)
    torch.testing.assert_close(x_loss_weight(t, "snr_trunc"), torch.clamp(s, min=1.0))
    torch.testing.assert_close(x_loss_weight(t, "snr+1"), s + 1)
    assert x_loss_weight(torch.tensor([0.5]), "snr_trunc") == pytest.approx(1.0)  # SNR = 1 at t = 0.5
    torch.testing.assert_close(x_loss_weight(t, "min_snr_5"), torch.clamp(s, max=5.0))
    assert x_loss_weight(torch.tensor([0.5]), "min_snr_5") == pytest.approx(1.0)
    assert x_loss_weight(torch.tensor([0.01]), "min_snr_5") == pytest.approx(5.0)  # SNR ~ 4000, capped at gamma
    torch.testing.assert_close(x_loss_weight(t, "min_snr+1_5"), torch.clamp(s + 1, max=5.0))
    # where the noise is large it is plain v-MSE (weight 1 on v), where small min-SNR's gamma / SNR
    torch.testing.assert_close(v_loss_weight(torch.tensor([0.9, 1.0]), "min_snr+1_5"), torch.ones(2))
    assert v_loss_weight(torch.tensor([0.9]), "min_snr_5") < 0.03  # min-SNR gives those levels ~2% of it
    torch.testing.assert_close(v_loss_weight(torch.tensor([0.01]), "min_snr+1_5"),
                               v_loss_weight(torch.tensor([0.01]), "min_snr_5"), rtol=1e-3, atol=0)
    for w in LOSS_WEIGHTINGS:  # the v-space weight is the same loss: w * sigma^2
        torch.testing.assert_close(v_loss_weight(t, w), x_loss_weight(t, w) * sigma(t) ** 2)
        assert torch.isfinite(v_loss_weight(torch.tensor([0.0, 1.0]), w)).all()
    torch.testing.assert_close(v_loss_weight(t, "snr+1"), torch.ones(3))  # plain v-MSE
    with pytest.raises(ValueError, match="allowed"):
        x_loss_weight(t, "uniform")


@pytest.mark.parametrize("t0", [1.0, 0.73, 0.2])
@pytest.mark.parametrize("steps", [1, 3, 16])
def test_ddim_with_an_oracle_reconstructs_x_exactly_from_any_t(t0, steps):
    x, eps = _data()
    oracle = lambda z, t: v_from_z_x(z, x, t)  # noqa: E731 - returns the true v for the true x
    z = diffuse(x, eps, torch.full((3,), t0))
    grid = torch.linspace(t0, 0.0, steps + 1)
    for t, s in zip(grid[:-1], grid[1:]):
        tt, ss = torch.full((3,), float(t)), torch.full((3,), float(s))
        z = ddim_step(z, predict_x(oracle, z, tt, clip=1.0), tt, ss)
    torch.testing.assert_close(z, x)


def test_ddim_sample_from_pure_noise_with_an_oracle():
    x, eps = _data()
    out = ddim_sample(lambda z, t: v_from_z_x(z, x, t), eps, 8)
    torch.testing.assert_close(out, x)


def test_the_exponential_step_with_x_hat_is_the_ddim_step():
    x, eps = _data()
    t, s = torch.full((3,), 0.7), torch.full((3,), 0.45)
    z = diffuse(x, eps, t)
    x_hat = x + 0.1 * eps  # any prediction
    torch.testing.assert_close(exponential_step(z, x_hat, t, s), ddim_step(z, x_hat, t, s))
    assert float(log_snr(torch.tensor(0.5))) == pytest.approx(0.0)  # alpha = sigma at t = 1/2


def test_dpm_solver_2m_with_an_oracle_lands_on_x():
    x, eps = _data()
    torch.testing.assert_close(dpmpp_2m_sample(lambda z, t: v_from_z_x(z, x, t), eps, 6), x)


def _gaussian_v(c: float):
    """The exact v for data x ~ N(0, c^2): E[x | z_t] = alpha c^2 z / (alpha^2 c^2 + sigma^2)."""
    def v_fn(z, t):
        a, s = alpha(t)[:, None], sigma(t)[:, None]
        return v_from_z_x(z, a * c * c * z / (a * a * c * c + s * s), t)
    return v_fn


def _integrate(v_fn, z, a: float, b: float, steps: int, second_order: bool):
    grid, x_prev, h_prev = torch.linspace(a, b, steps + 1), None, None
    for t0, s0 in zip(grid[:-1], grid[1:]):
        t, s = torch.full((len(z),), float(t0)), torch.full((len(z),), float(s0))
        x_hat, h = predict_x(v_fn, z, t, None), log_snr(s) - log_snr(t)
        d = multistep_x(x_hat, x_prev, h, h_prev) if second_order and x_prev is not None else x_hat
        z, x_prev, h_prev = exponential_step(z, d, t, s), x_hat, h
    return z


@pytest.mark.parametrize("second_order, order", [(False, 1), (True, 2)])
def test_the_exponential_step_converges_at_its_order_on_a_gaussian(second_order, order):
    """For x ~ N(0, c^2) the probability-flow ODE scales z by sqrt(alpha^2 c^2 + sigma^2) exactly. From
    t = 0.9 to 0.1, doubling the steps cuts the error 2-fold (DDIM) or 4-fold (DPM-Solver++(2M))."""
    c, z = 0.5, torch.randn(4, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    scale = lambda t: float((alpha(torch.tensor(t)) ** 2 * c * c + sigma(torch.tensor(t)) ** 2).sqrt())  # noqa: E731
    exact = z * scale(0.1) / scale(0.9)
    errors = [float((_integrate(_gaussian_v(c), z, 0.9, 0.1, n, second_order) - exact).abs().max()) for n in (32, 64, 128)]
    assert all(2 ** order * 0.85 < a / b < 2 ** order * 1.15 for a, b in zip(errors, errors[1:])), errors


def test_dpm_solver_2m_beats_ddim_at_equal_network_evaluations():
    c, noise = 0.5, torch.randn(4, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for steps in (16, 32, 64):
        ddim, dpm = (float((get_sampler(name)(_gaussian_v(c), noise, steps, clip=None) - c * noise).abs().max())
                     for name in ("ddim", "dpm++2m"))
        assert dpm < ddim / 4, (steps, ddim, dpm)
    # float32, as models run: cos(pi/2) is -4e-8 there, and the log-SNR of t = 1 must still be finite
    single = dpmpp_2m_sample(_gaussian_v(c), noise.float(), 16, clip=None)
    assert single.dtype == torch.float32 and torch.isfinite(single).all()
    torch.testing.assert_close(single.double(), dpmpp_2m_sample(_gaussian_v(c), noise, 16, clip=None), atol=1e-4, rtol=0)
    assert sorted(SAMPLERS) == ["ddim", "dpm++2m"]
    with pytest.raises(ValueError, match="unknown sampler 'euler'; allowed: ddim, dpm\\+\\+2m"):
        get_sampler("euler")


def _teacher():
    torch.manual_seed(0)
    net = UNet1d(UNetSpec(example_shape=(4, 8), base_channels=8, channel_mults=(1, 2), attention_levels=(1,),
                          attention_heads=2, groups=4)).double()
    for p in net.parameters():  # a non-trivial function (the zero-initialised output layer would give v = 0)
        torch.nn.init.normal_(p, std=0.1)
    return net.eval()


@pytest.mark.parametrize("i", [1, 2, 5, 8])
def test_one_student_step_with_the_target_reproduces_two_teacher_steps(i):
    n = 8
    teacher = _teacher()
    x, eps = _data()
    t = torch.full((3,), i / n)
    z_t = diffuse(x, eps, t)
    with torch.no_grad():
        z_teacher = two_teacher_steps(teacher, z_t, t, n)
    x_tilde = distillation_target(z_t, z_teacher, t, t - 1 / n)
    z_student = ddim_step(z_t, x_tilde, t, t - 1 / n)
    torch.testing.assert_close(z_student, z_teacher, rtol=1e-10, atol=1e-10)
    if i == 1:  # last step: the target is the teacher's final x_hat
        torch.testing.assert_close(x_tilde, z_teacher)


def test_teacher_halves_are_half_student_steps():
    """two_teacher_steps(N) moves from t to t - 1/N through t - 0.5/N (grid of the 2N-step teacher)."""
    teacher = _teacher()
    x, eps = _data()
    t = torch.full((3,), 0.75)
    z_t = diffuse(x, eps, t)
    with torch.no_grad():
        manual = ddim_step(z_t, predict_x(teacher, z_t, t, 1.0), t, t - 0.125)
        manual = ddim_step(manual, predict_x(teacher, manual, t - 0.125, 1.0), t - 0.125, t - 0.25)
        torch.testing.assert_close(two_teacher_steps(teacher, z_t, t, 4), manual)
        # the grid matters: the 16-step teacher's halves (t - 1/16, t - 1/8) land elsewhere
        assert not torch.allclose(two_teacher_steps(teacher, z_t, t, 8), manual)
