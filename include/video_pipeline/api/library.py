"""The video library in the Airflow UI: the Videos page, transcript search, outputs and reprocessing.

Mounted by ``app.create_app`` beside the upload and status endpoints, so the same
Airflow auth applies: reading (the list, search, outputs) needs permission to
read ``video_pipeline`` runs, reprocessing needs permission to trigger them. The
page itself (``/ui/``) is a static shell with no data in it; everything it shows
comes from these endpoints with the user's own Airflow session.
"""

from __future__ import annotations

import logging
import posixpath
import time
from datetime import datetime
from importlib import resources
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from include.video_pipeline.api.models import (
    Library,
    LibraryItem,
    ReprocessStarted,
    SearchHit,
    SearchResults,
    SnippetPart,
    State,
)
from include.video_pipeline.api.run_notes import user_message
from include.video_pipeline.api.settings import DAG_ID
from include.video_pipeline.config import Settings, load_settings
from include.video_pipeline.core import outputs
from include.video_pipeline.hooks.results_db import queries

log = logging.getLogger(__name__)

CanRead = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))
CanTrigger = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=DAG_ID))

MAX_SEARCH_LIMIT = 200
MAX_LIBRARY_LIMIT = 1000
STATIC = resources.files("include.video_pipeline.api").joinpath("static")
# What the page loads; nothing else below static/ is served.
ASSETS = {"videos.js": "text/javascript", "videos.css": "text/css"}


def _settings() -> Settings:
    return load_settings()


SettingsDep = Annotated[Settings, Depends(_settings)]
Since = Annotated[datetime | None, Query(description="Only videos that arrived at or after this time (ISO 8601)")]
Until = Annotated[datetime | None, Query(description="Only videos that arrived before this time (ISO 8601)")]
StateFilter = Annotated[State | None, Query(description="Only videos in this state")]


def snippet_parts(snippet: str) -> list[SnippetPart]:
    """``ts_headline``'s output, split at its hit markers into plain text parts."""
    parts: list[SnippetPart] = []
    rest = snippet
    while rest:
        start = rest.find(queries.HIT_START)
        if start < 0:
            parts.append(SnippetPart(text=rest, hit=False))
            break
        if start:
            parts.append(SnippetPart(text=rest[:start], hit=False))
        end = rest.find(queries.HIT_END, start)
        end = len(rest) if end < 0 else end
        parts.append(SnippetPart(text=rest[start + 1 : end], hit=True))
        rest = rest[end + 1 :]
    return [p for p in parts if p.text]


router = APIRouter()


@router.get(
    "/search",
    response_model=SearchResults,
    dependencies=[CanRead],
    summary="Search every transcript, title, summary and tag; hits come with the time they were said",
    description=(
        "PostgreSQL full-text search: each transcript is indexed with its language's configuration "
        "(Russian morphology, English stemming), and the query is parsed with both. `q` takes web-search "
        'syntax: words, "quoted phrases", `or`, `-excluded`. Hits are ranked; `snippet` marks the matched '
        "words (`hit: true`); `start_seconds` is where a segment hit is said. At most "
        f"{queries.MAX_CANDIDATES:,} matches are ranked per query (`truncated` says when there were more)."
    ),
)
def search(
    settings: SettingsDep,
    q: Annotated[str, Query(min_length=1, max_length=500, description="What to look for")],
    state: StateFilter = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH_LIMIT)] = 50,
) -> SearchResults:
    started = time.perf_counter()
    rows = queries.search(settings.results_conn_id, q=q, state=state, since=since, until=until, limit=limit)
    hits = [
        SearchHit(
            video_id=row["video_id"],
            name=posixpath.basename(row["source_key"]),
            state=row["state"],
            kind=row["kind"],
            start_seconds=row["start_seconds"],
            end_seconds=row["end_seconds"],
            language=row["language"],
            rank=float(row["rank"]),
            snippet=snippet_parts(row["snippet"] or ""),
        )
        for row in rows
    ]
    took = (time.perf_counter() - started) * 1000
    considered = int(rows[0]["considered"]) if rows else 0
    return SearchResults(
        query=q,
        hits=hits,
        count=len(hits),
        limit=limit,
        considered=considered,
        truncated=considered >= queries.MAX_CANDIDATES,
        took_ms=round(took, 2),
    )


@router.get(
    "/library",
    response_model=Library,
    dependencies=[CanRead],
    summary="Every video, newest arrival first, with what the Videos page shows",
)
def library(
    settings: SettingsDep,
    state: StateFilter = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIBRARY_LIMIT)] = 200,
) -> Library:
    rows = queries.library(settings.results_conn_id, state=state, since=since, until=until, limit=limit)
    items = [
        LibraryItem(
            video_id=row["video_id"],
            name=posixpath.basename(row["source_key"]),
            title=row["title"],
            state=row["state"],
            outcome=row["outcome"],
            size_bytes=row["size_bytes"],
            duration_seconds=row["duration_seconds"],
            language=row["language"],
            speakers=[str(s) for s in row["speakers"]] if isinstance(row["speakers"], list) else None,
            arrived_at=row["arrived_at"],
            finished_at=row["finished_at"],
            cost_usd=float(row["cost_usd"]) if row["cost_usd"] is not None else None,
            error_reason=row["error_reason"],
            error_message=user_message(row["error_message"], row["source_key"]) if row["error_message"] else None,
            run_id=row["claim_run_id"],
        )
        for row in rows
    ]
    return Library(videos=items, count=len(items), limit=limit)


@router.post(
    "/videos/{video_id}/reprocess",
    response_model=ReprocessStarted,
    status_code=status.HTTP_201_CREATED,
    dependencies=[CanTrigger],
    summary="Run the DAG again for one video (reprocess=video)",
    responses={
        403: {"description": "No permission to trigger video_pipeline runs"},
        404: {"description": "No such video"},
        409: {"description": "The video is being processed now"},
    },
)
def reprocess(video_id: str, settings: SettingsDep, user: GetUserDep) -> ReprocessStarted:
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    row = queries.video_status_row(settings.results_conn_id, video_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no video {video_id!r}")
    if row["state"] not in ("completed", "failed"):
        raise HTTPException(status.HTTP_409_CONFLICT, f"{video_id!r} is {row['state']}; reprocess it once it is done")
    # one_shot: the run must not wait up to an hour for new uploads first.
    conf: dict[str, object] = {"reprocess": "video", "video_id": video_id, "one_shot": True}
    name = posixpath.basename(row["source_key"])
    run = trigger_dag(
        DAG_ID,
        triggered_by=DagRunTriggeredByType.REST_API,
        triggering_user_name=user.get_name(),
        conf=conf,
        note=f"Reprocess {name} (from the Videos page)",
    )
    if run is None:
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "Airflow did not create the run")
    log.info("%s asked to reprocess %s: run %s", user.get_name(), video_id, run.run_id)
    return ReprocessStarted(video_id=video_id, dag_id=DAG_ID, run_id=run.run_id, conf=conf)


@router.get(
    "/outputs/{video_id}/{name:path}",
    dependencies=[CanRead],
    summary="One output file of a video (local storage: served here; S3: a redirect to a presigned URL)",
    responses={404: {"description": "No such file"}, 307: {"description": "Presigned URL (S3)"}},
)
def output_file(video_id: str, name: str, request: Request, settings: SettingsDep) -> Response:
    from include.video_pipeline.pipeline.staging import output_key
    from include.video_pipeline.pipeline.ui_links import library_url

    key = output_key(settings, video_id, name)
    if settings.storage == "local":
        from include.video_pipeline.storage.local import LocalFolderStore, UnsafeKey

        store = LocalFolderStore(settings.local_root)
        try:
            path = store._path(key)
        except UnsafeKey:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such output") from None
        if path.is_file() and path.parent != settings.local_root:
            media_type = outputs.content_type(path.name)
            # FileResponse answers Range requests, so the player can seek in video.mp4.
            return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=300"})
    else:
        from include.video_pipeline.api.presign import presign_get, signing_client
        from include.video_pipeline.api.settings import load_api_settings
        from include.video_pipeline.hooks.object_store import ObjectStoreHook

        store_ = ObjectStoreHook(settings=settings).get_store()
        if store_.head(key) is not None:
            api_settings = load_api_settings()
            client = signing_client(settings, api_settings)
            url = presign_get(client, settings.bucket, key, api_settings.url_expiry_minutes * 60)
            return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    # A rejected video has no outputs: show it in the library, where its reason is.
    row = queries.video_status_row(settings.results_conn_id, video_id)
    if row is not None and name == outputs.REPORT:
        return RedirectResponse(library_url(video_id), status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    raise HTTPException(status.HTTP_404_NOT_FOUND, f"no output {name!r} for video {video_id!r}")


def _page(request: Request) -> HTMLResponse:
    html = STATIC.joinpath("videos.html").read_text(encoding="utf-8")
    root = request.scope.get("root_path", "").rstrip("/")
    return HTMLResponse(html.replace("{{ROOT}}", root), headers={"Cache-Control": "no-cache"})


@router.get("/ui/", include_in_schema=False)
def videos_page(request: Request) -> HTMLResponse:
    return _page(request)


@router.get("/ui/assets/{name}", include_in_schema=False)
def videos_asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    return Response(STATIC.joinpath(name).read_bytes(), media_type=ASSETS[name], headers={"Cache-Control": "no-cache"})


# -- /docs without a CDN --------------------------------------------------------------

SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


def swagger_dir() -> Any:
    # The fastapi-offline package ships Swagger UI 5's built files (5.x reads the
    # OpenAPI 3.1 that FastAPI writes): the docs page works on machines without
    # internet, where FastAPI's default page loads them from a CDN.
    return resources.files("fastapi_offline").joinpath("static")


docs_router = APIRouter(include_in_schema=False)


@docs_router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    from fastapi.openapi.docs import get_swagger_ui_html

    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title="Video pipeline API",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{root}/docs/assets/favicon.png",
    )


@docs_router.get("/docs/assets/{name}")
def docs_asset(name: str) -> Response:
    if name not in SWAGGER_ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    data = swagger_dir().joinpath(name).read_bytes()
    return Response(data, media_type=SWAGGER_ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})
