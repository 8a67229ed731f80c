"""Admission limits (jobs/limits.py): a job may not ask for more than the server's NAO_MAX_*
settings, nor name a path; each refusal is a 422 naming the request field and the setting."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from service_fixtures import service_env

from jobs import limits
from jobs.errors import InvalidInput
from nao_core.presets import PRESETS

SEARCH = {"space": "cnn", "dataset": "digits", "preset": "tiny"}
NOWS = {**SEARCH, "method": "nao"}
TRAIN = {"arch_name": "naonet-a", "dataset": "digits", "preset": "tiny"}
TABULAR = {"space": "nb201"}


def _refusal(resp: Any) -> tuple[str, str]:
    assert resp.status_code == 422, resp.text
    (detail,) = resp.json()["detail"]
    return ".".join(str(p) for p in detail["loc"]), detail["msg"]


@pytest.mark.parametrize(
    ("path", "body", "field", "msg"),
    [
        ("/searches", {**SEARCH, "budget": 10_000}, "budget", "<= 4000 (NAO_MAX_EPOCHS)"),
        (
            "/searches",
            {**SEARCH, "overrides": {"supernet.channels": 10**9}},
            "overrides.supernet.channels",
            "<= 512 (NAO_MAX_CHANNELS)",
        ),
        (
            "/searches",
            {**SEARCH, "overrides": {"data.batch_size": 10**30}},
            "overrides.data.batch_size",
            "<= 2048 (NAO_MAX_BATCH_SIZE)",
        ),
        (
            "/searches",
            {**SEARCH, "overrides": {"controller.hidden_size": 10**6}},
            "overrides.controller.hidden_size",
            "<= 2048 (NAO_MAX_HIDDEN)",
        ),
        (
            "/searches",
            {**SEARCH, "overrides": {"pool_size": 10**6}},
            "overrides.pool_size",
            "<= 5000 (NAO_MAX_CANDIDATES)",
        ),
        (
            "/searches",
            {**SEARCH, "overrides": {"rerank.optim": {"epochs": 10**5}}},
            "overrides.rerank.optim",
            "<= 4000 (NAO_MAX_EPOCHS)",
        ),
        ("/searches", {**NOWS, "budget": 10_000}, "budget", "<= 5000 (NAO_MAX_CANDIDATES)"),
        (
            "/searches",
            {**NOWS, "overrides": {"rounds": 10**6}},
            "overrides.rounds",
            "would train up to",
        ),
        (
            "/searches",
            {**NOWS, "overrides": {"candidate.model.layers": 1000}},
            "overrides.candidate.model.layers",
            "<= 24 (NAO_MAX_LAYERS)",
        ),
        ("/searches", {**NOWS, "max_gpu_hours": 1e5}, "max_gpu_hours", "(NAO_MAX_GPU_HOURS)"),
        (
            "/searches",
            {**TABULAR, "overrides": {"initial_pool": 10**6}},
            "overrides.initial_pool",
            "(NAO_MAX_CANDIDATES)",
        ),
        (
            "/trainings",
            {**TRAIN, "overrides": {"optim.epochs": 10**6}},
            "overrides.optim.epochs",
            "<= 4000 (NAO_MAX_EPOCHS)",
        ),
        (
            "/trainings",
            {**TRAIN, "overrides": {"model.channels": 4096}},
            "overrides.model.channels",
            "<= 512 (NAO_MAX_CHANNELS)",
        ),
        (
            "/trainings",
            {"arch_name": "nao-ws-rnn", "overrides": {"model.nhid": 10**6}},
            "overrides.model.nhid",
            "<= 2048 (NAO_MAX_HIDDEN)",
        ),
    ],
)
def test_a_job_over_a_limit_is_refused_naming_field_and_setting(
    client, auth, path, body, field, msg
) -> None:
    got_field, got_msg = _refusal(client.post(path, json=body, headers=auth))
    assert got_field == f"body.{field}"
    assert msg in got_msg


@pytest.mark.parametrize("value", [1e30, 2.5, 64.0, "1e30", True])
def test_a_size_that_is_not_an_integer_is_refused(client, auth, value) -> None:
    body = {**TRAIN, "overrides": {"data.batch_size": value}}
    field, msg = _refusal(client.post("/trainings", json=body, headers=auth))
    assert field == "body.overrides.data.batch_size"
    assert "integer" in msg


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/trainings", {**TRAIN, "overrides": {"data.dataset": "/etc"}}, "overrides.data.dataset"),
        ("/trainings", {**TRAIN, "overrides": {"data.dataset": "../x"}}, "overrides.data.dataset"),
        ("/trainings", {**TRAIN, "overrides": {"data": {"dataset": "/etc"}}}, "overrides.data"),
        (
            "/trainings",
            {"arch_name": "naonet-a", "overrides": {"data.dataset": "ptb"}},
            "overrides",
        ),
        (
            "/searches",
            {**SEARCH, "overrides": {"data.data_dir": "/etc"}},
            "overrides.data.data_dir",
        ),
        ("/searches", {**NOWS, "overrides": {"candidate.data.dataset": "/"}}, "overrides"),
        ("/trainings", {**TRAIN, "overrides": {"storage_dir": "/tmp"}}, "overrides.storage_dir"),
    ],
)
def test_no_override_names_a_path(client, auth, path, body, field) -> None:
    got, msg = _refusal(client.post(path, json=body, headers=auth))
    assert got.startswith(f"body.{field}")
    assert "/etc" not in msg or "unknown dataset" in msg


def test_limits_come_from_the_settings(client, auth) -> None:
    body = {**TRAIN, "overrides": {"model.channels": 64}}
    with service_env(max_channels="32"):
        field, msg = _refusal(client.post("/trainings", json=body, headers=auth))
    assert (field, msg) == ("body.overrides.model.channels", "must be <= 32 (NAO_MAX_CHANNELS)")
    with service_env(max_channels="2"):  # the preset's own C=8 is then over it
        field, _ = _refusal(client.post("/trainings", json=TRAIN, headers=auth))
    assert field == "body.preset"


def test_a_job_within_the_limits_is_accepted(client, auth) -> None:
    body = {**SEARCH, "budget": 4000, "overrides": {"supernet.channels": 512}}
    assert client.post("/searches", json=body, headers=auth).status_code == 202


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_within_the_default_limits(name: str) -> None:
    cfg = PRESETS[name]
    if not dataclasses.is_dataclass(cfg):
        return
    limits.check_config(cfg, {})
    if hasattr(cfg, "rounds"):
        limits.check_candidates(cfg, {})


def test_a_value_no_field_set_is_blamed_on_the_preset() -> None:
    where = {"rerank.optim": "overrides.rerank.optim", "seed": "seed"}
    assert limits.field_of("rerank.optim.epochs", where) == "overrides.rerank.optim"
    assert limits.field_of("optim.epochs", where) == "preset"
    paper = PRESETS["train/paper"]
    longer = dataclasses.replace(paper, optim=dataclasses.replace(paper.optim, epochs=4001))
    with pytest.raises(InvalidInput, match=r"must be <= 4000 \(NAO_MAX_EPOCHS\)"):
        limits.check_config(longer, {}, "cnn")
