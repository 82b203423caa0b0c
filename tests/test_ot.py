import numpy as np
import ot
import pytest
import torch

from pmatrack_mini.ot import grid_cost, sinkhorn, sinkhorn_scaling


def _problem(B=3, N=12, M=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(B, N, generator=g, dtype=torch.float64) + 0.1
    b = torch.rand(B, M, generator=g, dtype=torch.float64) + 0.1
    a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)
    x, y = torch.rand(B, N, 2, generator=g, dtype=torch.float64), torch.rand(B, M, 2, generator=g, dtype=torch.float64)
    return a, b, torch.cdist(x, y) ** 2


@pytest.mark.parametrize("eps", [0.5, 0.05, 0.01])
def test_matches_pot_sinkhorn(eps):
    a, b, C = _problem()
    plan = sinkhorn(a, b, C, eps, n_iters=5000, tol=1e-12)
    for i in range(a.shape[0]):
        ref = ot.sinkhorn(a[i].numpy(), b[i].numpy(), C[i].numpy(), eps, numItermax=100000, stopThr=1e-13,
                          method="sinkhorn_log")
        np.testing.assert_allclose(plan[i].numpy(), ref, atol=1e-9)
        np.testing.assert_allclose(float((plan[i] * C[i]).sum()), float((ref * C[i].numpy()).sum()), rtol=1e-8)


def test_small_epsilon_approaches_exact_emd():
    a, b, C = _problem(seed=1)
    plan = sinkhorn(a, b, C, 1e-4, n_iters=20000, tol=1e-11)
    for i in range(a.shape[0]):
        exact = ot.emd(a[i].numpy(), b[i].numpy(), C[i].numpy())
        cost_ot = float((exact * C[i].numpy()).sum())
        assert abs(float((plan[i] * C[i]).sum()) - cost_ot) < 1e-3 * cost_ot + 1e-6
        assert np.abs(plan[i].numpy() - exact).sum() < 0.02   # the (unique) optimal plan


def test_marginals_and_no_nan_at_tiny_epsilon_in_float32():
    F = 8
    C = grid_cost(F, F).expand(4, -1, -1)
    g = torch.Generator().manual_seed(0)           # seeded: the outcome must not depend on the tests run before
    a = torch.softmax(torch.randn(4, F * F, generator=g) * 3, 1)
    b = torch.softmax(torch.randn(4, F * F, generator=g) * 3, 1)
    b[:, :5] = 0
    b = b / b.sum(1, keepdim=True)                 # zero-mass cells
    plan = sinkhorn(a, b, C, epsilon=0.02, n_iters=300)   # exp(-C / eps) underflows here in float32
    assert torch.isfinite(plan).all() and (plan >= 0).all()
    assert torch.allclose(plan.sum(1), b, atol=1e-4)        # exact after each g update
    assert plan[:, :, :5].abs().max() == 0
    independent = (a[:, :, None] * b[:, None, :] * C).sum((1, 2))
    assert ((plan * C).sum((1, 2)) < independent).all()
    # at an epsilon scaled to the cost (cells^2) both marginals converge within a thousand iterations (measured on
    # 40 random draws of this kind: 38 within 300, all within 1000)
    plan = sinkhorn(a, b, C, epsilon=1.0, n_iters=1000)
    assert torch.allclose(plan.sum(1), b, atol=1e-4) and torch.allclose(plan.sum(2), a, atol=1e-4)


def test_differentiable():
    a, b, C = _problem(B=2, N=6, M=6)
    C = C.clone().requires_grad_(True)
    logits = torch.zeros(2, 6, dtype=torch.float64, requires_grad=True)
    plan = sinkhorn(torch.softmax(logits, 1), b, C, 0.1, n_iters=50)
    (plan * C).sum().backward()
    assert torch.isfinite(C.grad).all() and C.grad.abs().sum() > 0 and torch.isfinite(logits.grad).all()


def test_grid_cost_and_bad_input():
    C = grid_cost(2, 3)
    assert C.shape == (6, 6) and C[0, 5] == 1 + 4 and torch.all(C.diagonal() == 0)
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn(torch.ones(1, 2) / 2, torch.ones(1, 2) / 2, torch.zeros(1, 2, 2), 0.0)
    with pytest.raises(ValueError, match="cost"):
        sinkhorn(torch.ones(1, 2) / 2, torch.ones(1, 3) / 3, torch.zeros(1, 2, 2), 0.1)


@pytest.mark.parametrize("iters", [1, 30])
def test_scaling_solver_gives_the_log_domain_plans(iters):
    """sinkhorn_scaling: the log-domain solver's plans iteration for iteration (float64), on a grid cost with
    peaked responses as a trained TRE gives, and POT's plan once converged."""
    g = torch.Generator().manual_seed(iters)
    a = torch.softmax(3 * torch.randn(3, 64, generator=g, dtype=torch.float64), 1)
    b = torch.softmax(3 * torch.randn(3, 64, generator=g, dtype=torch.float64), 1)
    C = grid_cost(8, 8, dtype=torch.float64).expand(3, -1, -1)
    np.testing.assert_allclose(sinkhorn_scaling(a, b, C, 0.5, iters).numpy(),
                               sinkhorn(a, b, C, 0.5, n_iters=iters).numpy(), atol=1e-12)
    plan = sinkhorn_scaling(a, b, C, 0.5, 3000)
    ref = ot.sinkhorn(a[0].numpy(), b[0].numpy(), C[0].numpy(), 0.5, numItermax=100000, stopThr=1e-13)
    np.testing.assert_allclose(plan[0].numpy(), ref, atol=1e-9)


def test_scaling_solver_in_float32_and_its_fallback():
    """float32 responses: the log-domain float32 plans to float32 rounding; a cost whose kernel would underflow
    (max C / eps above the bound) and responses with zero mass both still give finite plans, the log domain's."""
    a = torch.softmax(4 * torch.randn(2, 64, generator=torch.Generator().manual_seed(1)), 1)
    b = torch.softmax(4 * torch.randn(2, 64, generator=torch.Generator().manual_seed(2)), 1)
    C = grid_cost(8, 8).expand(2, -1, -1)
    assert (sinkhorn_scaling(a, b, C, 0.5, 30) - sinkhorn(a, b, C, 0.5, n_iters=30)).abs().max() < 1e-5
    far = C * 20                                                  # max C / eps = 3920 > SCALING_MAX_EXPONENT
    assert torch.equal(sinkhorn_scaling(a, b, far, 0.5, 30), sinkhorn(a, b, far, 0.5, n_iters=30))
    z = a.clone()
    z[:, :32] = 0
    z = z / z.sum(1, keepdim=True)
    plan = sinkhorn_scaling(z, b, C, 0.5, 30)
    assert torch.isfinite(plan).all() and plan[:, :32].abs().max() == 0
    assert (plan - sinkhorn(z, b, C, 0.5, n_iters=30)).abs().max() < 1e-5
    empty = torch.zeros_like(b)                                   # no mass at all: 0 / 0 in the scaling updates
    assert torch.equal(sinkhorn_scaling(a, empty, C, 0.5, 30), sinkhorn(a, empty, C, 0.5, n_iters=30))
    with pytest.raises(ValueError, match="n_iters"):
        sinkhorn_scaling(a, b, C, 0.5, 0)
