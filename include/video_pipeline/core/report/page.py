"""The page's fixed parts: its HTML template, style and script, and its CSP.

The template, CSS and JS are real files of this package (``templates/report.html``,
``assets/report.css``, ``assets/report.js``), read with ``importlib.resources`` once
per process and inlined into every page. The Content-Security-Policy allows only
that style and script, by hash, so the files must reach the page byte for byte.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources

PACKAGE = "include.video_pipeline.core.report"


@functools.cache
def resource_text(path: str) -> str:
    """A file of this package by its ``/``-separated path (``assets/report.css``), read once per process."""
    resource = resources.files(PACKAGE)
    for part in path.split("/"):
        resource = resource.joinpath(part)
    return resource.read_text(encoding="utf-8")


# The only script on the page. No user data is ever formatted into it: it reads
# timestamps from data-t attributes and overrides from the fragment at runtime.
SCRIPT = resource_text("assets/report.js").strip()
STYLE = resource_text("assets/report.css").strip()
TEMPLATE = resource_text("templates/report.html")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


# `*` also matches the page's own scheme (http, https or file), so relative
# siblings and presigned https URLs load wherever the page is opened; nothing
# else (no fetch, no form, no frame, no foreign script or style) is allowed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src * data: blob:; media-src * blob:; "
    f"style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; base-uri 'none'; form-action 'none'"
)
