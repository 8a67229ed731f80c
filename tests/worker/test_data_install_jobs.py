"""From "the data is missing" to a search that runs, as a user would: a cifar10 search is
refused with the install command, `nao data install cifar10 --from <archive>` installs an
archive in the official layout, and the same request then runs to the end on a real worker.

The archive is synthetic (seeded random pixels in the official pickle layout, 60 images a
batch) so the test needs no ../shared: what is tested is the path from the request to the
reader, not an accuracy.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from service_fixtures import isolated_service, wait_finished

from cli.main import main as nao
from nao_core.bench.quality import write_cifar_batch

pytestmark = [pytest.mark.db]

FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")


def _archive(root: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = root / "src" / "cifar-10-batches-py"
    for name in (*FILES, "test_batch"):
        labels = np.arange(60) % 10
        write_cifar_batch(folder / name, rng.integers(0, 256, (60, 32, 32, 3), np.uint8), labels)
    out = root / "cifar-10-python.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def pg_service(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> Iterator[dict[str, str]]:
    with isolated_service(tmp_path_factory.mktemp("home"), data_dir=str(data_dir)) as env:
        yield env


SEARCH = {
    "space": "cnn",
    "dataset": "cifar10",
    "preset": "tiny",
    "overrides": {"data.train_limit": 200, "optim.epochs": 2, "eval_every": 1},
}


def test_install_then_search(client, auth, worker, data_dir, tmp_path) -> None:
    refused = client.post("/searches", json=SEARCH, headers=auth)
    assert refused.status_code == 422, refused.text
    assert "nao data install cifar10" in refused.json()["detail"][0]["msg"]

    archive = _archive(tmp_path)
    assert (
        nao(["data", "install", "cifar10", "--from", str(archive), "--data-dir", str(data_dir)])
        == 0
    )

    accepted = client.post("/searches", json=SEARCH, headers=auth)
    assert accepted.status_code == 202, accepted.text
    done = wait_finished(client, accepted.json()["url"], 300)
    assert done["status"] == "succeeded", done
    assert done["dataset"] == "cifar10"
    assert done["result"]["top"], done["result"]
