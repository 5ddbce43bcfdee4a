"""Drive Debian's headless Chromium from tests, with no Python browser package.

`dump_dom` returns the DOM after the page has loaded and rendered; `screenshot` writes a PNG.
Every run uses a throw-away profile and switches off Chromium's own background traffic, so the only
thing loaded is the file given. `testids` reads every `data-testid` element's text from a DOM.

Install: apt-get update && apt-get install -y chromium fonts-noto-cjk
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "apt-get update && apt-get install -y chromium fonts-noto-cjk"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
    "--disable-dev-shm-usage",
    # Chromium calls home (clock, component updater, accounts) even with the flags above: resolve
    # no host name at all, so nothing leaves the machine whatever the browser or the page asks for.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)


def find_chromium() -> str | None:
    env = os.environ.get("MEDLAKE_CHROMIUM")
    for c in ((env,) if env else ()) + CANDIDATES:
        path = shutil.which(c) if not os.path.isabs(c) else (c if os.access(c, os.X_OK) else None)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError(f"chromium not found; install it with: {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="medlake-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *args]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env={**os.environ, "HOME": profile})
    if proc.returncode != 0:
        raise RuntimeError(f"chromium failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


def _url(path: str | os.PathLike) -> str:
    return Path(path).resolve().as_uri()


def dump_dom(html_path: str | os.PathLike, net_log: str | os.PathLike | None = None) -> str:
    """The rendered DOM of a local HTML file. With `net_log`, Chromium also writes its network log
    there (see `network_urls`)."""
    extra = [f"--log-net-log={net_log}", "--net-log-capture-mode=Default"] if net_log else []
    return _run([*extra, "--dump-dom", _url(html_path)]).stdout.decode("utf-8")


def screenshot(html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1400,
               height: int = 2400) -> Path:
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={png}", f"--window-size={width},{height}", _url(html_path)])
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no screenshot at {png}")
    return png


def _net_events(net_log: str | os.PathLike) -> list[dict]:
    text = Path(net_log).read_text(encoding="utf-8", errors="replace").rstrip().rstrip(",")
    for candidate in (text, text + "]}", text.rsplit("},", 1)[0] + "}]}"):  # the log may be cut short
        try:
            return json.loads(candidate).get("events", [])
        except json.JSONDecodeError:
            continue
    raise ValueError(f"cannot parse the Chromium net log {net_log}")


def network_urls(net_log: str | os.PathLike) -> list[str]:
    """URLs of every request in a Chromium net log, the browser's own included (file: URLs do not go
    through the network stack and never appear)."""
    return sorted({(ev.get("params") or {})["url"] for ev in _net_events(net_log)
                   if isinstance((ev.get("params") or {}).get("url"), str)})


def page_requests(net_log: str | os.PathLike) -> list[str]:
    """URLs the page asked for: requests sent with the renderer's User-Agent header. Chromium's own
    background requests (clock, updater, accounts) carry none. The test checks this heuristic on a
    page that does load remote resources."""
    urls = set()
    for ev in _net_events(net_log):
        p = ev.get("params") or {}
        headers = (p.get("request_headers") or {}).get("headers") or []
        if isinstance(p.get("url"), str) and any(h.lower().startswith("user-agent:") for h in headers):
            urls.add(p["url"])
    return sorted(urls)


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _TestIds(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None]] = []
        self.text: dict[str, list[str]] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        tid = a.get("data-testid")
        if tid is not None:
            if tid in self.text:
                raise AssertionError(f"duplicate data-testid {tid!r}")
            self.text[tid] = []
            self.attrs[tid] = a
        if tag not in _VOID:
            self.stack.append((tag, tid))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        for _, tid in self.stack:
            if tid is not None:
                self.text[tid].append(data)


def testids(dom: str) -> tuple[dict[str, str], dict[str, dict[str, str | None]]]:
    """(text, attributes) of every element carrying data-testid, by testid; text is whitespace-collapsed."""
    p = _TestIds()
    p.feed(dom)
    p.close()
    return {k: " ".join("".join(v).split()) for k, v in p.text.items()}, p.attrs
