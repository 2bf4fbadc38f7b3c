"""The two gateways under test: their configs (LiteLLM's format for both) and how each is started.

Both get the same five models in front of the same fake upstream:
    bench-openai          OpenAI Chat Completions at {upstream}/v1/chat/completions
    bench-openai-slow     the same at {upstream}/slow/v1/... (a chunk every 100 ms, scenario e)
    bench-responses       OpenAI Responses API at {upstream}/v1/responses (`openai/responses/gpt-5-mini`,
                          LiteLLM's spelling, for both gateways)
    bench-anthropic       Anthropic passthrough at {upstream}/v1/messages
    bench-anthropic-slow  the same at {upstream}/slow/v1/messages
    bench-gemini          the Gemini API at {upstream}/v1beta/models/gemini-3-flash-preview:…
    bench-bedrock-converse  Bedrock ConverseStream at {upstream}/model/amazon.nova-pro-v1%3A0/converse-stream
    bench-bedrock-claude    Claude on Bedrock, InvokeModelWithResponseStream at
                          {upstream}/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream
The Bedrock models have static AWS keys instead of an api_key, so every request is SigV4-signed as it
would be for AWS (the fake upstream does not check the signature).
LiteLLM's `openai/` prefix goes to the Responses API, so LiteLLM uses `hosted_vllm/` for its Chat
Completions path; anygate uses `openai/`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import teams_keys
from bench.procs import Server, free_port, start_server

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
MASTER_KEY = "sk-bench-master-key-0123456789abcdef"
UPSTREAM_KEY = "sk-fake-upstream"
BEDROCK_CREDENTIALS = (
    "aws_access_key_id: AKIABENCHFAKEUPSTREAM, "
    "aws_secret_access_key: benchFakeSecretKey0123456789abcdefghijklmn, "
    "aws_region_name: us-east-1"
)
"""Static AWS credentials of the Bedrock models (in place of ``api_key``)."""
LITELLM_VENV = BENCH / ".venv-litellm"
ANYGATE_VENV = Path(os.environ.get("BENCH_ANYGATE_VENV") or REPO / ".venv")
"""The venv anygate runs from; this checkout's `src/` goes first on its PYTHONPATH either way, so a
venv whose editable install points at another checkout (a git worktree) still runs this code."""
POSTGRES_SERVER = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
"""The Postgres server of the `--teams postgres-redis` variant (a database of its own is made on it)."""
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
"""The Redis of the `--teams postgres-redis` variant (keys under a prefix of their own)."""


@dataclass
class Gateway:
    """How to configure and start one gateway."""

    name: str
    openai_prefix: str
    key_file: Path | None = None
    """Virtual keys for wrk to rotate through (one a line), or None to send the master key."""

    def config(self, upstream_port: int, models: set[str] | None = None) -> str:
        """The YAML config; `models` limits it to the model names the selected scenarios use."""
        up = f"http://127.0.0.1:{upstream_port}"
        rows = [
            ("bench-openai", f"{self.openai_prefix}/gpt-4o-mini", f"{up}/v1"),
            ("bench-openai-slow", f"{self.openai_prefix}/gpt-4o-mini", f"{up}/slow/v1"),
            ("bench-responses", "openai/responses/gpt-5-mini", f"{up}/v1"),
            ("bench-anthropic", "anthropic/claude-sonnet-4-5", up),
            ("bench-anthropic-slow", "anthropic/claude-sonnet-4-5", f"{up}/slow"),
            ("bench-gemini", "gemini/gemini-3-flash-preview", f"{up}/v1beta"),
            ("bench-bedrock-converse", "bedrock/converse/amazon.nova-pro-v1:0", up),
            ("bench-bedrock-claude", "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0", up),
        ]
        lines = ["model_list:"]
        for name, model, base in rows:
            if models is not None and name not in models:
                continue
            lines.append(f"  - model_name: {name}")
            auth = BEDROCK_CREDENTIALS if model.startswith("bedrock/") else f"api_key: {UPSTREAM_KEY}"
            lines.append(f'    litellm_params: {{model: "{model}", api_base: "{base}", {auth}}}')
        lines.append(f"general_settings: {{master_key: {MASTER_KEY}}}")
        return "\n".join(lines) + "\n"

    def argv(self, config_path: Path, port: int, workers: int) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def available(self) -> str:
        """Empty if the gateway can be started, else why not."""
        raise NotImplementedError

    def start(
        self, run_dir: Path, upstream_port: int, workers: int, models: set[str] | None = None
    ) -> Server:
        reason = self.available()
        if reason:
            raise RuntimeError(f"{self.name} cannot run: {reason}")
        gw_dir = run_dir / f"{self.name}-w{workers}"
        gw_dir.mkdir(parents=True, exist_ok=True)
        self.prepare(gw_dir)
        config_path = gw_dir / "config.yaml"
        config_path.write_text(self.config(upstream_port, models))
        port = free_port()
        return start_server(
            self.name,
            self.argv(config_path, port, workers),
            port,
            gw_dir / "server.log",
            env=self.env(),
            cwd=gw_dir,
            ready_timeout_s=180,
        )

    def prepare(self, gw_dir: Path) -> None:
        """Whatever the gateway needs before it starts (a database to fill)."""

    def cleanup(self) -> None:
        """Remove what :meth:`prepare` made outside the run's folder, once the gateway stopped."""


OBSERVABILITY_VARIANTS = {
    "bare": "metrics and the dashboard's records off (general_settings metrics: false, ui: false)",
    "traces": "OpenTelemetry traces on (OTEL_TRACES_EXPORTER=console, spans batched to the server log)",
    "core": "the request path alone: teams, metrics and the dashboard's records off",
}
"""anygate variants of `--observability`: the default anygate has metrics and the dashboard on."""
TEAMS_VARIANTS = {
    "sqlite": f"teams on, SQLite beside the config, {teams_keys.KEYS:,} virtual keys in {teams_keys.TEAMS} "
    "teams (each key with an rpm limit and a budget, each team with a budget), wrk rotating through all "
    "the keys",
    "postgres-redis": "the same on Postgres (a database of its own on BENCH_POSTGRES, dropped afterwards) "
    "and Redis (BENCH_REDIS, a key prefix of its own, cleared afterwards)",
}
"""anygate variants of `--teams`: the default anygate has teams off and takes the master key."""


class Anygate(Gateway):
    def __init__(self, variant: str = "") -> None:
        super().__init__(name=f"anygate-{variant}" if variant else "anygate", openai_prefix="openai")
        self.teams = variant.removeprefix("teams-") if variant.startswith("teams-") else ""
        self.database_url = ""
        self.redis_prefix = ""

    def prepare(self, gw_dir: Path) -> None:
        """For a teams variant: a database of its own filled with the keys, and wrk's key file."""
        if not self.teams:
            return
        run = uuid.uuid4().hex[:10]
        if self.teams == "sqlite":
            self.database_url = f"sqlite:///{gw_dir / 'anygate.db'}"
        else:
            self.database_url = f"{POSTGRES_SERVER}/anygate_bench_{run}"
            self.redis_prefix = f"anygate-bench:{run}:"
        self._keys_script("seed", self.database_url, "--keys", str(teams_keys.KEYS))
        self.key_file = gw_dir / "keys.txt"
        teams_keys.write_key_file(self.key_file, teams_keys.KEYS)

    def cleanup(self) -> None:
        if self.teams == "postgres-redis" and self.database_url:
            self._keys_script("drop", self.database_url)
            self._keys_script("clear-redis", REDIS_URL, self.redis_prefix)
            self.database_url = ""

    def _keys_script(self, *args: str) -> None:
        """Run bench.teams_keys with anygate's Python (the harness's venv has no database drivers)."""
        done = subprocess.run(
            [str(ANYGATE_VENV / "bin" / "python"), "-m", "bench.teams_keys", *args],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"bench.teams_keys {args[0]} failed: {done.stderr[-2000:]}")

    def config(self, upstream_port: int, models: set[str] | None = None) -> str:
        text = super().config(upstream_port, models)
        if self.teams:
            redis = (
                f"redis_url: '{REDIS_URL}', redis_key_prefix: '{self.redis_prefix}', "
                if self.redis_prefix
                else ""
            )
            text = text.replace(
                "general_settings: {", f"general_settings: {{database_url: '{self.database_url}', {redis}"
            )
        elif self.name == "anygate-bare":
            text = text.replace("general_settings: {", "general_settings: {metrics: false, ui: false, ")
        elif self.name == "anygate-core":
            text = text.replace(
                "general_settings: {", "general_settings: {teams: false, metrics: false, ui: false, "
            )
        return text

    def env(self) -> dict[str, str]:
        env = super().env()
        # Teams only where the variant asks for them, never from the caller's environment.
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
        if self.name == "anygate-traces":
            env["OTEL_TRACES_EXPORTER"] = "console"
            env["OTEL_SERVICE_NAME"] = "anygate-bench"
        return env

    def _command(self) -> list[str] | None:
        script = ANYGATE_VENV / "bin" / "anygate"
        if script.exists():
            return [str(script)]
        python = ANYGATE_VENV / "bin" / "python"
        if python.exists() and (REPO / "src" / "anygate" / "__main__.py").exists():
            return [str(python), "-m", "anygate"]
        return None

    def available(self) -> str:
        if self._command() is None:
            return (
                f"neither {ANYGATE_VENV}/bin/anygate nor src/anygate/__main__.py exists "
                "(install it with `.venv/bin/pip install -e .`)"
            )
        return ""

    def argv(self, config_path: Path, port: int, workers: int) -> list[str]:
        cmd = self._command() or []
        return [
            *cmd,
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]


class LiteLLM(Gateway):
    def __init__(self) -> None:
        super().__init__(name="litellm", openai_prefix="hosted_vllm")

    def available(self) -> str:
        if not (LITELLM_VENV / "bin" / "litellm").exists():
            return f"{LITELLM_VENV} has no litellm: run `bash bench/setup.sh`"
        return ""

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        # No fetch of the remote cost map (no internet here; it also retries for seconds at start-up).
        env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
        env.pop("DATABASE_URL", None)
        return env

    def argv(self, config_path: Path, port: int, workers: int) -> list[str]:
        return [
            str(LITELLM_VENV / "bin" / "litellm"),
            "--config",
            str(config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            str(workers),
        ]


def litellm_version() -> str:
    meta = list((LITELLM_VENV / "lib").glob("python3*/site-packages/litellm-*.dist-info"))
    return meta[0].name.removeprefix("litellm-").removesuffix(".dist-info") if meta else "not installed"


def tool_versions() -> dict[str, str]:
    """Versions worth printing next to the figures."""
    import platform
    import subprocess

    out: dict[str, str] = {"python": platform.python_version(), "litellm": litellm_version()}
    for name, argv in {"nginx": ["nginx", "-v"], "wrk": ["wrk", "--version"]}.items():
        if shutil.which(argv[0]) or Path("/usr/sbin/" + argv[0]).exists():
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            first = (done.stdout + done.stderr).strip().splitlines()[0]
            # "nginx version: nginx/1.22.1" -> "nginx/1.22.1";
            # "wrk debian/4.1.0-3+b2 [epoll] Copyright..." -> "wrk 4.1.0-3+b2"
            out[name] = (
                first.split(": ", 1)[-1] if name == "nginx" else "wrk " + first.split()[1].split("/")[-1]
            )
    return out
