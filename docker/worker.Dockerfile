# A GPU worker: a CUDA runtime base + PyTorch pinned as in pyproject.toml (torch 2.14.1,
# torchvision 0.29.1; PyPI's Linux wheels bring their own CUDA libraries, the host brings the
# driver) + the NAO core + Celery. One process per GPU. tests/test_docker.py checks the pins.
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OMP_NUM_THREADS=4 \
    DEBIAN_FRONTEND=noninteractive PATH=/opt/venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv
WORKDIR /app
# torch first, in its own layer: it is the large one and changes only with the pin.
RUN pip install torch==2.14.1 torchvision==0.29.1
COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY worker ./worker
COPY jobs ./jobs
COPY store ./store
COPY cli ./cli
COPY nao_core ./nao_core
COPY migrations ./migrations
# .[export]: onnx, onnxscript and onnxruntime build and check the exports (worker.export)
RUN pip install .[export] \
    && python -c "import torch; assert torch.__version__.split('+')[0] == '2.14.1', torch.__version__" \
    && useradd --create-home nao \
    && mkdir -p /var/lib/nao/storage /var/lib/nao/data && chown -R nao:nao /var/lib/nao
# A named volume mounted on /var/lib/nao/* starts as a copy of these folders, owned by nao.
USER nao
HEALTHCHECK --interval=30s --timeout=10s --retries=3 \
    CMD celery -A worker.app inspect ping -d "celery@$HOSTNAME" --timeout 5 || exit 1
CMD ["celery", "-A", "worker.app", "worker", "--pool", "solo", "--concurrency", "1", \
     "-Q", "gpu,default", "--loglevel", "INFO"]
