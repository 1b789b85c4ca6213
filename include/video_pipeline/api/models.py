"""Request and response bodies of the upload and status API (they make its OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

State = Literal["pending", "processing", "completed", "failed"]


class UploadCreate(BaseModel):
    filename: str = Field(
        min_length=1,
        max_length=1000,
        description="Name of the file in the bucket, below pending/. Cyrillic, spaces and folders are kept.",
        examples=["Встреча 1.mp4"],
    )
    size_bytes: int = Field(description="Exact size of the file; the URL only accepts this many bytes.")
    content_type: str = Field(max_length=255, description="MIME type, e.g. video/mp4", examples=["video/mp4"])


class PresignedPostForm(BaseModel):
    url: str
    fields: dict[str, str] = Field(description="Form fields to send before the file field (named 'file').")


class UploadTicket(BaseModel):
    key: str = Field(description="Full object key the upload lands at (pending/...).")
    filename: str = Field(description="Key below pending/; differs from the request when the name was taken.")
    renamed: bool
    method: Literal["PUT"] = "PUT"
    url: str = Field(description="Presigned PUT URL.")
    headers: dict[str, str] = Field(description="Headers the PUT must send exactly as given (they are signed).")
    expires_at: datetime
    post: PresignedPostForm = Field(description="Alternative for browsers: a presigned POST form.")


class ErrorInfo(BaseModel):
    stage: str | None = None
    reason: str | None = Field(default=None, description="Stable code for rejected input, e.g. not_media.")
    message: str | None = None
    error_class: str | None = None
    retryable: bool | None = None
    time: str | None = None


class TranscriptInfo(BaseModel):
    language: str | None = None
    language_probability: float | None = None
    quality: str | None = None
    backend: str | None = None
    model: str | None = None
    duration_seconds: float | None = None
    segment_count: int | None = None


class AnalysisSummary(BaseModel):
    analyzer: str | None = None
    model: str | None = None
    language: str | None = None
    title: str | None = None
    summary: str | None = None
    key_points: list[str] = []
    topics: list[str] = []
    tags: list[str] = []


class OutputFile(BaseModel):
    name: str
    key: str
    url: str = Field(description="Presigned GET URL (S3), or this API's /outputs/... path (local storage).")


class Outputs(BaseModel):
    prefix: str
    location: str
    manifest_url: str | None = None
    files: list[OutputFile] = []


class VideoStatus(BaseModel):
    video_id: str
    name: str
    source_key: str = Field(description="Key below the state prefixes.")
    current_key: str = Field(description="Where the upload lives now, e.g. completed/<name>.")
    bucket: str
    state: State
    outcome: str | None = None
    size_bytes: int
    claims: int
    created_at: datetime
    claimed_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    error: ErrorInfo | None = Field(default=None, description="Why it failed (state failed).")
    error_report_key: str | None = None
    last_error: ErrorInfo | None = Field(default=None, description="Latest attempt's error, also while retrying.")
    transcript: TranscriptInfo | None = None
    analysis: AnalysisSummary | None = Field(default=None, description="Present once the video is completed.")
    outputs: Outputs | None = None


class VideoListItem(BaseModel):
    video_id: str
    name: str
    source_key: str
    state: State
    outcome: str | None = None
    size_bytes: int
    error_reason: str | None = None
    error_message: str | None = None
    created_at: datetime
    claimed_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime


class VideoList(BaseModel):
    videos: list[VideoListItem]
    count: int
    limit: int
    state: State | None = None


class LibraryItem(BaseModel):
    """One row of the Videos page."""

    video_id: str
    name: str
    title: str | None = None
    state: State
    outcome: str | None = None
    size_bytes: int
    duration_seconds: float | None = None
    language: str | None = None
    speakers: list[str] | None = Field(default=None, description="When the analysis names them.")
    arrived_at: datetime
    finished_at: datetime | None = None
    cost_usd: float | None = None
    error_reason: str | None = None
    error_message: str | None = Field(default=None, description="Names the user's file, not the work copy.")
    run_id: str | None = Field(default=None, description="The Airflow run that claimed it last.")


class Library(BaseModel):
    videos: list[LibraryItem]
    count: int
    limit: int


class SnippetPart(BaseModel):
    text: str
    hit: bool = Field(description="True for the words that matched the query.")


class SearchHit(BaseModel):
    video_id: str
    name: str
    state: State
    kind: Literal["segment", "title", "summary", "tags"] = Field(
        description="segment: words said at start_seconds; the others match the video's name, title, summary, tags."
    )
    start_seconds: float | None = None
    end_seconds: float | None = None
    language: str | None = None
    rank: float
    snippet: list[SnippetPart]


class SearchResults(BaseModel):
    query: str
    hits: list[SearchHit]
    count: int
    limit: int
    considered: int = Field(description="How many matches were ranked for these hits.")
    truncated: bool = Field(
        description=(
            "The words match more places than one query ranks: the hits are the best of the `considered`"
            " matches, an arbitrary part of them. Add a word or a filter to narrow."
        )
    )
    took_ms: float


class ReprocessStarted(BaseModel):
    video_id: str
    dag_id: str
    run_id: str
    conf: dict[str, object]
