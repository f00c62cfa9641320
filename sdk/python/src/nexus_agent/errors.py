"""Errors an agent author may catch."""

from __future__ import annotations


class NexusError(Exception):
    """Base of every error this SDK raises."""


class AuthError(NexusError):
    """`POST /auth/token` refused the client credentials (or the server was unreachable)."""


class ToolError(NexusError):
    """A tool call answered `ok: false`, or a frame carrying it was refused.

    `code` is the server's stable code (`target_not_allowed`, `provider_error`,
    `timeout`, `invalid_fields`, …); `message` is for humans.
    """

    def __init__(self, code: str, message: str, request_id: str) -> None:
        super().__init__(f"{code}: {message} (request {request_id})")
        self.code = code
        self.message = message
        self.request_id = request_id


class ToolTimeout(ToolError):
    """No `tool_result` arrived within the call's timeout (code `timeout`)."""


class AgentClosed(NexusError):
    """The server ended the session for good (4003 disabled, 4010 superseded,
    4011 tenant suspended), or the agent was closed."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"agent closed ({code}): {reason}")
        self.code = code
        self.reason = reason
