# video-pipeline: the Airflow image every component runs (api-server, scheduler, dag-processor,
# triggerer, Celery workers). Build:
#
#   docker compose build                          # WHISPER_MODEL from .env, default "small"
#   docker build --build-arg WHISPER_MODEL=medium -t video-pipeline-airflow .
#   docker build --build-arg WITH_CUDA_LIBS=true -t video-pipeline-airflow-gpu .   # GPU workers
#
# The base tag must match apache-airflow in requirements.txt (tests/deploy checks it).
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

# ffmpeg/ffprobe for transcoding; tini-style init and curl come with the base image.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# The official image installs Python packages as the airflow user (into ~/.local), never as root.
USER airflow

# Exactly the locked runtime set. requirements.txt pins apache-airflow==3.3.2 itself, so pip
# keeps the image's Airflow instead of upgrading or downgrading it; it is compiled without
# Airflow's constraints file, which is why no --constraint is passed here.
COPY --chown=airflow:0 requirements.txt /opt/airflow/project/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/project/requirements.txt

# CeleryExecutor and the FAB auth manager come preinstalled in the official image but are not in
# requirements.txt yet; fail the build here rather than at the first worker start if that changes.
RUN python -c "import airflow.providers.celery.executors.celery_executor, airflow.providers.fab.auth_manager.fab_auth_manager, faster_whisper"

# GPU workers: CTranslate2 (faster-whisper) needs cuBLAS 12 and cuDNN 9 at run time. The NVIDIA
# driver itself comes from the host through the container toolkit.
ARG WITH_CUDA_LIBS=false
COPY --chown=airflow:0 deploy/docker/requirements-cuda.txt /opt/airflow/project/deploy/docker/requirements-cuda.txt
RUN if [ "${WITH_CUDA_LIBS}" = "true" ]; then \
        pip install --no-cache-dir -r /opt/airflow/project/deploy/docker/requirements-cuda.txt; \
    fi
ENV LD_LIBRARY_PATH=/home/airflow/.local/lib/python3.11/site-packages/nvidia/cublas/lib:/home/airflow/.local/lib/python3.11/site-packages/nvidia/cudnn/lib

# Bake the Whisper model into the image so workers never download at run time (a spot VM that
# restarts, or ten workers starting at once, would otherwise each pull ~0.5-3 GB from Hugging Face).
# Any faster-whisper size or Hugging Face repo id: tiny, base, small, medium, large-v3, turbo, ...
ARG WHISPER_MODEL=small
ENV VIDEO_PIPELINE_MODELS_DIR=/opt/airflow/models
RUN python -c "import sys; from faster_whisper import download_model; \
print(download_model(sys.argv[1], output_dir=sys.argv[2]))" \
        "${WHISPER_MODEL}" "${VIDEO_PIPELINE_MODELS_DIR}/whisper/${WHISPER_MODEL}" \
    && test -f "${VIDEO_PIPELINE_MODELS_DIR}/whisper/${WHISPER_MODEL}/model.bin"
ENV VIDEO_PIPELINE_WHISPER_MODEL=/opt/airflow/models/whisper/${WHISPER_MODEL} \
    VIDEO_PIPELINE_WHISPER_DOWNLOAD_ROOT=/opt/airflow/models/cache \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1

# The project: DAGs, the include package, plugins, deployment scripts. Airflow's config dir
# (/opt/airflow/config) is on sys.path, which is where the cluster policy must live.
COPY --chown=airflow:0 include /opt/airflow/project/include
COPY --chown=airflow:0 dags /opt/airflow/project/dags
COPY --chown=airflow:0 plugins /opt/airflow/project/plugins
COPY --chown=airflow:0 deploy /opt/airflow/project/deploy
COPY --chown=airflow:0 deploy/airflow/airflow_local_settings.py /opt/airflow/config/airflow_local_settings.py
ENV PYTHONPATH=/opt/airflow/project \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/airflow/project/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/project/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=false \
    VIDEO_PIPELINE_WORK_DIR=/opt/airflow/work

RUN mkdir -p /opt/airflow/work /opt/airflow/models/cache

WORKDIR /opt/airflow/project
USER airflow
