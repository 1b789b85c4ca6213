"""Gemini through Vertex AI: the same models and answers, billed to a Google Cloud project.

Credentials come from the google provider's ``GoogleBaseHook`` for the
``google_cloud_default`` connection (a key file, ``keyfile_dict``, impersonation
or, with no key in the connection, the VM's service account), so teams already
running Airflow on Google Cloud need no Gemini API key. The provider's own
``GenAIGenerativeModelHook`` builds its client with neither a base URL nor a
timeout, and retries nothing; this hook reuses only its credential handling and
keeps the pipeline's retries, error mapping and structured output.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from include.video_pipeline.core.errors import PermanentError
from include.video_pipeline.hooks.gemini import GeminiHook
from include.video_pipeline.hooks.llm_base import PROVIDER_AUTH, PROVIDER_MISCONFIGURED, ProviderUnavailable, Retryable

if TYPE_CHECKING:
    from google import genai
    from google.auth.credentials import Credentials

log = logging.getLogger(__name__)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class VertexGeminiHook(GeminiHook):
    """Calls Gemini on Vertex AI through ``google-genai`` in Vertex mode.

    :param gcp_conn_id: the Google Cloud connection (``google_cloud_default``).
    :param project: the Google Cloud project; None for the connection's or the
        credentials' own project.
    :param location: Vertex AI region, ``global`` by default (highest availability
        for Gemini 2.x); ``europe-west4`` etc. keep data in a region.
    :param credentials: explicit credentials instead of the connection's (tests,
        or callers that already hold them).
    :param kwargs: model, base_url, retries, backoff, prices: see ``GeminiHook``.
    """

    conn_name_attr = "gcp_conn_id"
    default_conn_name = "google_cloud_default"
    conn_type = "google_cloud_platform"
    hook_name = "Gemini on Vertex AI"
    provider_label = "Vertex AI Gemini"

    def __init__(
        self,
        gcp_conn_id: str = default_conn_name,
        *,
        project: str | None = None,
        location: str = "global",
        credentials: Credentials | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.gcp_conn_id = gcp_conn_id
        self.project = project
        self.location = location
        self.credentials = credentials

    def get_credentials_and_project(self) -> tuple[Credentials, str]:
        """Credentials and project: explicit ones, else the connection's, else the environment's (ADC)."""
        credentials, project = self.credentials, self.project
        if credentials is None:
            credentials, found_project = self._connection_credentials()
            project = project or found_project
        if not project:
            raise ProviderUnavailable(
                PROVIDER_MISCONFIGURED,
                f"No Google Cloud project for Vertex AI: set VIDEO_PIPELINE_VERTEX_PROJECT or the project "
                f"of Airflow connection {self.gcp_conn_id!r}",
            )
        return credentials, project

    def _connection_credentials(self) -> tuple[Credentials, str | None]:
        from airflow.providers.google.common.hooks.base_google import GoogleBaseHook

        try:
            base = GoogleBaseHook(gcp_conn_id=self.gcp_conn_id)
        except Exception as exc:
            # No such connection: the provider would fail here, but a GCE VM's
            # service account (application default credentials) is a fine source.
            log.info("No Airflow connection %r (%s); using application default credentials", self.gcp_conn_id, exc)
            import google.auth
            from google.auth.exceptions import DefaultCredentialsError

            try:
                credentials, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            except DefaultCredentialsError as missing:
                raise ProviderUnavailable(
                    PROVIDER_MISCONFIGURED,
                    f"No Google Cloud credentials for Vertex AI: create Airflow connection {self.gcp_conn_id!r} "
                    f"or run where application default credentials exist ({missing})",
                ) from None
            return credentials, project
        try:
            return base.get_credentials_and_project_id()
        except Exception as exc:
            # The message says what is wrong with the key file, never its content.
            raise ProviderUnavailable(
                PROVIDER_MISCONFIGURED,
                f"Could not load Google Cloud credentials from connection {self.gcp_conn_id!r}: "
                f"{type(exc).__name__}: {exc}",
            ) from None

    def has_credentials(self) -> bool:
        try:
            self.get_credentials_and_project()
        except PermanentError:
            return False
        return True

    def _make_client(self) -> genai.Client:
        from google import genai

        credentials, project = self.get_credentials_and_project()
        return genai.Client(
            vertexai=True,
            project=project,
            location=self.location,
            credentials=credentials,
            http_options=self._http_options(),
        )

    def _auth_failure(self, code: int | None, status: str | None, message: str) -> PermanentError:
        return ProviderUnavailable(
            PROVIDER_AUTH,
            f"Vertex AI refused the credentials of connection {self.gcp_conn_id!r} (HTTP {code} {status}): "
            f"{message}. Check that the Vertex AI API is enabled for the project and that the service "
            "account has the Vertex AI User role (roles/aiplatform.user).",
        )

    def _classify(self, exc: Exception) -> Retryable:
        from google.auth import exceptions as auth_errors

        if isinstance(exc, auth_errors.RefreshError):
            # Getting an access token failed. Google marks the transient cases
            # (its token endpoint down) retryable; a revoked or malformed key is not.
            if getattr(exc, "retryable", False):
                return Retryable(f"token refresh failed: {exc}")
            raise ProviderUnavailable(
                PROVIDER_AUTH, f"Could not get a Google Cloud access token for connection {self.gcp_conn_id!r}: {exc}"
            ) from None
        if isinstance(exc, auth_errors.TransportError):
            return Retryable(f"token endpoint unreachable: {exc}")
        return super()._classify(exc)
