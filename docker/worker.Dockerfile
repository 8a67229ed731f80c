# A GPU worker: CUDA PyTorch base + the NAO core + Celery. One process per GPU.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OMP_NUM_THREADS=4
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY worker ./worker
COPY nao_core ./nao_core
COPY migrations ./migrations
# torch comes from the base image; install everything else.
RUN pip install --no-deps . \
    && pip install "numpy>=1.26" "scikit-learn>=1.4" "sqlalchemy>=2" "alembic>=1.13" \
       "psycopg[binary]>=3.1" "celery[redis]>=5.3" "redis>=5" "pydantic-settings>=2" \
       "fastapi>=0.110" \
    && useradd --create-home nao
USER nao
HEALTHCHECK --interval=30s --timeout=10s --retries=3 \
    CMD celery -A worker.app inspect ping -d "celery@$HOSTNAME" --timeout 5 || exit 1
CMD ["celery", "-A", "worker.app", "worker", "--pool", "solo", "--concurrency", "1", \
     "-Q", "gpu,default", "--loglevel", "INFO"]
