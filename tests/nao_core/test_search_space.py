"""Every space: token and text round trips, masks, canonical forms, known published strings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nao_core.errors import InvalidArchitecture, UnknownName
from nao_core.search_space import create_search_space, list_search_spaces

SPACES = list_search_spaces()
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@pytest.mark.parametrize("name", SPACES)
@given(seed=seeds)
@settings(max_examples=60, deadline=None)
def test_round_trips(name: str, seed: int) -> None:
    space = create_search_space(name)
    arch = space.sample(np.random.default_rng(seed))
    space.validate(arch)
    tokens = space.encode(arch)
    assert len(tokens) == space.length
    assert space.decode(tokens) == arch
    assert space.parse(space.to_str(arch)) == arch
    canon = space.canonical(arch)
    assert space.canonical(canon) == canon
    assert space.canonical_key(arch) == space.canonical_key(canon)


@pytest.mark.parametrize("name", SPACES)
@given(seed=seeds)
@settings(max_examples=60, deadline=None)
def test_any_sequence_inside_the_mask_decodes(name: str, seed: int) -> None:
    """What the constrained decoder can emit is exactly what decode accepts."""
    space = create_search_space(name)
    mask = space.token_mask()
    rng = np.random.default_rng(seed)
    tokens = [int(rng.choice(np.flatnonzero(mask[t]))) for t in range(space.length)]
    arch = space.decode(tokens)
    assert list(space.encode(arch)) == tokens


@pytest.mark.parametrize("name", SPACES)
def test_mask_never_allows_sos(name: str) -> None:
    space = create_search_space(name)
    mask = space.token_mask()
    assert mask.shape == (space.length, space.vocab_size)
    assert not mask[:, 0].any()
    assert mask.any(axis=1).all()


@pytest.mark.parametrize("name", SPACES)
def test_bad_tokens_are_rejected(name: str) -> None:
    space = create_search_space(name)
    with pytest.raises(InvalidArchitecture):
        space.decode([0] * space.length)
    with pytest.raises(InvalidArchitecture):
        space.decode([1] * (space.length + 1))
    with pytest.raises(InvalidArchitecture):
        space.parse("not an architecture")


@pytest.mark.parametrize("name", SPACES)
@given(seed=seeds)
@settings(max_examples=30, deadline=None)
def test_symmetries_preserve_the_architecture(name: str, seed: int) -> None:
    space = create_search_space(name)
    rng = np.random.default_rng(seed)
    arch = space.sample(rng)
    tokens = np.array(space.encode(arch))
    for group in space.symmetries():
        swapped = tokens[group[rng.integers(len(group))]]
        other = space.decode(swapped.tolist())
        assert space.canonical(other) == space.canonical(arch)


def test_unknown_space() -> None:
    with pytest.raises(UnknownName, match="cnn"):
        create_search_space("transformer")


# Published strings (nao-spec §1a, §1b, §6.4, §6.5).
NAONET_B = "0 1 0 2 0 1 2 2 1 3 0 2 4 0 1 3 2 1 0 3  1 1 1 0 2 1 2 4 1 0 2 3 3 1 2 2 0 2 0 2"
NAONET_B_TOKENS = (
    "1 8 1 9 1 8 3 9 2 10 1 9 5 7 2 10 3 8 1 10  2 8 2 7 3 8 3 11 2 7 3 10 4 8 3 9 1 9 1 9"
)
NAO_WS_CNN = "0 1 0 4 2 2 1 3 1 0 2 0 2 3 1 3 1 2 0 4  1 1 0 3 2 3 2 3 1 0 0 1 0 4 2 4 2 3 2 3"
NAO_WS_CNN_TOKENS = (
    "1 8 1 11 3 9 2 10 2 7 3 7 3 10 2 10 2 9 1 11  2 8 1 10 3 10 3 10 2 7 1 8 1 11 3 11 3 10 3 10"
)
NAONET_A = "0 7 1 15 2 8 1 7 0 6 1 7 0 8 4 7 1 5 0 7  0 7 1 13 0 6 0 14 0 9 1 10 0 14 2 6 1 11 0 7"


@pytest.mark.parametrize(
    ("ints", "tokens"), [(NAONET_B, NAONET_B_TOKENS), (NAO_WS_CNN, NAO_WS_CNN_TOKENS)]
)
def test_cnn_published_tokens(ints: str, tokens: str) -> None:
    space = create_search_space("cnn")
    assert list(space.encode(space.parse(ints))) == [int(t) for t in tokens.split()]


def test_naonet_b_text_form() -> None:
    space = create_search_space("cnn")
    text = space.to_str(space.parse(NAONET_B))
    assert text.startswith("normal: h2=sep_conv_5x5(h0)+avg_pool_3x3(h0); h3=sep_conv_5x5(h0)")
    assert "reduction: h2=sep_conv_5x5(h1)+sep_conv_3x3(h1)" in text


def test_cnn_large_reads_naonet_a_in_v1_ids() -> None:
    space = create_search_space("cnn-large")
    arch = space.parse(NAONET_A)
    assert space.vocab_size == 18
    text = space.to_str(arch)
    assert "h2=conv_3x3(h0)+avg_pool_5x5(h1)" in text
    assert "h4=conv_1x7_7x1(h0)+max_pool_2x2(h1)" in text  # the PT variant (nao-spec §8.19)
    assert " ".join(map(str, space.to_ints(arch))) == " ".join(NAONET_A.split())
    with pytest.raises(InvalidArchitecture, match=r"outside 5\.\.15"):
        space.parse(NAONET_B)  # small-space op ids are not large-space ids


def test_cnn_canonical_ignores_branch_order() -> None:
    space = create_search_space("cnn")
    a = space.parse(NAONET_B)
    ints = NAONET_B.split()
    ints[0:4] = ints[2:4] + ints[0:2]  # swap the branches of normal h2
    b = space.parse(" ".join(ints))
    assert a != b
    assert space.canonical_key(a) == space.canonical_key(b)
    assert space.canonical_hash(a) == space.canonical_hash(b)


def test_cnn_inputs_must_precede_the_node() -> None:
    space = create_search_space("cnn")
    ints = NAONET_B.split()
    ints[0] = "2"  # h2 cannot read h2
    with pytest.raises(InvalidArchitecture, match="h2 reads h2"):
        space.parse(" ".join(ints))


def test_rnn_published_cells_and_mappings() -> None:
    space = create_search_space("rnn")
    ws = space.parse("0 1 1 1 2 2 1 2 4 1 4 1 4 1 7 1 8 2 1 0 4 1")
    assert (
        " ".join(map(str, space.encode(ws)))
        == "1 13 2 13 3 14 2 14 5 13 5 13 5 13 8 13 9 14 2 12 5 13"
    )
    assert space.to_str(ws).startswith("s1=relu(s0); s2=relu(s1); s3=sigmoid(s2)")
    nao = space.from_nao_mapping([0, 1, 0, 1, 1, 1, 3, 0, 4, 1, 4, 1, 5, 1, 1, 1, 7, 1, 1, 1, 1, 2])
    assert space.to_str(nao).endswith("s11=identity(s1)")
    assert space.vocab_size == 16
    assert space.length == 22


def test_nb201_strings_match_the_table_format() -> None:
    space = create_search_space("nb201")
    text = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    )
    arch = space.parse(text)
    assert arch.ops == (3, 3, 3, 1, 3, 3)
    assert space.to_str(arch) == text
    assert space.from_ops_code("333133") == arch
    with pytest.raises(InvalidArchitecture, match="must read node 1"):
        space.parse(text.replace("nor_conv_3x3~1|+|skip", "nor_conv_3x3~0|+|skip"))
    with pytest.raises(InvalidArchitecture, match="unknown op"):
        space.parse(text.replace("skip_connect", "zero"))
