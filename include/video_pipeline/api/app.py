"""The FastAPI app: presigned uploads into pending/ and the ledger's view of each video.

Authentication is Airflow's own: the app depends on the api-server's
``requires_access_dag``, which reads the JWT from ``Authorization: Bearer``
(issued by ``POST /auth/token``) or from the UI's session cookie, and asks the
configured auth manager (FAB, Simple, Keycloak, ...) whether the user may act on
runs of the ``video_pipeline`` DAG. Uploading counts as triggering a run (POST);
reading the ledger counts as reading runs (GET). The same users and roles as the
Airflow UI apply, and there is no second secret to manage.
"""

from __future__ import annotations

import logging
import posixpath
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse

from include.video_pipeline.api import library
from include.video_pipeline.api.models import (
    AnalysisSummary,
    ErrorInfo,
    OutputFile,
    Outputs,
    PresignedPostForm,
    State,
    TranscriptInfo,
    UploadCreate,
    UploadTicket,
    VideoList,
    VideoListItem,
    VideoStatus,
)
from include.video_pipeline.api.presign import presign_get, presign_post, presign_put, signing_client, upload_headers
from include.video_pipeline.api.settings import DAG_ID, ApiSettings, load_api_settings
from include.video_pipeline.api.uploads import UploadRefused, first_free_key, validate_upload
from include.video_pipeline.config import Settings, load_settings
from include.video_pipeline.core import outputs
from include.video_pipeline.core.states import VideoState, error_report_key, state_key
from include.video_pipeline.hooks.results_db import queries

log = logging.getLogger(__name__)

DESCRIPTION = """
Upload videos into the pipeline's bucket and follow them through it.

1. `POST /uploads` returns a presigned URL; `PUT` the file to it with the returned headers.
2. The `video_pipeline` DAG claims the upload on its next run; `GET /videos?key=<filename>`
   shows it from then on, and `GET /videos/{video_id}` its result.

3. `GET /search?q=<words>` finds what was said in any video, with the time of each hit;
   `GET /library` lists every video for the Videos page (`/video-pipeline/ui/`).

Authenticate with an Airflow token (`POST /auth/token` on the api-server) as
`Authorization: Bearer <token>`, or be logged in to the Airflow UI. Uploads need
permission to trigger `video_pipeline` runs; reading needs permission to read them.
"""

CanRead = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))
CanUpload = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=DAG_ID))


def get_settings() -> Settings:
    # Read per request, like the DAG's tasks do: a changed environment needs no
    # code path of its own, and the values are cheap to parse.
    return load_settings()


def get_api_settings() -> ApiSettings:
    return load_api_settings()


SettingsDep = Annotated[Settings, Depends(get_settings)]
ApiSettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]


def _error(value: Any) -> ErrorInfo | None:
    if not isinstance(value, dict):
        return None
    return ErrorInfo.model_validate({k: value.get(k) for k in ErrorInfo.model_fields})


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def _outputs(row: dict[str, Any], settings: Settings, api_settings: ApiSettings) -> Outputs | None:
    prefix = row.get("outputs_prefix")
    if not prefix:
        return None
    manifest = row.get("manifest") or {}
    names = [
        (str(f["name"]), str(f.get("key") or prefix + f["name"])) for f in manifest.get("files", []) if "name" in f
    ]
    manifest_key = posixpath.join(prefix, outputs.MANIFEST)
    if settings.storage == "local":
        # Served by this app (GET /outputs/...), behind the same auth: a browser
        # cannot open file:// paths of the api-server's disk.
        from include.video_pipeline.pipeline.ui_links import local_outputs_url

        vid = row["video_id"]
        return Outputs(
            prefix=prefix,
            location=str(settings.local_root / prefix),
            manifest_url=local_outputs_url(vid, outputs.MANIFEST),
            files=[
                OutputFile(name=name, key=key, url=local_outputs_url(vid, posixpath.relpath(key, prefix)))
                for name, key in names
            ],
        )
    client = signing_client(settings, api_settings)
    expires = api_settings.url_expiry_minutes * 60
    return Outputs(
        prefix=prefix,
        location=f"{settings.location}/{prefix}",
        manifest_url=presign_get(client, settings.bucket, manifest_key, expires),
        files=[
            OutputFile(name=name, key=key, url=presign_get(client, settings.bucket, key, expires))
            for name, key in names
        ],
    )


def _status(row: dict[str, Any], settings: Settings, api_settings: ApiSettings) -> VideoStatus:
    state = VideoState(row["state"])
    transcript = None
    if row.get("t_quality") is not None:
        transcript = TranscriptInfo(
            language=row["t_language"],
            language_probability=row["t_language_probability"],
            quality=row["t_quality"],
            backend=row["t_backend"],
            model=row["t_model"],
            duration_seconds=row["t_duration_seconds"],
            segment_count=row["t_segment_count"],
        )
    analysis = None
    # A summary is only shown for finished work: while a video is reprocessed
    # its previous analysis may no longer match what is being published.
    if state is VideoState.COMPLETED and row.get("a_analyzer") is not None:
        data = row.get("a_data") or {}
        analysis = AnalysisSummary(
            analyzer=row["a_analyzer"],
            model=row["a_model"] or None,
            language=row["a_language"],
            title=data.get("title_suggestion"),
            summary=data.get("summary"),
            key_points=_strings(data.get("key_points")),
            topics=_strings(data.get("topics")),
            tags=_strings(data.get("tags")),
        )
    failed = state is VideoState.FAILED
    return VideoStatus(
        video_id=row["video_id"],
        name=posixpath.basename(row["source_key"]),
        source_key=row["source_key"],
        current_key=state_key(row["source_key"], state, settings.prefixes),
        bucket=row["bucket"],
        state=state.value,
        outcome=row["outcome"],
        size_bytes=row["size_bytes"],
        claims=row["claims"],
        created_at=row["created_at"],
        claimed_at=row["claimed_at"],
        finished_at=row["finished_at"],
        updated_at=row["updated_at"],
        error=_error(row.get("error")),
        error_report_key=error_report_key(row["source_key"], settings.prefixes) if failed else None,
        last_error=_error(row.get("last_error")),
        transcript=transcript,
        analysis=analysis,
        outputs=_outputs(row, settings, api_settings) if state is VideoState.COMPLETED else None,
    )


def create_app() -> FastAPI:
    """Build the app; the plugin mounts it at ``/video-pipeline`` on the api-server."""
    app = FastAPI(
        title="Video pipeline API",
        version="1",
        description=DESCRIPTION,
        docs_url=None,  # library.docs_router serves /docs from an installed package, not a CDN
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.include_router(library.router)
    app.include_router(library.docs_router)

    @app.exception_handler(UploadRefused)
    async def _refused(_: Request, exc: UploadRefused) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": str(exc)})

    from include.video_pipeline.storage.gcs import SigningUnavailable

    @app.exception_handler(SigningUnavailable)
    async def _cannot_sign(_: Request, exc: SigningUnavailable) -> JSONResponse:
        # GCS credentials that cannot sign URLs: an operator's fix, said plainly (docs/buckets.md).
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": f"cannot sign GCS URLs: {exc} (docs/buckets.md, Signed URLs)"},
        )

    @app.post(
        "/uploads",
        response_model=UploadTicket,
        dependencies=[CanUpload],
        summary="Get a presigned URL to upload one file into pending/",
        responses={
            401: {"description": "Not authenticated"},
            403: {"description": "No permission to trigger video_pipeline runs"},
            409: {"description": "The name and all its numbered variants are taken"},
            422: {"description": "Size, type or filename not accepted"},
            501: {"description": "Local storage: copy files into the folder instead"},
            503: {"description": "GCS credentials that cannot sign URLs (docs/buckets.md)"},
        },
    )
    def create_upload(body: UploadCreate, settings: SettingsDep, api_settings: ApiSettingsDep) -> UploadTicket:
        if settings.storage == "local":
            # The api-server would become the data path for multi-GB bodies, and
            # local storage means the folder is on this machine anyway.
            raise HTTPException(
                status.HTTP_501_NOT_IMPLEMENTED,
                f"storage is a local folder: copy files into {settings.local_root / settings.prefixes.pending} "
                "directly; presigned uploads need VIDEO_PIPELINE_STORAGE=s3 or gcs",
            )
        upload = validate_upload(
            filename=body.filename,
            content_type=body.content_type,
            size_bytes=body.size_bytes,
            max_upload_bytes=settings.transcode.max_upload_bytes,
        )
        from include.video_pipeline.hooks.object_store import ObjectStoreHook

        store = ObjectStoreHook(settings=settings).get_store()

        # Free in every state, not just pending/: a finished video's original
        # sits in completed/ or failed/ under the same relative key, and
        # settling the new upload would overwrite it there.
        def is_taken(rel: str) -> bool:
            return any(store.head(state_key(rel, state, settings.prefixes)) is not None for state in VideoState)

        rel = first_free_key(upload.relative_key, is_taken)
        if rel is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"{upload.relative_key!r} and its numbered variants are all taken"
            )
        key = state_key(rel, VideoState.PENDING, settings.prefixes)
        expires = api_settings.url_expiry_minutes * 60
        client = signing_client(settings, api_settings)
        post = presign_post(client, settings.bucket, key, upload, expires)
        log.info("Presigned upload of %d bytes to %s", upload.size_bytes, key)
        return UploadTicket(
            key=key,
            filename=rel,
            renamed=rel != upload.relative_key,
            url=presign_put(client, settings.bucket, key, upload, expires),
            headers=upload_headers(client, upload),
            expires_at=datetime.now(UTC) + timedelta(seconds=expires),
            post=PresignedPostForm(url=post.url, fields=post.fields),
        )

    @app.get(
        "/videos/{video_id}",
        response_model=VideoStatus,
        dependencies=[CanRead],
        summary="One video's state, error and results",
        responses={404: {"description": "No such video in the ledger (yet)"}},
    )
    def get_video(video_id: str, settings: SettingsDep, api_settings: ApiSettingsDep) -> VideoStatus:
        row = queries.video_status_row(settings.results_conn_id, video_id)
        if row is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"no video {video_id!r}; an upload appears once a pipeline run claims it "
                "(look it up with GET /videos?key=<filename>)",
            )
        return _status(row, settings, api_settings)

    @app.get("/videos", response_model=VideoList, dependencies=[CanRead], summary="Recent videos, newest change first")
    def list_videos(
        settings: SettingsDep,
        api_settings: ApiSettingsDep,
        state: Annotated[State | None, Query(description="Only videos in this state")] = None,
        key: Annotated[str | None, Query(description="Only versions of this file (key below pending/)")] = None,
        limit: Annotated[int, Query(ge=1, le=ApiSettings.max_list_limit)] = ApiSettings.default_list_limit,
    ) -> VideoList:
        rows = queries.recent_videos(settings.results_conn_id, state=state, source_key=key, limit=limit)
        items = [VideoListItem(name=posixpath.basename(row["source_key"]), **row) for row in rows]
        return VideoList(videos=items, count=len(items), limit=limit, state=state)

    return app
