# serverless-hpc OpenWhisk runtime, lean: LiteRT only, for workload specs with image=lean
# (classify, dataproc, ...). No TensorFlow.
#
# Extends the official OpenWhisk Python 3.11 action runtime (its action proxy, /init and
# /run, stays the entrypoint); the action's code is the adapter openwhisk/action.py, sent by
# `shpc ow apply` as a blackbox action's code. Build from the repository root:
#
#   docker build -f openwhisk/Dockerfile.lean -t <registry>/shpc-ow-lean:<tag> .
#   # optionally bake a trained model store for classify (a BuildKit named context):
#   docker build -f openwhisk/Dockerfile.lean --build-context store=$HOME/.cache/serverless-hpc/store ...
#   docker push <registry>/shpc-ow-lean:<tag>
#
# Pin BASE_IMAGE to a release tag or digest for reproducible builds.
ARG BASE_IMAGE=openwhisk/action-python-v3.11:nightly

# An empty default for the optional model store; `--build-context store=DIR` replaces it.
FROM scratch AS store

FROM ${BASE_IMAGE}
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FASHION_MNIST_DIR=/opt/fashion-mnist \
    SHPC_STORE=/opt/shpc-store \
    SHPC_CACHE_DIR=/tmp/shpc-cache

WORKDIR /opt/shpc-src
COPY pyproject.toml README.md* ./
COPY serverless_hpc ./serverless_hpc
# The package with the inference extra (LiteRT, psutil) and boto3 for an s3:// store.
RUN python -m pip install ".[infer,aws]" \
    && python -m serverless_hpc.cli data fetch --data-dir "${FASHION_MNIST_DIR}" \
    && python -m serverless_hpc.cli data verify --data-dir "${FASHION_MNIST_DIR}" \
    && rm -rf /opt/shpc-src
COPY --from=store / /opt/shpc-store/
WORKDIR /
