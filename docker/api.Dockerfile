# The API: FastAPI + SQLAlchemy, no torch. Migrations run in docker/prestart.sh before it serves.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY worker ./worker
COPY jobs ./jobs
COPY store ./store
COPY cli ./cli
COPY nao_core ./nao_core
COPY migrations ./migrations
COPY docker/prestart.sh /prestart.sh
# Install the service without its torch/torchvision pins: the API imports neither.
RUN pip install --no-deps . \
    && pip install "fastapi>=0.110" "fastapi-offline>=1.7" "plotly>=5.24" "prometheus-client>=0.20" \
       "uvicorn>=0.29" "uvloop>=0.19" "httptools>=0.6" "sqlalchemy>=2" "alembic>=1.13" \
       "psycopg[binary]>=3.1" "celery[redis]>=5.3" "redis>=5" "pydantic-settings>=2" \
       "numpy>=1.26" \
    && python -c "import api.main, api.protocol, sys; assert 'torch' not in sys.modules" \
    && nao api --help > /dev/null \
    && useradd --create-home nao && chmod +x /prestart.sh \
    && mkdir -p /var/lib/nao/storage /var/lib/nao/data && chown -R nao:nao /var/lib/nao
# A named volume mounted on /var/lib/nao/* starts as a copy of these folders, owned by nao.
USER nao
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
# `nao api`, not bare uvicorn: it serves with api.protocol (header caps, read timeout).
CMD ["/prestart.sh", "nao", "api", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
