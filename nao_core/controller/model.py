"""The encoder-predictor-decoder (EPD) of NAO (nao-spec §2.1, NAO_V1 layout).

Shapes: B batch, L tokens per arch, T = L / group encoder steps, H hidden, V vocabulary.

* Encoder: Embedding(V, H/group); ``group`` consecutive token embeddings are concatenated
  into one LSTM input of size H; the LSTM outputs are L2-normalised per step (the attention
  memory ``e``) and the architecture embedding is ``normalize(mean_t e_t)``.
* Predictor: ``mlp_layers`` x [Linear -> ReLU -> Dropout] then Linear -> sigmoid, on the
  architecture embedding.
* Decoder: LSTM started from (emb, emb), Luong "general" attention after the LSTM
  (q = W_in h; context over ``e``; o = tanh(W_out [c; h])), then Linear -> log-softmax.
  Because attention comes after the LSTM (no input feeding), teacher-forced training runs the
  LSTM over the whole sequence in one call; only greedy decoding steps token by token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nao_core.config import ControllerConfig
from nao_core.errors import InvalidConfig
from nao_core.search_space.base import SearchSpace


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch ops of the calling thread with one intra-op thread, then restore the count.

    The controller always computes this way (its fit per replica, its inference whole): a
    kernel's float rounding may change with its thread count, and the same seed must give
    the same controller and proposals on a 1-core worker and a 64-core host. The controller's
    matrices are too small for a second thread to pay anyway (``controller.fit``).
    """
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def dropout(
    x: torch.Tensor, p: float, training: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Inverted dropout; with ``generator`` the mask comes from it instead of the global RNG.

    Replicas that train slices of one batch in parallel threads (``controller.fit``) each
    draw from their own generator, so a run does not depend on how the threads interleave.
    """
    if not training or p == 0.0:
        return x
    if generator is None:
        return F.dropout(x, p, True)
    keep = torch.empty(x.shape, dtype=x.dtype, device=x.device).bernoulli_(
        1.0 - p, generator=generator
    )
    return x * keep / (1.0 - p)


class TokenLSTM(nn.Module):
    """One-layer LSTM whose inputs are token embeddings, ``group`` of them concatenated.

    Parameters are an ordinary ``Embedding`` and ``LSTM`` weights. Without embedding dropout
    the input projection W_ih [E(a); E(b)] equals a folded matrix (W_ih (I (x) E^T)) applied to
    one-hot tokens, so the LSTM kernel multiplies by a K = group*V input instead of K = H:
    the same function and gradients, a third less arithmetic per step.
    """

    def __init__(self, vocab_size: int, group: int, hidden: int, dropout: float) -> None:
        super().__init__()
        if hidden % group:
            raise ValueError(f"hidden size {hidden} must be divisible by the token group {group}")
        self.group, self.vocab_size = group, vocab_size
        self.fold_inputs = True  # off only to benchmark against the plain formulation
        self.embedding = nn.Embedding(vocab_size, hidden // group)
        self.dropout = dropout
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)

    def forward(
        self,
        tokens: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, L = tokens.shape
        lstm = self.lstm
        H = lstm.hidden_size
        if state is None:
            zeros = torch.zeros(1, B, H, dtype=self.embedding.weight.dtype, device=tokens.device)
            state = (zeros, zeros)
        w_ih = lstm.weight_ih_l0
        if not self.fold_inputs or (self.dropout > 0 and self.training):
            x = dropout(self.embedding(tokens), self.dropout, self.training, generator)
            x = x.reshape(B, L // self.group, -1)  # (B, T, H)
        else:
            E = self.embedding.weight  # (V, H/g)
            w_ih = torch.cat([w @ E.T for w in w_ih.chunk(self.group, dim=1)], dim=1)  # (4H, gV)
            x = F.one_hot(tokens, self.vocab_size).to(E.dtype).reshape(B, L // self.group, -1)
        weights = [w_ih, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0]
        out, h, c = torch.lstm(x, state, weights, True, 1, 0.0, self.training, False, True)
        return out, (h, c)


class Encoder(nn.Module):
    def __init__(self, vocab_size: int, group: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.rnn = TokenLSTM(vocab_size, group, hidden, dropout)

    def forward(
        self, tokens: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.rnn(tokens, generator=generator)  # (B, T, H)
        memory = F.normalize(out.float(), dim=-1)  # attention memory e_t
        return memory, pool_embedding(memory)


def pool_embedding(memory: torch.Tensor) -> torch.Tensor:
    """Architecture embedding from the per-step memory: normalize(mean_t e_t), (B, H)."""
    return F.normalize(memory.mean(dim=1), dim=-1)


class Predictor(nn.Module):
    def __init__(
        self, hidden: int, layers: int, width: int, dropout: float, init_range: float = 0.0
    ) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        size = hidden
        for _ in range(layers):
            mods += [nn.Linear(size, width), nn.ReLU(), nn.Dropout(dropout)]
            size = width
        mods.append(nn.Linear(size, 1))
        self.mlp = nn.Sequential(*mods)
        if init_range > 0:  # the NAO-WS RNN controller's U(-0.04, 0.04), zero biases
            for mod in self.mlp:
                if isinstance(mod, nn.Linear):
                    nn.init.uniform_(mod.weight, -init_range, init_range)
                    nn.init.zeros_(mod.bias)

    def forward(self, emb: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = emb
        for mod in self.mlp:
            if isinstance(mod, nn.Dropout):
                x = dropout(x, mod.p, self.training, generator)
            else:
                x = mod(x)
        return torch.sigmoid(x.float()).squeeze(-1)  # (B,) in (0, 1), higher better


class Decoder(nn.Module):
    """``attention="general"``: scores (W_in h) . e_t (NAO_V1); ``"dot"``: h . e_t, no W_in
    (the NAO-WS RNN controller). Both read out tanh(W_out [context; h])."""

    def __init__(
        self, vocab_size: int, hidden: int, dropout: float, attention: str = "general"
    ) -> None:
        super().__init__()
        self.rnn = TokenLSTM(vocab_size, 1, hidden, dropout)
        self.attn_in = nn.Linear(hidden, hidden, bias=False) if attention == "general" else None
        self.attn_out = nn.Linear(2 * hidden, hidden, bias=False)
        self.classifier = nn.Linear(hidden, vocab_size)
        self.fold_attention = True  # off only to benchmark against the plain formulation

    def _project_memory(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention keys and (pre-scaled) values from the T-step memory: (B, T, H) each.

        Luong attention scores (W_in h) . e_t and W_out's context half W_c sum_t a_t e_t are
        linear in e, so both projections move onto the memory: h . (W_in^T e_t) and
        sum_t a_t (W_c e_t). The memory has T = L / group steps, the queries L, so this is
        the cheaper side, and the concatenation [context; h] is never built. The values
        carry the factor 2 of ``_readout``'s tanh.
        """
        H = self.attn_out.weight.shape[0]
        w_c = self.attn_out.weight[:, :H]
        if self.attn_in is None:  # dot-product attention: the keys are the memory itself
            return memory, memory @ (2.0 * w_c.T)
        kv = memory @ torch.cat([self.attn_in.weight, 2.0 * w_c.T], dim=1)  # (B, T, 2H)
        return kv[..., :H], kv[..., H:]

    def _readout(
        self,
        h: torch.Tensor,
        memory: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits (B, S, V) from decoder states h (B, S, H) and the memory (B, T, H).

        classifier(tanh(z)) is computed as classifier'(sigmoid(2z)), tanh(z) = 2 sigmoid(2z) - 1,
        with the 2 folded into the weights that make z and the affine 2 s - 1 into the
        classifier's weight and bias. Equal in value; on CPU ATen's sigmoid is several times
        faster than its tanh, and the only full-size elementwise op left is the sigmoid.
        """
        if not self.fold_attention:
            return self._plain_readout(h, memory)
        keys, values = self._project_memory(memory) if kv is None else kv
        scores = torch.bmm(h, keys.transpose(1, 2).to(h.dtype))  # (B, S, T)
        # softmax in fp32 under bf16 autocast: as precise, and faster than bf16 on CPU
        weights = torch.softmax(scores.float(), dim=-1)
        w_h = 2.0 * self.attn_out.weight[:, h.shape[-1] :]
        z2 = torch.baddbmm(F.linear(h, w_h), weights.to(values.dtype), values.to(h.dtype))
        w, b = self.classifier.weight, self.classifier.bias
        return F.linear(torch.sigmoid(z2), 2.0 * w, b - w.sum(dim=1))

    def _plain_readout(self, h: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Luong attention as written: q = W_in h, context, tanh(W_out [context; h])."""
        query = h if self.attn_in is None else self.attn_in(h)
        scores = torch.bmm(query, memory.transpose(1, 2).to(h.dtype))  # (B, S, T)
        context = torch.bmm(torch.softmax(scores, dim=-1), memory.to(h.dtype))
        return self.classifier(torch.tanh(self.attn_out(torch.cat([context, h], dim=-1))))

    def forward(
        self,
        tokens: torch.Tensor,
        memory: torch.Tensor,
        emb: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Teacher forcing: logits (B, L, V) for targets ``tokens``, inputs <sos> + tokens[:-1]."""
        inputs = F.pad(tokens[:, :-1], (1, 0), value=0)  # token 0 is <sos>
        state = (emb.unsqueeze(0).contiguous(), emb.unsqueeze(0).contiguous())
        h, _ = self.rnn(inputs, state, generator)
        return self._readout(h, memory)

    @torch.no_grad()
    def greedy(self, memory: torch.Tensor, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Constrained greedy decoding: (B, L) tokens, each step's argmax inside ``mask[t]``."""
        B, L = memory.shape[0], mask.shape[0]
        penalty = torch.zeros(mask.shape, dtype=memory.dtype, device=memory.device)
        penalty.masked_fill_(~mask, float("-inf"))  # (L, V)
        state = (emb.unsqueeze(0).contiguous(), emb.unsqueeze(0).contiguous())
        token = torch.zeros(B, 1, dtype=torch.long, device=memory.device)
        out = torch.empty(B, L, dtype=torch.long, device=memory.device)
        kv = self._project_memory(memory)  # the same for every step: project it once
        for t in range(L):
            h, state = self.rnn(token, state)
            logits = self._readout(h, memory, kv)[:, 0] + penalty[t]
            token = logits.argmax(dim=-1, keepdim=True)
            out[:, t] = token[:, 0]
        return out


class Controller(nn.Module):
    """EPD over one search space's token layout."""

    def __init__(self, space: SearchSpace, cfg: ControllerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ControllerConfig()
        self.space_name = space.name
        group = cfg.token_group or space.group  # tokens per encoder step
        if space.length % group or cfg.hidden_size % group:
            raise InvalidConfig(
                f"controller.token_group: {group} must divide the {space.length} tokens of "
                f"{space.name} and controller.hidden_size {cfg.hidden_size}"
            )
        self.length, self.vocab_size, self.group = space.length, space.vocab_size, group
        self.encoder = Encoder(space.vocab_size, group, cfg.hidden_size, cfg.encoder_dropout)
        self.predictor = Predictor(
            cfg.hidden_size, cfg.mlp_layers, cfg.mlp_hidden_size, cfg.mlp_dropout,
            cfg.mlp_init_range,
        )  # fmt: skip
        self.decoder = Decoder(
            space.vocab_size, cfg.hidden_size, cfg.decoder_dropout, cfg.attention
        )
        self.register_buffer("mask", torch.from_numpy(np.ascontiguousarray(space.token_mask())))
        symmetries = [torch.from_numpy(g).long() for g in space.symmetries()]
        self.register_buffer(
            "symmetries",
            torch.stack(symmetries)
            if symmetries
            else torch.empty(0, 0, space.length, dtype=torch.long),
        )

    def forward(
        self, tokens: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted score (B,) and teacher-forced decoder logits (B, L, V).

        Dropout masks come from ``generator`` when one is given, else from the global RNG.
        """
        memory, emb = self.encoder(tokens, generator)
        return self.predictor(emb, generator), self.decoder(tokens, memory, emb, generator)

    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        with single_thread():
            _, emb = self.encoder(tokens)
            return self.predictor(emb)

    def reconstruct(self, tokens: torch.Tensor) -> torch.Tensor:
        with single_thread():
            memory, emb = self.encoder(tokens)
            return self.decoder.greedy(memory, emb, self.mask)

    def augment(
        self, tokens: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Apply one random symmetry permutation per group to every row of ``tokens`` (B, L)."""
        for perms in self.symmetries:  # (k, L)
            choice = torch.randint(perms.shape[0], (tokens.shape[0],), generator=generator)
            tokens = torch.gather(tokens, 1, perms[choice.to(perms.device)])
        return tokens
