"""The weight-sharing RNN supernet of NAO-WS on PTB (nao-spec §4.4, ``RNNModelSearch``).

One one-layer language model holds the weights of every cell of the "rnn" space;
``forward(tokens, hidden, arch)`` runs exactly the sampled cell (one architecture per
minibatch during search). Embedding = hidden = 300 by default, decoder tied to the embedding,
W0 of shape (ninp + nhid) × 2·nhid (600 × 600).

ENAS-style sharing per (node, predecessor, activation): node i (1..11) owns a bank of shape
(4·i, nhid, 2·nhid) with one nhid × 2·nhid block per (p, a), at index 4·p + a — the spec's
row block [(4p + a)·nhid, (4p + a + 1)·nhid) of a (4·i·nhid) × 2·nhid matrix. Only the
blocks of the sampled (p, a) pairs take part in a forward pass, so only they get gradients.

Decision (spec §8 item 17): the NAO-WS search cell outputs the mean of **s0..s11** (12
states, ``NAO-WS/rnn/model_search.py``), while stand-alone cells (``RnnNetwork``) average
s1..s11. We follow the NAO-WS search code by default, ``average_s0=True``; set it to False to
score candidates with the same cell output as final training.

The cell, dropouts and initialisation are those of ``nao_core.models.rnn`` (same defaults:
output 0.75, dropouth 0.25, dropoutx 0.75, dropouti 0.2, dropoute 0; U(−0.04, 0.04)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nao_core.errors import InvalidArchitecture
from nao_core.models.rnn import INIT_RANGE, RnnDropouts, RnnLanguageModelBase, build_groups
from nao_core.search_space.rnn import ACTIVATIONS, RnnArch

NUM_ACTIVATIONS = len(ACTIVATIONS)


class RnnSupernet(RnnLanguageModelBase):
    """Weight-sharing one-layer RNN LM over every cell of the "rnn" space.

    Args:
        vocab_size: Words in the vocabulary.
        nhid: Embedding = hidden size (tied decoder); 300 in NAO-WS.
        nodes: Computed nodes per cell (11).
        dropouts: Dropout rates; the defaults are the NAO-WS search values.
        average_s0: Average s0..sN (NAO-WS search) instead of s1..sN for the cell output.
        device, dtype: Where and in what type to create the parameters.
    """

    def __init__(
        self,
        vocab_size: int,
        nhid: int = 300,
        nodes: int = 11,
        dropouts: RnnDropouts | None = None,
        average_s0: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__(vocab_size, nhid, dropouts or RnnDropouts(), device, dtype)
        self.nodes = nodes
        self.average_s0 = average_s0
        self.banks = nn.ParameterList(
            nn.Parameter(
                torch.empty(NUM_ACTIVATIONS * i, nhid, 2 * nhid, device=device, dtype=dtype)
            )
            for i in range(1, nodes + 1)
        )  # banks[i - 1]: (4·i, H, 2H) for node i
        for bank in self.banks:
            nn.init.uniform_(bank, -INIT_RANGE, INIT_RANGE)

    def block(self, node: int, pred: int, act: int) -> Tensor:
        """The (nhid, 2·nhid) weight node ``node`` (1-based) uses for (pred, act)."""
        return self.banks[node - 1][NUM_ACTIVATIONS * pred + act]

    def forward(
        self, tokens: Tensor, hidden: Tensor | None, arch: RnnArch
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run the LM with cell ``arch`` over a window.

        Args:
            tokens: (T, B) word ids.
            hidden: (B, H) state carried from the previous window; None for zeros.
            arch: The sampled cell (``nodes`` nodes, NAO-WS activation mapping).

        Returns:
            logits (T, B, V), the new hidden state (B, H), and the raw cell outputs (T, B, H)
            before output dropout.
        """
        if len(arch.nodes) != self.nodes:
            raise InvalidArchitecture(
                f"arch has {len(arch.nodes)} nodes; the supernet has {self.nodes}"
            )
        groups = build_groups(arch.nodes, lambda i: self.block(i, *arch.nodes[i - 1]))
        acts = [a for _, a in arch.nodes]
        return self._forward(tokens, hidden, groups, acts, average_from=0 if self.average_s0 else 1)
