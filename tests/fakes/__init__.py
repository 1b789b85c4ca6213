"""Local stand-ins for external services, speaking their real protocols on loopback."""

from tests.fakes.gemini_server import FakeGeminiServer, RecordedRequest, Reply, analysis_from_prompt

__all__ = ["FakeGeminiServer", "RecordedRequest", "Reply", "analysis_from_prompt"]
