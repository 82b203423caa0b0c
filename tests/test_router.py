"""DMAE: the router's modes, real hard routing (only chosen experts run), measured costs, and CPESL."""
import pytest
import torch

from pmatrack_mini.errors import PMATrackError
from pmatrack_mini.models.router import DMAE, mixing_weights
from pmatrack_mini.profile import expert_cost_table
from pmatrack_mini.training.losses import cpesl

DIM, GRID, SIZE = 32, 8, 128
# expert widths scaled down with the toy width 32 (the defaults are cpu-mini's, for C = 192), costs still rising
SIZES = dict(tre=dict(proj_dim=16), fme=dict(proj_dim=32, channels=6), dpe=dict(base=32))
NAMES = ("tre", "fme", "dpe")


def _tokens(B=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ((torch.randn(B, 16, DIM, generator=g), torch.randn(B, 64, DIM, generator=g)),
            (torch.randn(B, 16, DIM, generator=g), torch.randn(B, 64, DIM, generator=g)))


def _dmae(names=NAMES):
    """A stage's DMAE whose experts give distinct, non-zero outputs (they start at the identity otherwise)."""
    torch.manual_seed(0)
    d = DMAE(names, DIM, GRID, SIZE, "scale", sizes=SIZES)
    with torch.no_grad():
        for p in d.experts.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return d


def _count_calls(dmae):
    calls = {n: [] for n in dmae.names}
    for n, e in dmae.experts.items():
        e.register_forward_hook(lambda m, inp, out, n=n: calls[n].append(inp[0][1].shape[0]))
    return calls


def test_hard_routing_runs_only_the_chosen_experts():
    d = _dmae().eval()
    with torch.no_grad():
        d.router.mlp[-1].bias.copy_(torch.tensor([0.0, 0.0, 0.0]))
        d.router.mlp[-1].weight.mul_(50)                # make the choice depend strongly on the sample
    calls = _count_calls(d)
    rgb, tir = _tokens()
    with torch.no_grad():
        out = d(rgb, tir, "router")
    chosen = out["choice"].tolist()
    for e, n in enumerate(NAMES):
        k = chosen.count(e)
        assert calls[n] == ([k] if k else []), (n, calls[n], chosen)    # once, on its samples, or not at all
    # the dispatched result equals running the chosen expert on the whole batch and picking its rows
    with torch.no_grad():
        full = torch.stack([d.experts[n](rgb, tir)["params"] for n in NAMES], 1)        # (B, E, 5)
    assert torch.allclose(out["params"], full[torch.arange(6), out["choice"]], atol=1e-5)
    assert (full[:, 0] - full[:, 2]).abs().max() > 1e-2                  # the experts really differ
    assert torch.equal(out["choice"], out["probs"].argmax(1))


def test_forcing_one_expert_makes_the_cheap_path_cheap():
    d = _dmae().eval()
    calls = _count_calls(d)
    with torch.no_grad():
        d(*_tokens(), "tre")
    assert calls == {"tre": [6], "fme": [], "dpe": []}


def test_soft_and_training_modes_run_every_expert_and_mix():
    d = _dmae()
    calls = _count_calls(d)
    with torch.no_grad():
        soft = d.eval()(*_tokens(), "soft")
    assert all(v == [6] for v in calls.values())
    assert torch.allclose(soft["weights"], soft["probs"]) and torch.allclose(soft["weights"].sum(1), torch.ones(6))
    torch.manual_seed(1)
    train = d.train()(*_tokens(), "router")
    assert set(train["outputs"]) == set(NAMES)
    assert not torch.allclose(train["weights"], train["probs"])             # Gumbel noise in training
    mixed = sum(train["weights"][:, e:e + 1] * train["outputs"][n]["params"] for e, n in enumerate(NAMES))
    assert torch.allclose(train["params"], mixed, atol=1e-6)


def test_mixing_weights_rules_and_errors():
    logits = torch.tensor([[0.1, 2.0, -1.0]])
    w, c = mixing_weights(logits, NAMES, "router", training=False)
    assert c.tolist() == [1] and w.tolist() == [[0.0, 1.0, 0.0]]
    w, c = mixing_weights(logits, NAMES, "dpe", training=True)
    assert c.tolist() == [2]
    with pytest.raises(PMATrackError, match="experts are"):
        mixing_weights(logits[:, :2], ("tre", "fme"), "dpe", training=False)
    with pytest.raises(PMATrackError, match="unknown routing"):
        mixing_weights(logits, NAMES, "hard", training=False)


def test_router_warmup_mixes_uniformly_and_leaves_the_router_alone():
    d = _dmae().train()
    d.warmup = True
    out = d(*_tokens(), "router")
    assert torch.allclose(out["weights"], torch.full((6, 3), 1 / 3))
    l_e = torch.stack([out["outputs"][n]["params"][:, 0] for n in NAMES], 1) ** 2
    cpesl(out["weights"], l_e, d.costs, 1.0).backward()
    assert all(p.grad is None for p in d.router.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.experts.parameters())


def test_costs_are_measured_and_rise_tre_fme_dpe():
    macs = expert_cost_table(NAMES, 192, 8, 128, "scale")
    assert macs["tre"] < macs["fme"] < macs["dpe"]
    d = _dmae()
    assert d.costs.max() == 1 and torch.all(d.costs[:-1] < d.costs[1:])


def test_cpesl_formula():
    w = torch.tensor([[0.2, 0.3, 0.5]])
    l_e = torch.tensor([[1.0, 2.0, 4.0]])
    c = torch.tensor([0.1, 0.5, 1.0])
    assert torch.isclose(cpesl(w, l_e, c, 0.1), torch.tensor(0.2 + 0.6 + 2.0 + 0.1 * (0.02 + 0.15 + 0.5)))


def test_raising_lambda_cost_moves_the_router_to_the_cheapest_expert():
    """A few optimiser steps of CPESL on a fixed batch, with and without a large cost penalty."""
    rgb, tir = _tokens(B=16, seed=3)
    target = torch.zeros(16, 4)

    def mean_probs(lam):
        d = _dmae().train()
        opt = torch.optim.SGD(d.router.parameters(), lr=0.5)
        for step in range(15):
            torch.manual_seed(step)
            out = d(rgb, tir, "router")
            l_e = torch.stack([(out["outputs"][n]["params"][:, :4] - target).abs().sum(1) / 16 for n in NAMES], 1)
            loss = cpesl(out["weights"], l_e.detach(), d.costs, lam)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            return d.eval()(rgb, tir, "soft")["probs"].mean(0)

    cheapest = int(_dmae().costs.argmin())
    free, penalised = mean_probs(0.0), mean_probs(50.0)
    assert penalised[cheapest] > free[cheapest] + 0.1 and penalised[cheapest] > 0.5, (free, penalised)


def test_router_inputs_official_size_and_agreement_cues():
    from pmatrack_mini.models.router import Router, token_agreement
    from pmatrack_mini.profile import count_macs

    torch.manual_seed(0)
    official = Router(768, 256, 3, inputs="official")                   # the paper preset's official router
    x = torch.randn(1, 256, 768)
    assert count_macs(official, (x, x))["linear_conv"] == 512 * 128 + 128 * 64 + 64 * 3   # about 74 k
    G = 6
    x_r = torch.randn(2, G * G, 16)
    here, near = token_agreement(x_r, x_r, G)                           # aligned: agree in place
    assert torch.allclose(here, torch.ones_like(here), atol=1e-6)
    shifted = x_r.reshape(2, G, G, 16).roll(1, dims=2).reshape(2, G * G, 16)   # TIR one cell to the right
    here, near = token_agreement(x_r, shifted, G)
    inner = torch.zeros(G, G, dtype=torch.bool)
    inner[:, 1:-1] = True
    assert (near.reshape(2, G, G)[:, inner] > 0.999).all() and here.mean() < 0.5
    for inputs in ("tokens", "agreement", "official"):
        r = Router(16, G * G, 3, channels=2, hidden=8, inputs=inputs)
        assert r(x_r, shifted).shape == (2, 3)
