"""Language-model jobs (issue #5) through the API and a real Celery worker on Postgres +
Redis: an rnn search on PTB, a WikiText-2 training of a named cell, its evaluation, and the
dataset/space checks."""

from __future__ import annotations

import math

import pytest
from service_fixtures import wait_succeeded

pytestmark = [pytest.mark.db]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"space": "rnn", "dataset": "cifar10", "preset": "tiny"}, "dataset"),
        ({"space": "cnn", "dataset": "ptb", "preset": "tiny"}, "dataset"),
        ({"space": "rnn", "dataset": "ptb", "preset": "huge"}, "preset"),
        ({"space": "rnn", "preset": "tiny", "overrides": {"supernet.nhid": 0}}, "overrides"),
    ],
)
def test_bad_rnn_searches_name_the_field(client, auth, body, field) -> None:
    r = client.post("/searches", json=body, headers=auth)
    assert r.status_code == 422, r.text
    assert field in r.text


def test_rnn_trainings_check_the_dataset(client, auth) -> None:
    body = {"arch_name": "nao-ws-rnn", "dataset": "cifar10", "preset": "tiny"}
    r = client.post("/trainings", json=body, headers=auth)
    assert r.status_code == 422
    assert "dataset" in r.text


@pytest.mark.slow
def test_rnn_search_then_wikitext2_training_and_evaluation(client, auth, worker) -> None:
    search = client.post(
        "/searches", json={"space": "rnn", "dataset": "ptb", "preset": "tiny"}, headers=auth
    ).json()
    assert search["dataset"] == "ptb"
    done = wait_succeeded(client, search["url"], 180)
    assert done["rounds"] >= 1
    top = client.get("/architectures", params={"top": 10, "search": search["id"]}).json()["data"]
    assert top
    assert all(a["space"] == "rnn" for a in top)
    metrics = {m["name"] for m in client.get(f"/jobs/{search['id']}/metrics").json()["data"]}
    assert "ppl" in " ".join(metrics)

    body = {"arch_name": "nao-rnn", "dataset": "wikitext2", "preset": "tiny"}
    training = client.post("/trainings", json=body, headers=auth).json()
    trained = wait_succeeded(client, training["url"], 180)
    result = trained["result"]
    assert result["perplexity"] > 1.0
    assert result["valid_perplexity"] > 1.0
    arch = client.get(f"/architectures/{trained['architecture_id']}").json()
    assert arch["scores"]["trained"] == pytest.approx(-math.log(result["valid_perplexity"]))

    evaluation = client.post(
        "/evaluations", json={"checkpoint_id": trained["checkpoint_id"]}, headers=auth
    ).json()
    evaluated = wait_succeeded(client, evaluation["url"], 180)
    assert evaluated["result"]["test_ppl"] == pytest.approx(result["perplexity"], rel=1e-4)
    assert evaluated["result"]["valid_ppl"] == pytest.approx(result["valid_perplexity"], rel=1e-4)
