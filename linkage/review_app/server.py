"""Run the review application with uvicorn: one process, one worker (sessions live in its
memory), no access log (a URL can carry a record id; logs never do)."""

from __future__ import annotations

import logging

import uvicorn

from linkage.config import ProjectConfig
from linkage.review_app.app import create_app
from linkage.review_app.context import ReviewContext

log = logging.getLogger(__name__)


def serve(project: ProjectConfig, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the review application over the project's warehouse until stopped."""
    context = ReviewContext.load(project)
    context.prepare_warehouse()
    if host not in ("127.0.0.1", "::1", "localhost") and not project.review.secure_cookies:
        log.warning(
            "review: serving on %s without secure cookies: put it behind an https reverse proxy"
            " and set review.secure_cookies: true",
            host,
        )
    uvicorn.run(
        create_app(context),
        host=host,
        port=port,
        workers=1,
        access_log=False,
        proxy_headers=False,  # the peer address is the proxy's: trusted_proxies checks it
        server_header=False,
        log_level="warning",
    )
