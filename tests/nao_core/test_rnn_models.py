"""The RNN language model, the RNN supernet and the LM task at tiny sizes on CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nao_core.engine.lm import CarryHidden, LanguageModelTask, lm_batches, scale_lr
from nao_core.engine.loop import evaluate, train_epoch
from nao_core.engine.metrics import MetricSums
from nao_core.errors import InvalidArchitecture, InvalidConfig
from nao_core.models.rnn import RnnDropouts, RnnNetwork, embedded_dropout, locked_dropout
from nao_core.search_space import create_search_space
from nao_core.search_space.rnn import RnnArch
from nao_core.supernet.rnn import RnnSupernet

NAO_WS_PTB_BEST = "0 1 1 1 2 2 1 2 4 1 4 1 4 1 7 1 8 2 1 0 4 1"
V, H, T, B = 50, 16, 7, 3
REF_ACTS = {0: torch.tanh, 1: torch.relu, 2: torch.sigmoid, 3: lambda x: x}  # NAO-WS mapping


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def space():
    return create_search_space("rnn")


def archs(space) -> list[RnnArch]:
    rng = np.random.default_rng(0)
    return [space.parse(NAO_WS_PTB_BEST), *(space.sample(rng) for _ in range(3))]


def tokens(seed: int = 0, shape: tuple[int, int] = (T, B)) -> torch.Tensor:
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


def reference_outputs(model: RnnNetwork | RnnSupernet, x: torch.Tensor, arch: RnnArch, start: int):
    """Eval-mode cell outputs (T, B, H) computed node by node, without grouping."""
    emb = model.encoder(x)
    h = torch.zeros(x.shape[1], model.nhid)
    outs = []
    for t in range(x.shape[0]):
        c0, g0 = (torch.cat([emb[t], h], dim=-1) @ model.w0).chunk(2, dim=-1)
        states = [h + torch.sigmoid(c0) * (torch.tanh(g0) - h)]
        for i, (p, a) in enumerate(arch.nodes, start=1):
            w = model.ws[i - 1] if isinstance(model, RnnNetwork) else model.block(i, p, a)
            c, g = (states[p] @ w).chunk(2, dim=-1)
            states.append(states[p] + torch.sigmoid(c) * (REF_ACTS[a](g) - states[p]))
        h = torch.stack(states[start:]).mean(dim=0)
        outs.append(h)
    return torch.stack(outs)


def test_network_forward_backward_shapes(space):
    for i, arch in enumerate(archs(space)):
        torch.manual_seed(i)
        model = RnnNetwork(V, arch, nhid=H)
        logits, hidden, raw = model(tokens(i), model.init_hidden(B))
        assert logits.shape == (T, B, V)
        assert hidden.shape == (B, H)
        assert raw.shape == (T, B, H)
        torch.testing.assert_close(hidden, raw[-1])
        task = LanguageModelTask()
        loss, _ = task.loss((logits, hidden, raw), (None, tokens(i + 1)))
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_supernet_forward_backward(space):
    torch.manual_seed(0)
    net = RnnSupernet(V, nhid=H)
    hidden = None
    for arch in archs(space):
        logits, hidden, raw = net(tokens(), hidden, arch)
        assert logits.shape == (T, B, V)
        assert raw.shape == (T, B, H)
        logits.float().logsumexp(-1).mean().backward()
        hidden = hidden.detach()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_grouped_cell_matches_node_by_node(space):
    torch.manual_seed(0)
    for arch in archs(space):
        model = RnnNetwork(V, arch, nhid=H).eval()
        net = RnnSupernet(V, nhid=H, average_s0=False).eval()
        with torch.no_grad():
            torch.testing.assert_close(
                model(tokens())[2], reference_outputs(model, tokens(), arch, 1)
            )
            torch.testing.assert_close(
                net(tokens(), None, arch)[2], reference_outputs(net, tokens(), arch, 1)
            )
            net.average_s0 = True
            torch.testing.assert_close(
                net(tokens(), None, arch)[2], reference_outputs(net, tokens(), arch, 0)
            )


def test_eval_is_deterministic_and_training_is_not(space):
    torch.manual_seed(0)
    model = RnnNetwork(V, space.parse(NAO_WS_PTB_BEST), nhid=H)
    with torch.no_grad():
        model.eval()
        torch.testing.assert_close(model(tokens())[0], model(tokens())[0], rtol=0, atol=0)
        model.train()
        assert not torch.equal(model(tokens())[0], model(tokens())[0])


def test_locked_dropout_masks_are_constant_over_time():
    torch.manual_seed(0)
    out = locked_dropout(torch.ones(T, B, H), 0.5, training=True)
    assert torch.equal(out, out[:1].expand_as(out))
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(
        locked_dropout(torch.ones(T, B, H), 0.5, training=False), torch.ones(T, B, H)
    )
    embed = torch.nn.Embedding(V, H)
    word = torch.full((T, B), 4)
    dropped = embedded_dropout(embed, word, 0.5, training=True)  # one word: one row, kept or not
    assert torch.equal(dropped, dropped[:1, :1].expand_as(dropped))


def test_cell_masks_are_locked_within_a_batch(space):
    """With the s0 gate saturated and no h path, h_t depends only on x_t and the masks: a
    constant input must give a constant output unless a mask changes over time."""
    drops = RnnDropouts(output=0.5, hidden=0.5, x=0.3, input=0.3, embedding=0.0)
    torch.manual_seed(0)
    model = RnnNetwork(V, space.parse(NAO_WS_PTB_BEST), nhid=H, dropouts=drops).train()
    with torch.no_grad():
        model.encoder.weight[3] = 1.0
        model.w0[:H, :H] = 10.0  # x -> c0: sigmoid(c0) == 1 in fp32, so s0 = tanh(g0)
        model.w0[H:] = 0.0  # no h_{t-1} -> s0 path
        logits, _, raw = model(torch.full((T, B), 3))
    torch.testing.assert_close(raw, raw[:1].expand_as(raw), atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, logits[:1].expand_as(logits), atol=1e-4, rtol=0)
    assert not torch.equal(raw[:, 0], raw[:, 1])  # masks differ between sequences


def test_supernet_gradients_reach_only_sampled_blocks(space):
    torch.manual_seed(0)
    net = RnnSupernet(V, nhid=H)
    arch = space.sample(np.random.default_rng(3))
    logits, _, _ = net(tokens(), None, arch)
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens(1).flatten()).backward()
    for i, (p, a) in enumerate(arch.nodes, start=1):
        grad = net.banks[i - 1].grad
        assert grad.shape == (4 * i, H, 2 * H)
        used = 4 * p + a
        assert grad[used].abs().sum() > 0
        assert torch.count_nonzero(torch.cat([grad[:used], grad[used + 1 :]])) == 0
    assert net.w0.grad.abs().sum() > 0


def test_average_s0_changes_the_output(space):
    arch = space.parse(NAO_WS_PTB_BEST)
    torch.manual_seed(0)
    with_s0 = RnnSupernet(V, nhid=H, average_s0=True).eval()
    without = RnnSupernet(V, nhid=H, average_s0=False).eval()
    without.load_state_dict(with_s0.state_dict())
    with torch.no_grad():
        assert not torch.allclose(
            with_s0(tokens(), None, arch)[0], without(tokens(), None, arch)[0]
        )
    with pytest.raises(InvalidArchitecture):
        with_s0(tokens(), None, RnnArch(((0, 0),)))
    bad = RnnArch(((0, 0), (2, 0), *arch.nodes[2:]))  # s2 reads itself
    with pytest.raises(InvalidArchitecture):
        RnnNetwork(V, bad, nhid=H)(tokens())


def test_invalid_dropouts_are_rejected():
    with pytest.raises(InvalidConfig):
        RnnDropouts(output=1.0)
    with pytest.raises(InvalidConfig):
        RnnDropouts(hidden=-0.1)


def test_task_perplexity_is_exp_mean_nll(space):
    torch.manual_seed(0)
    model = RnnNetwork(V, space.parse(NAO_WS_PTB_BEST), nhid=H).eval()
    task = LanguageModelTask()
    grid = tokens(0, (40, B))
    batches = [(b.x, b.y) for b in lm_batches(grid, 6, random_length=False)]
    metrics = evaluate(model, task, batches, forward=CarryHidden())
    # Reference: the whole stream in one window has the same NLL (the hidden state carries).
    with torch.no_grad():
        logits = model(grid[:-1])[0]
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), grid[1:].flatten())
    assert metrics["loss"] == pytest.approx(float(nll), rel=1e-5)
    assert metrics["ppl"] == pytest.approx(math.exp(metrics["loss"]), rel=1e-9)
    sums = MetricSums()
    outputs = model(grid[:5])
    sums.add(task.eval_sums(outputs, (grid[:5], grid[1:6])), 5)
    summary = task.summarize(sums.read())
    assert summary["ppl"] == pytest.approx(math.exp(summary["loss"]), rel=1e-9)


def test_task_loss_adds_tar():
    logits = torch.randn(T, B, V)
    raw = torch.randn(T, B, H)
    y = tokens()
    plain, sums = LanguageModelTask(tar_beta=0.0).loss((logits, None, raw), (None, y))
    with_tar, _ = LanguageModelTask(tar_beta=1e-3).loss((logits, None, raw), (None, y))
    tar = 1e-3 * (raw[1:] - raw[:-1]).pow(2).mean()
    torch.testing.assert_close(with_tar, plain + tar)
    torch.testing.assert_close(sums["loss"], plain * y.numel())
    assert float(sums["tokens"]) == T * B


def test_lm_batches_lengths_and_lr_scale():
    grid = torch.arange(1000).view(500, 2)
    g = torch.Generator().manual_seed(0)
    final = list(lm_batches(grid, 35, g))
    assert all(5 <= b.seq_len <= 55 for b in final[:-1])
    assert all(b.lr_scale == b.seq_len / 35 for b in final)
    assert torch.equal(torch.cat([b.x for b in final]), grid[:-1])
    assert torch.equal(torch.cat([b.y for b in final]), grid[1:])
    assert len({b.seq_len for b in final}) > 3  # jittered
    search = list(lm_batches(grid, 35, torch.Generator().manual_seed(1), search=True))
    assert {b.seq_len for b in search[:-1]} <= {35, 17}
    fixed = list(lm_batches(grid, 35, random_length=False))
    assert [b.seq_len for b in fixed[:-1]] == [35] * (len(fixed) - 1)
    with pytest.raises(InvalidConfig):
        next(lm_batches(grid, 35))  # random lengths need a generator


def test_train_epoch_with_lr_scale_and_hidden_carry(space):
    torch.manual_seed(0)
    net = RnnSupernet(V, nhid=H)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    rng = np.random.default_rng(0)
    seen_lrs: list[float] = []

    def forward(model, x, progress):
        seen_lrs.append(opt.param_groups[0]["lr"])
        return carry(model, x, progress)

    carry = CarryHidden(lambda: space.sample(rng))
    batches = scale_lr(lm_batches(tokens(0, (60, B)), 10, torch.Generator().manual_seed(0)), opt)
    metrics, step = train_epoch(
        net,
        LanguageModelTask(),
        batches,
        opt,
        step=0,
        total_steps=10,
        grad_clip=0.25,
        forward=forward,
    )
    assert step == len(seen_lrs)
    assert math.isfinite(metrics["ppl"])
    assert len(set(seen_lrs)) > 1  # scaled per window
    assert opt.param_groups[0]["lr"] == 0.5  # restored
    assert carry.hidden is not None
    assert carry.hidden.shape == (B, H)


def test_paper_ptb_parameter_count(space):
    model = RnnNetwork(10_000, space.parse(NAO_WS_PTB_BEST), nhid=850, device="meta")
    assert model.encoder.weight.numel() == 8_500_000
    assert model.w0.numel() == 1700 * 1700  # ≈ 2.9 M
    assert model.ws.numel() == 11 * 850 * 1700  # ≈ 15.9 M
    total = sum(p.numel() for p in model.parameters())
    assert total == pytest.approx(27.3e6, rel=0.02)
