"""A fake Hugging Face Hub on 127.0.0.1: the endpoints huggingface_hub uses to download a repository.

``FakeHub`` serves model repositories held in memory (path -> bytes) under ``HF_ENDPOINT``:

- ``GET /api/models/{repo}/revision/{rev}``: the repo's info (its commit ``sha``, the files);
- ``GET /api/models/{repo}/tree/{rev}[/{path}]``: the file listing, with sizes and blob ids;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: a file's metadata (commit, etag, size) and body,
  the body sent in pieces so a client's progress is seen to move.

Every request is recorded in ``requests`` as (method, path), so a test can tell what was fetched.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

CHUNK = 16 * 1024


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @staticmethod
    def sha(repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._handle(self, body=False)

            def do_GET(self) -> None:
                hub._handle(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ------------------------------------------------------------------ routing

    def _handle(self, h: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        self.requests.append((h.command, path))
        if path.startswith("/api/models/"):
            rest = path.removeprefix("/api/models/")
            for repo in self.repos:
                if rest.startswith(repo + "/revision/"):
                    return self._json(h, self._info(repo), body)
                if rest.startswith(repo + "/tree/"):
                    sub = rest.removeprefix(repo + "/tree/").partition("/")[2]
                    return self._json(h, self._tree(repo, sub), body)
            return self._error(h, 404, "RepoNotFound", "Repository not found")
        for repo, files in self.repos.items():
            prefix = f"/{repo}/resolve/"
            if path.startswith(prefix):
                name = path.removeprefix(prefix).partition("/")[2]
                if name not in files:
                    return self._error(h, 404, "EntryNotFound", f"{name} does not exist")
                return self._file(h, repo, files[name], body)
        return self._error(h, 404, "RepoNotFound", "Repository not found")

    def _info(self, repo: str) -> dict:
        return {"id": repo, "modelId": repo, "sha": self.sha(repo), "private": False, "gated": False,
                "siblings": [{"rfilename": name} for name in sorted(self.repos[repo])]}

    def _tree(self, repo: str, sub: str) -> list[dict]:
        entries = []
        for name, data in sorted(self.repos[repo].items()):
            if sub and not name.startswith(sub.rstrip("/") + "/"):
                continue
            entries.append({"type": "file", "path": name, "size": len(data), "oid": _git_oid(data)})
        return entries

    def _json(self, h: BaseHTTPRequestHandler, value: object, body: bool) -> None:
        data = json.dumps(value).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)

    def _file(self, h: BaseHTTPRequestHandler, repo: str, data: bytes, body: bool) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("X-Repo-Commit", self.sha(repo))
        h.send_header("ETag", f'"{_git_oid(data)}"')
        h.end_headers()
        if body:
            for i in range(0, len(data), CHUNK):
                h.wfile.write(data[i:i + CHUNK])
                h.wfile.flush()

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("X-Error-Code", code)
        h.send_header("X-Error-Message", message)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
