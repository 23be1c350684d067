# One image for every stage: `docker run IMAGE worker asr` (the default runs ingest).
#
#   docker build -t streamscribe:0.1.0 .
#   docker build --build-arg WITH_CUDA=1 -t streamscribe-cuda:0.1.0 .   # asr on GPU nodes
#
# The GPU variant keeps the same slim Python base: the NVIDIA driver comes from the node
# (nvidia-container-toolkit), and the CUDA 12 libraries CTranslate2 loads at run time
# (cuBLAS, cuDNN 9) come as pip wheels. The nvidia/cuda images ship no Python 3.11.
FROM python:3.11-slim

# WITH_CUDA=1 adds the cuBLAS and cuDNN wheels CTranslate2 needs on CUDA (asr on GPU nodes).
ARG WITH_CUDA=0
# torch from PyPI on Linux drags in gigabytes of CUDA wheels; this index serves the same
# version (constraints.txt pins it) as a CPU-only build. ingest and asr use no torch code path.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /build
COPY pyproject.toml constraints.txt README.md ./
COPY shared ./shared
COPY services ./services
COPY streamscribe ./streamscribe

# torch first from its own index, pinned by the constraints file, so `pip install .`
# finds it satisfied and never resolves torch against PyPI.
# DL3013: versions come from constraints.txt; the CUDA wheels follow CTranslate2 (CUDA 12, cuDNN 9).
# hadolint ignore=DL3013
RUN PIP_CONSTRAINT=constraints.txt pip install --index-url "$TORCH_INDEX_URL" torch \
 && PIP_CONSTRAINT=constraints.txt pip install ".[all]" \
 && if [ "$WITH_CUDA" = "1" ]; then \
        pip install nvidia-cublas-cu12 "nvidia-cudnn-cu12==9.*"; \
    fi \
 && rm -rf /build

# Where the CUDA wheels put their libraries; harmless when they are not installed.
ENV LD_LIBRARY_PATH=/usr/local/lib/python3.11/site-packages/nvidia/cublas/lib:/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib

RUN groupadd --system --gid 10001 streamscribe \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/streamscribe --create-home streamscribe
USER 10001:10001
WORKDIR /home/streamscribe

# The health endpoint (/livez, /readyz, /metrics) when STREAMSCRIBE_HEALTH_PORT=8080.
EXPOSE 8080
ENTRYPOINT ["streamscribe"]
CMD ["worker", "ingest"]
