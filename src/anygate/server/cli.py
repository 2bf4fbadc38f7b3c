"""``anygate``: run the proxy.

    anygate                                   # built-in config: the mock model, master key sk-1234
    anygate --config config.yaml              # LiteLLM-format config
    anygate --config config.yaml --host 0.0.0.0 --port 4000 --workers 2
    anygate claude-code-env --config config.yaml   # export lines for Claude Code (see claude_code_env)

The server is uvicorn with uvloop and httptools, one process per worker.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from anygate import __version__
from anygate.config import DEFAULT_CONFIG, ConfigError, load_config
from anygate.server.access import is_loopback, weak_master_key
from anygate.server.logs import LOG_FORMATS, configure_logging

METRICS_DIR_ENV: Final = "ANYGATE_METRICS_DIR"
"""Where the workers share their metric values (see anygate.observability.store)."""
DEFAULT_PORT: Final = 4000
DEFAULT_HOST: Final = "127.0.0.1"
CLAUDE_CODE_ENV_COMMAND: Final = "claude-code-env"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anygate",
        description=(
            "Serve the Anthropic Messages API (POST /v1/messages, /v1/messages/count_tokens, GET /v1/models) "
            "in front of any LLM: OpenAI and OpenAI-compatible servers, Anthropic, "
            "or the built-in mock model. "
            "Point the official anthropic SDK or Claude Code at http://HOST:PORT."
        ),
        epilog=(
            "Without --config the built-in config serves the mock model as 'anthropic-claude' "
            "with master key sk-1234. Clients send the master key in x-api-key or Authorization: Bearer. "
            "Environment: ANYGATE_MASTER_KEY overrides general_settings.master_key. "
            "'anygate claude-code-env --config FILE' prints the environment for Claude Code."
        ),
    )
    parser.add_argument("--config", "-c", metavar="FILE", help="LiteLLM-format YAML config (model_list, ...)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", "-p", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--workers", "-w", type=int, default=1, help="server processes (default 1)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default info"
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=list(LOG_FORMATS),
        help="text lines, or one JSON object per line with one record per request (default text)",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=int,
        default=30,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, seconds in-flight requests get before streams end with an error event",
    )
    parser.add_argument("--version", action="version", version=f"anygate {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == [CLAUDE_CODE_ENV_COMMAND]:
        from anygate.server import claude_code_env

        return claude_code_env.main(arguments[1:])
    args = build_parser().parse_args(arguments)
    configure_logging(args.log_level, args.log_format)
    config_path = str(Path(args.config).resolve()) if args.config else DEFAULT_CONFIG
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"anygate: config error: {exc}", file=sys.stderr)
        return 2
    master_key = config.general.master_key
    if not master_key and not is_loopback(args.host):
        print(
            f"anygate: refusing to bind {args.host} without a master key: anyone who can reach it could use "
            "your upstream credentials. Set general_settings.master_key or ANYGATE_MASTER_KEY, "
            "or bind 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    weakness = weak_master_key(master_key) if master_key and not is_loopback(args.host) else None
    if weakness is not None:
        print(
            f"anygate: refusing to bind {args.host} with a weak master key ({weakness}): anyone who can "
            "reach it could guess it. Generate one with: openssl rand -hex 16",
            file=sys.stderr,
        )
        return 2
    if args.workers < 1:
        print("anygate: --workers must be at least 1", file=sys.stderr)
        return 2
    os.environ["ANYGATE_CONFIG"] = config_path
    os.environ["ANYGATE_LOG_LEVEL"] = args.log_level
    os.environ["ANYGATE_WORKERS"] = str(args.workers)
    os.environ["ANYGATE_LOG_FORMAT"] = args.log_format
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from anygate.server.runtime import Server, server_options

    logging.getLogger("anygate").info(
        "anygate %s serving %d deployment(s) from %s on http://%s:%d",
        __version__,
        len(config.deployments),
        config_path,
        args.host,
        args.port,
    )
    server_config = uvicorn.Config(
        "anygate.server.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        timeout_graceful_shutdown=args.graceful_timeout,
        **server_options(),
        # JSON logs: uvicorn's own loggers propagate to the JSON handler instead of their formatter.
        log_config=None if args.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
    )
    if args.workers > 1:
        # uvicorn's supervisor: SIGHUP restarts the workers (each shuts down gracefully). The workers
        # share their metrics through files in one directory, made (and removed) here unless given.
        with metrics_directory():
            Multiprocess(server_config, sockets=[server_config.bind_socket()]).run()
        return 0
    server_config.load_app()
    server = Server(server_config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        return 3
    return 0


@contextlib.contextmanager
def metrics_directory() -> Iterator[None]:
    """A fresh, private ``ANYGATE_METRICS_DIR`` for the workers of this run, removed at exit; an operator's
    own directory (already in the environment) is used as it is and left in place."""
    if os.environ.get(METRICS_DIR_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="anygate-metrics-") as directory:
        os.environ[METRICS_DIR_ENV] = directory
        try:
            yield
        finally:
            del os.environ[METRICS_DIR_ENV]


if __name__ == "__main__":
    raise SystemExit(main())
