"""Searches over the NAS-Bench-201 table (``"space": "nb201"``): the API's checks, torch-free,
against the real Postgres + Redis (no worker). The worker side is tests/worker/test_tabular_jobs.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis

from nao_core.config import to_dict
from nao_core.presets import get_preset

pytestmark = [pytest.mark.db]

NB201 = {"space": "nb201", "method": "evolution", "budget": 30, "seed": 0}


def _fields(resp: Any) -> list[str]:
    assert resp.status_code == 422, resp.text
    return [".".join(str(p) for p in d["loc"]) for d in resp.json()["detail"]]


def test_nb201_search_is_queued_on_the_cpu_queue(client, auth, pg_service, nb201_table) -> None:
    r = client.post("/searches", json=NB201, headers=auth)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["space"] == "nb201"
    assert job["dataset"] == "cifar10"
    assert job["total"] == 30
    cfg = job["config"]
    assert cfg["method"] == "tabular"
    assert cfg["strategy"] == "evolution"
    assert cfg["table"] == "nb201"
    assert cfg["budget"] == 30
    assert cfg["seed"] == 0
    assert cfg["signal"] == "c10_valid_acc_200ep"
    assert cfg["report"] == "c10_test_acc_200ep"
    assert cfg["strategy_config"] == {"population_size": 20, "sample_size": 5}
    broker = redis.Redis.from_url(pg_service["NAO_BROKER_URL"])
    assert broker.llen(pg_service["NAO_QUEUE_PREFIX"] + "default") >= 1
    # a queued tabular search cancels like any other (not as a no-weight-sharing "nao" one)
    assert client.post(f"/searches/{job['id']}/cancel", headers=auth).json()["status"] == (
        "cancelled"
    )


def test_nb201_defaults_and_presets(client, auth, nb201_table) -> None:
    nao = client.post("/searches", json={"space": "nb201"}, headers=auth).json()
    assert nao["config"]["strategy"] == "nao"
    assert nao["config"]["budget"] == 150
    assert nao["preset"] == "nb201"
    assert nao["config"]["strategy_config"]["initial_pool"] == 10
    body = {
        "space": "nb201",
        "method": "nao",
        "budget": 20,
        "overrides": {"controller.epochs": 50},
        "signal": "c100_valid_acc_12ep",
        "report": "c100_test_acc_12ep",
    }
    tuned = client.post("/searches", json=body, headers=auth).json()
    assert tuned["config"]["strategy_config"]["controller"]["epochs"] == 50
    assert tuned["dataset"] == "cifar100"
    semi = {**NB201, "method": "nao", "preset": "nb201-seminas"}
    semi_job = client.post("/searches", json=semi, headers=auth).json()
    assert semi_job["config"]["strategy_config"]["controller"]["pseudo_labels"] == 500
    # the default is the tabular default preset; the published recipe is one name away
    assert nao["config"]["strategy_config"] == to_dict(get_preset("nao/nb201"))
    paper = client.post("/searches", json={**NB201, "method": "nao", "preset": "nb201-paper"},
                        headers=auth).json()  # fmt: skip
    assert paper["preset"] == "nb201-paper"
    assert paper["config"]["strategy_config"] == to_dict(get_preset("nao/nb201-paper"))
    assert paper["config"]["strategy_config"]["controller"]["pseudo_labels"] == 0
    rnd = client.post("/searches", json={**NB201, "method": "random"}, headers=auth).json()
    assert rnd["config"]["strategy_config"] is None
    assert rnd["preset"] is None
    full = client.post("/searches", json={**NB201, "budget": 15625}, headers=auth)
    assert full.status_code == 202, full.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**NB201, "table": "nb301"}, "body.table"),
        ({**NB201, "table": "../../etc/passwd"}, "body.table"),
        ({**NB201, "signal": "no_such_column"}, "body.signal"),
        ({**NB201, "signal": "arch_str"}, "body.signal"),
        ({**NB201, "report": "ops"}, "body.report"),
        ({**NB201, "method": "nao-ws"}, "body.method"),
        ({**NB201, "method": "darts"}, "body.method"),
        ({**NB201, "budget": 0}, "body.budget"),
        ({**NB201, "budget": 15626}, "body.budget"),
        ({**NB201, "budget": "30"}, "body.budget"),
        ({**NB201, "preset": "huge"}, "body.preset"),
        ({**NB201, "method": "random", "preset": "nb201"}, "body.preset"),
        ({**NB201, "method": "random", "overrides": {"x": 1}}, "body.overrides.x"),
        ({**NB201, "overrides": {"sample_size": 50}}, "body.overrides.sample_size"),
        ({**NB201, "overrides": {"no.such": 1}}, "body.overrides.no.such"),
        ({**NB201, "max_parallel": 2}, "body.max_parallel"),
        ({**NB201, "dataset": "digits"}, "body.dataset"),
        ({"space": "cnn", "dataset": "digits", "method": "evolution"}, "body.method"),
        ({"space": "rnn", "dataset": "ptb", "method": "random"}, "body.method"),
        ({"space": "cnn", "dataset": "digits", "table": "nb201"}, "body.table"),
        ({"space": "cnn", "dataset": "digits", "signal": "c10_valid_acc_200ep"}, "body.signal"),
        ({"space": "cnn", "dataset": "digits", "budget": 10_001}, "body.budget"),
        ({"space": "cnn", "dataset": "digits", "method": "nao", "budget": 10_001}, "body.budget"),
    ],
)
def test_bad_tabular_inputs_name_the_field(client, auth, nb201_table, body, field) -> None:
    assert field in _fields(client.post("/searches", json=body, headers=auth))


def test_unknown_table_lists_the_known_ones(client, auth, nb201_table) -> None:
    r = client.post("/searches", json={**NB201, "table": "nb301"}, headers=auth)
    assert r.status_code == 422
    assert "known: nb201" in r.json()["detail"][0]["msg"]
    r = client.post("/searches", json={**NB201, "signal": "nope"}, headers=auth)
    assert "c10_test_acc_200ep" in r.json()["detail"][0]["msg"]


def test_the_shipped_table_serves_an_empty_data_dir(client, auth, tmp_path) -> None:
    from service_fixtures import service_env

    with service_env(data_dir=str(tmp_path)):
        r = client.post("/searches", json={**NB201, "budget": 5}, headers=auth)
    assert r.status_code == 202, r.text


def test_an_unreadable_table_is_422(client, auth, tmp_path) -> None:
    from service_fixtures import service_env

    (tmp_path / "nas-bench-201").mkdir()
    (tmp_path / "nas-bench-201" / "nb201_accuracy_table.csv.gz").write_bytes(b"not gzip")
    with service_env(data_dir=str(tmp_path)):
        r = client.post("/searches", json=NB201, headers=auth)
    assert "body.table" in _fields(r)
    assert "cannot be read" in r.text


def test_cnn_searches_keep_their_methods(client, auth) -> None:
    r = client.post("/searches", json={"space": "cnn", "dataset": "digits"}, headers=auth)
    assert r.status_code == 202, r.text
    assert r.json()["preset"] == "tiny"
    assert r.json()["config"]["optim"]["epochs"] >= 1
