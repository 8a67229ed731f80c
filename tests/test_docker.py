"""docker-compose.yml and the Dockerfiles, parsed: services, dependencies, healthchecks,
volumes, the GPU reservation, a torch-free API image and migrations before serving."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _instructions(name: str) -> list[tuple[str, str]]:
    text = (ROOT / "docker" / name).read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_services_and_dependencies(compose) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    for name in ("api", "worker"):
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["api"]["ports"] == ["8000:8000"]


@pytest.mark.parametrize("name", ["postgres", "redis", "api", "worker"])
def test_healthchecks(compose, name) -> None:
    check = compose["services"][name]["healthcheck"]
    assert check["test"]
    assert check["retries"] >= 3


def test_settings_point_at_postgres_and_redis(compose) -> None:
    for name in ("api", "worker", "migrate"):
        env = compose["services"][name]["environment"]
        assert env["NAO_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["NAO_BROKER_URL"].startswith("redis://redis:")
        assert int(env["NAO_VISIBILITY_TIMEOUT_S"]) >= 24 * 3600


def test_named_volumes_for_data_and_checkpoints(compose) -> None:
    assert {"pgdata", "storage", "data"} <= set(compose["volumes"])
    api_vols = compose["services"]["api"]["volumes"]
    worker_vols = compose["services"]["worker"]["volumes"]
    assert "storage:/var/lib/nao/storage" in api_vols
    assert "storage:/var/lib/nao/storage" in worker_vols  # the API serves what workers write
    assert any(v.startswith("data:") for v in worker_vols)


def test_gpu_reservation(compose) -> None:
    devices = compose["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    assert "gpu" in devices[0]["capabilities"]
    assert "api" not in [s for s, v in compose["services"].items() if "deploy" in v]


def test_api_image_has_no_torch_and_migrates_first() -> None:
    steps = _instructions("api.Dockerfile")
    assert steps[0][0] == "FROM"
    assert "torch" not in steps[0][1]
    run = " ".join(arg for op, arg in steps if op == "RUN")
    assert "--no-deps" in run
    assert not re.search(r"\btorch(vision)?\b[=<>\"]", run)
    cmd = json.loads(next(arg for op, arg in steps if op == "CMD"))
    # migrations first, then `nao api`: uvicorn with api.protocol's header caps and timeout
    assert cmd[:3] == ["/prestart.sh", "nao", "api"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert "nao api --help" in run  # the entry point works without torch
    assert "alembic upgrade head" in (ROOT / "docker" / "prestart.sh").read_text()
    assert any(op == "HEALTHCHECK" for op, _ in steps)


def _torch_pins() -> dict[str, str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = dict(re.findall(r"^(torch|torchvision)==([\w.]+)$", "\n".join(deps), re.M))
    assert set(pins) == {"torch", "torchvision"}, deps
    return pins


def test_worker_image_is_cuda_with_the_pinned_torch() -> None:
    """A CUDA base; torch either from a PyTorch base of the pinned version or pip-installed
    at exactly the pins of pyproject.toml (torch and torchvision)."""
    steps = _instructions("worker.Dockerfile")
    base = steps[0][1]
    assert "cuda" in base
    pins = _torch_pins()
    if base.startswith("pytorch/pytorch:"):
        assert base.split(":", 1)[1].split("-")[0] == pins["torch"], base
    else:
        run = " ".join(arg for op, arg in steps if op == "RUN")
        assert dict(re.findall(r"\b(torch|torchvision)==([\w.]+)", run)) == pins
        assert "pip install ." in run  # then the rest of the dependencies, torch satisfied
    cmd = next(arg for op, arg in steps if op == "CMD")
    assert "worker.app" in cmd
    assert "--concurrency" in cmd


@pytest.mark.parametrize("name", ["api.Dockerfile", "worker.Dockerfile"])
def test_copied_paths_exist(name) -> None:
    for op, arg in _instructions(name):
        if op == "COPY":
            for src in arg.split()[:-1]:
                assert (ROOT / src).exists(), src


@pytest.mark.parametrize("name", ["api.Dockerfile", "worker.Dockerfile"])
def test_images_copy_every_package(name) -> None:
    """Each image carries every package pyproject.toml installs (the API image runs the
    job kinds and the store, the worker image every layer)."""
    finder = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {p.rstrip("*") for p in finder["packages"]["find"]["include"]}
    copied = {
        arg.split()[0].rstrip("/")
        for op, arg in _instructions(name)
        if op == "COPY" and not arg.startswith("--from")
    }
    assert packages <= copied, packages - copied


def _workers(compose: dict[str, Any], gpu: bool = True) -> dict[str, dict[str, Any]]:
    """The worker services: those on the GPU queue (the image's command), or the others."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("build", {}).get("dockerfile") == "docker/worker.Dockerfile"
        and ("command" not in svc) == gpu
    }


def test_a_cpu_worker_serves_the_query_queue(compose) -> None:
    """Controller queries have a worker of their own, on the CPU: a caller waiting for one
    never waits behind a search, and it takes no GPU."""
    (_name, svc), *_ = _workers(compose, gpu=False).items()
    assert svc["command"] == ["nao", "worker", "--queues", "query"]
    assert svc["environment"]["NAO_DEVICE"] == "cpu"
    assert svc["environment"]["NAO_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "deploy" not in svc
    assert "profiles" not in svc
    assert "storage:/var/lib/nao/storage" in svc["volumes"]  # it reads the controllers


def test_each_worker_service_reserves_its_own_gpu(compose) -> None:
    """One worker service per GPU: each reserves one device, no two the same; every one but
    the default is behind a profile, so a one-GPU host starts only `worker`."""
    workers = _workers(compose)
    assert len(workers) >= 2
    seen = []
    for name, svc in workers.items():
        (device,) = svc["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia"
        assert len(device["device_ids"]) == 1, name
        seen.append(device["device_ids"][0])
        assert svc["environment"]["NAO_DEVICE"] == "cuda"
        assert ("profiles" in svc) == (name != "worker"), name
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("name", ["api.Dockerfile", "worker.Dockerfile"])
def test_images_own_their_storage_and_data_folders(compose, name) -> None:
    """The folders the volumes mount on exist in the image and belong to the user it runs as,
    so a fresh named volume is writable by the service (Docker copies the ownership)."""
    steps = _instructions(name)
    user = [arg for op, arg in steps if op == "USER"][-1]
    run = " ".join(arg for op, arg in steps if op == "RUN")
    env = compose["services"]["api"]["environment"]
    for folder in (env["NAO_STORAGE_DIR"], env["NAO_DATA_DIR"]):
        assert folder in run.split("mkdir -p", 1)[1], folder
    assert f"chown -R {user}:{user} /var/lib/nao" in run


# What the API image leaves out on purpose: torch and what only training, the CLI's progress
# bars or the benchmarks use. A new dependency must be installed there or listed here.
NOT_IN_THE_API_IMAGE = {"torch", "torchvision", "scikit-learn", "tqdm", "httpx"}


def test_the_api_image_installs_every_dependency_the_api_needs() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {re.split(r"[\[<>=;! ]", d, maxsplit=1)[0].lower() for d in deps}
    run = " ".join(arg for op, arg in _instructions("api.Dockerfile") if op == "RUN")
    installed = {m.lower() for m in re.findall(r'"([A-Za-z0-9_.-]+)[\[<>=]', run)}
    assert wanted - NOT_IN_THE_API_IMAGE <= installed, wanted - NOT_IN_THE_API_IMAGE - installed
