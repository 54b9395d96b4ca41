# The llm-exporter image: the `llm-exporter` command (demo, run, collector, check, baseline), with the
# MLflow client for the bridge. docker-compose.yml builds it for the demo app and the collector.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md prometheus.yml docker-compose.yml ./
COPY exporter ./exporter
# setup.py copies the templates into the package, for `llm-exporter templates`
COPY grafana ./grafana
COPY monitoring-templates ./monitoring-templates
RUN pip install ".[mlflow]" \
    && useradd --create-home --uid 10001 exporter

# Not root; the working directory holds the MLflow spool file and the demo's sqlite store.
USER exporter
WORKDIR /home/exporter

EXPOSE 8000 9464
ENTRYPOINT ["llm-exporter"]
CMD ["demo", "--host", "0.0.0.0", "--port", "8000"]
