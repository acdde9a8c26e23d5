"""A local Kafka Connect REST API: the endpoints ``kafka_connect`` uses, with failures on demand.

It keeps connectors in memory and answers like Connect does (status codes and JSON shapes of the
Connect REST API), in a thread on 127.0.0.1. Tests script failures with :meth:`FakeConnect.fail`
(status codes, slow answers), connector states with :meth:`FakeConnect.script_states`, and
read what was asked in :attr:`FakeConnect.requests`.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

#: Plugins this Connect "has", with the keys each requires.
PLUGINS: dict[str, list[str]] = {
    "org.apache.kafka.connect.file.FileStreamSourceConnector": ["file", "topic"],
    "org.apache.kafka.connect.file.FileStreamSinkConnector": ["file", "topics"],
    "io.debezium.connector.postgresql.PostgresConnector": [
        "database.hostname",
        "database.dbname",
        "topic.prefix",
    ],
    "io.debezium.connector.jdbc.JdbcSinkConnector": ["connection.url", "topics"],
}


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    authorization: str | None


@dataclass
class Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    delay: float = 0.0
    body: Any = None


@dataclass
class FakeConnector:
    config: dict[str, Any]
    states: deque[tuple[str, list[str]]] = field(default_factory=deque)
    state: tuple[str, list[str]] = ("RUNNING", ["RUNNING"])
    trace: str = ""


def _plugin(name: str) -> str | None:
    for plugin in PLUGINS:
        simple = plugin.rsplit(".", 1)[-1]
        if name in (plugin, simple, simple.removesuffix("Connector")):
            return plugin
    return None


def _validate(plugin: str, config: dict[str, Any]) -> dict[str, Any]:
    """Connect's validation report: one entry per key, with its errors."""
    required = ["name", "connector.class", *PLUGINS[plugin]]
    configs = []
    errors = 0
    for key in sorted(set(required) | set(config)):
        messages = []
        if key in required and not config.get(key):
            messages.append(f'Missing required configuration "{key}" which has no default value.')
        if key == "tasks.max" and not str(config[key]).isdigit():
            messages.append(
                f"Invalid value {config[key]} for configuration tasks.max: Not a number of type INT"
            )
        errors += len(messages)
        configs.append(
            {
                "definition": {"name": key, "type": "STRING", "required": key in required},
                "value": {
                    "name": key,
                    "value": config.get(key),
                    "recommended_values": [],
                    "errors": messages,
                    "visible": True,
                },
            }
        )
    return {"name": plugin, "error_count": errors, "groups": ["Common"], "configs": configs}


class FakeConnect:
    """State and behaviour of the fake Connect; ``url`` is where it listens."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.lock = threading.Lock()
        self.connectors: dict[str, FakeConnector] = {}
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.auth = auth
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeConnect:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    # --- scripting ------------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        status: int = 503,
        times: int = 1,
        delay: float = 0.0,
        body: Any = None,
    ) -> None:
        """Answer the next ``times`` ``method`` requests matching ``path`` (a regex) this way."""
        with self.lock:
            self.failures.append(Failure(method, re.compile(path), status, times, delay, body))

    def script_states(self, name: str, *states: tuple[str, list[str]], trace: str = "") -> None:
        """States the status endpoint reports for ``name``, one per request; the last one stays."""
        with self.lock:
            connector = self.connectors.setdefault(name, FakeConnector(config={}))
            connector.states = deque(states)
            connector.trace = trace

    def add(self, name: str, config: dict[str, Any]) -> None:
        with self.lock:
            self.connectors[name] = FakeConnector(config=dict(config))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method)
                and (path is None or re.fullmatch(path, r.path))
            ]

    # --- serving --------------------------------------------------------------------------------

    def _take_failure(self, method: str, path: str) -> Failure | None:
        with self.lock:
            for failure in self.failures:
                if (
                    failure.method == method
                    and failure.pattern.fullmatch(path)
                    and failure.times > 0
                ):
                    failure.times -= 1
                    return failure
        return None

    def handle(
        self, method: str, path: str, body: Any, authorization: str | None
    ) -> tuple[int, Any]:
        with self.lock:
            self.requests.append(Recorded(method, path, body, authorization))
        failure = self._take_failure(method, path)
        if failure is not None:
            if failure.delay:
                time.sleep(failure.delay)
            if failure.status:
                return failure.status, failure.body or {
                    "error_code": failure.status,
                    "message": f"scripted failure {failure.status}",
                }
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if authorization != expected:
                return 401, {"error_code": 401, "message": "Unauthorized"}
        return self._route(method, path, body)

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        with self.lock:
            if parts == ["connectors"] and method == "GET":
                return 200, sorted(n for n, c in self.connectors.items() if c.config)
            if (
                len(parts) == 3
                and parts[0] == "connectors"
                and parts[2] == "config"
                and method == "PUT"
            ):
                return self._put_config(parts[1], body)
            if (
                len(parts) == 3
                and parts[0] == "connectors"
                and parts[2] == "status"
                and method == "GET"
            ):
                return self._status(parts[1])
            if len(parts) == 2 and parts[0] == "connectors" and method == "DELETE":
                connector = self.connectors.get(parts[1])
                if connector is None or not connector.config:
                    return 404, {"error_code": 404, "message": f"Connector {parts[1]} not found"}
                del self.connectors[parts[1]]
                return 204, None
            if (
                len(parts) == 4
                and parts[0] == "connector-plugins"
                and parts[2:] == ["config", "validate"]
                and method == "PUT"
            ):
                plugin = _plugin(parts[1])
                if plugin is None:
                    return 404, {
                        "error_code": 404,
                        "message": f"Unknown connector plugin {parts[1]}",
                    }
                return 200, _validate(plugin, body or {})
        return 404, {"error_code": 404, "message": f"HTTP 404 Not Found: {method} {path}"}

    def _put_config(self, name: str, config: Any) -> tuple[int, Any]:
        if not isinstance(config, dict):
            return 400, {"error_code": 400, "message": "Request body must be a JSON object"}
        if config.get("name", name) != name:
            return 400, {
                "error_code": 400,
                "message": f"Connector name configuration ({config['name']}) doesn't match "
                f"connector name in the URL ({name})",
            }
        plugin = _plugin(str(config.get("connector.class", "")))
        if plugin is None:
            return 400, {
                "error_code": 400,
                "message": "Connector config is missing a known connector.class",
            }
        report = _validate(plugin, {**config, "name": name})
        if report["error_count"]:
            return 400, {
                "error_code": 400,
                "message": f"Connector configuration is invalid and contains the following "
                f"{report['error_count']} error(s)",
            }
        existing = self.connectors.get(name)
        created = existing is None or not existing.config
        if existing is None:
            self.connectors[name] = FakeConnector(config=dict(config))
        else:
            existing.config = dict(config)
        return (201 if created else 200), {
            "name": name,
            "config": config,
            "tasks": [],
            "type": "source",
        }

    def _status(self, name: str) -> tuple[int, Any]:
        connector = self.connectors.get(name)
        if connector is None or not connector.config:
            return 404, {"error_code": 404, "message": f"No status found for connector {name}"}
        if connector.states:
            connector.state = connector.states.popleft()
        state, tasks = connector.state
        worker = "127.0.0.1:8083"
        body: dict[str, Any] = {
            "name": name,
            "connector": {"state": state, "worker_id": worker},
            "tasks": [{"id": i, "state": s, "worker_id": worker} for i, s in enumerate(tasks)],
            "type": "source",
        }
        if connector.trace:
            if state == "FAILED":
                body["connector"]["trace"] = connector.trace
            for task in body["tasks"]:
                if task["state"] == "FAILED":
                    task["trace"] = connector.trace
        return 200, body

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                status, answer = fake.handle(
                    self.command, self.path, body, self.headers.get("Authorization")
                )
                payload = b"" if answer is None else json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    if payload:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            do_GET = do_PUT = do_DELETE = do_POST = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
