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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nao_core.config import ControllerConfig
from nao_core.search_space.base import SearchSpace


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
        self.dropout = nn.Dropout(dropout)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)

    def forward(
        self, tokens: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        B, L = tokens.shape
        lstm = self.lstm
        H = lstm.hidden_size
        if state is None:
            zeros = torch.zeros(1, B, H, dtype=self.embedding.weight.dtype, device=tokens.device)
            state = (zeros, zeros)
        w_ih = lstm.weight_ih_l0
        if not self.fold_inputs or (self.dropout.p > 0 and self.training):
            x = self.dropout(self.embedding(tokens)).reshape(B, L // self.group, -1)  # (B, T, H)
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

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.rnn(tokens)  # (B, T, H)
        memory = F.normalize(out.float(), dim=-1)  # attention memory e_t
        return memory, pool_embedding(memory)


def pool_embedding(memory: torch.Tensor) -> torch.Tensor:
    """Architecture embedding from the per-step memory: normalize(mean_t e_t), (B, H)."""
    return F.normalize(memory.mean(dim=1), dim=-1)


class Predictor(nn.Module):
    def __init__(self, hidden: int, layers: int, width: int, dropout: float) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        size = hidden
        for _ in range(layers):
            mods += [nn.Linear(size, width), nn.ReLU(), nn.Dropout(dropout)]
            size = width
        mods.append(nn.Linear(size, 1))
        self.mlp = nn.Sequential(*mods)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(emb).float()).squeeze(-1)  # (B,) in (0, 1), higher better


class Decoder(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.rnn = TokenLSTM(vocab_size, 1, hidden, dropout)
        self.attn_in = nn.Linear(hidden, hidden, bias=False)
        self.attn_out = nn.Linear(2 * hidden, hidden, bias=False)
        self.classifier = nn.Linear(hidden, vocab_size)

    def _keys(self, memory: torch.Tensor) -> torch.Tensor:
        # (W_in h) . e == h . (W_in^T e): projecting the T-step memory is cheaper than the
        # S-step queries when S >= T, and equal in value.
        return memory @ self.attn_in.weight  # (B, T, H)

    def _readout(
        self, h: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor | None = None
    ) -> torch.Tensor:
        # h: (B, S, H) decoder states; memory: (B, T, H) -> logits (B, S, V).
        keys = self._keys(memory) if keys is None else keys
        scores = torch.bmm(h, keys.transpose(1, 2))  # (B, S, T)
        context = torch.bmm(torch.softmax(scores, dim=-1), memory.to(h.dtype))  # (B, S, H)
        out = torch.tanh(self.attn_out(torch.cat([context, h], dim=-1)))
        return self.classifier(out)

    def forward(
        self, tokens: torch.Tensor, memory: torch.Tensor, emb: torch.Tensor
    ) -> torch.Tensor:
        """Teacher forcing: logits (B, L, V) for targets ``tokens``, inputs <sos> + tokens[:-1]."""
        inputs = F.pad(tokens[:, :-1], (1, 0), value=0)  # token 0 is <sos>
        state = (emb.unsqueeze(0).contiguous(), emb.unsqueeze(0).contiguous())
        h, _ = self.rnn(inputs, state)
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
        keys = self._keys(memory)  # the same for every step: project the memory once
        for t in range(L):
            h, state = self.rnn(token, state)
            logits = self._readout(h, memory, keys)[:, 0] + penalty[t]
            token = logits.argmax(dim=-1, keepdim=True)
            out[:, t] = token[:, 0]
        return out


class Controller(nn.Module):
    """EPD over one search space's token layout."""

    def __init__(self, space: SearchSpace, cfg: ControllerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ControllerConfig()
        self.space_name = space.name
        self.length, self.vocab_size, self.group = space.length, space.vocab_size, space.group
        self.encoder = Encoder(space.vocab_size, space.group, cfg.hidden_size, cfg.encoder_dropout)
        self.predictor = Predictor(
            cfg.hidden_size, cfg.mlp_layers, cfg.mlp_hidden_size, cfg.mlp_dropout
        )
        self.decoder = Decoder(space.vocab_size, cfg.hidden_size, cfg.decoder_dropout)
        self.register_buffer("mask", torch.from_numpy(np.ascontiguousarray(space.token_mask())))
        symmetries = [torch.from_numpy(g).long() for g in space.symmetries()]
        self.register_buffer(
            "symmetries",
            torch.stack(symmetries)
            if symmetries
            else torch.empty(0, 0, space.length, dtype=torch.long),
        )

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted score (B,) and teacher-forced decoder logits (B, L, V)."""
        memory, emb = self.encoder(tokens)
        return self.predictor(emb), self.decoder(tokens, memory, emb)

    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        _, emb = self.encoder(tokens)
        return self.predictor(emb)

    def reconstruct(self, tokens: torch.Tensor) -> torch.Tensor:
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
