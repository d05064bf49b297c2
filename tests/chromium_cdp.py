"""Headless Debian chromium over the DevTools protocol on a pipe: no websocket client, no browser download."""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time

import pytest

# Per image: loaded, size, and how many pixels carry the plots' data colours (matplotlib's blue, the budget's red).
IMAGE_PIXELS_JS = """(() => Array.from(document.images).map(img => {
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext('2d'); let blue = 0, red = 0, ink = 0;
  if (img.naturalWidth > 0) {
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < d.length; i += 4) {
      const [r, gr, b] = [d[i], d[i + 1], d[i + 2]];
      if (r < 235 || gr < 235 || b < 235) ink++;
      if (Math.abs(r - 31) < 40 && Math.abs(gr - 119) < 40 && Math.abs(b - 180) < 40) blue++;
      if (Math.abs(r - 214) < 40 && Math.abs(gr - 39) < 40 && Math.abs(b - 40) < 40) red++;
    }
  }
  return {alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
          ink: ink / Math.max(1, c.width * c.height), blue: blue, red: red};
}))()"""


class Chromium:
    """One headless chromium process; ``load(url)`` returns the page's console/log errors once it has loaded."""

    def __init__(self, profile_dir, timeout: float = 60.0):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        if exe is None:
            pytest.fail("chromium is not installed: apt-get install -y chromium (.ci/run does this)")
        self.timeout, self._next_id, self._buf, self.events = timeout, 0, b"", []
        cmd_r, self._cmd_w = os.pipe()  # we write commands; chromium reads them on its fd 3
        self._out_r, out_w = os.pipe()  # chromium writes replies and events on its fd 4

        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe",
                "--no-first-run", "--disable-extensions", f"--user-data-dir={profile_dir}", "about:blank"]
        def wire_fds():  # in the child: the pipe ends on the fds chromium expects (3: commands in, 4: replies out)
            src = os.dup(cmd_r), os.dup(out_w)  # copies first, so neither end is overwritten by the other's dup2
            for fd, target in zip(src, (3, 4)):
                os.dup2(fd, target)
                os.set_inheritable(target, True)

        self.proc = subprocess.Popen([exe, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, close_fds=False, preexec_fn=wire_fds)
        os.close(cmd_r)
        os.close(out_w)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=self.session)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out_r], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._out_r, 1 << 16)
            if not chunk:
                raise RuntimeError(f"chromium closed the DevTools pipe (exit code {self.proc.poll()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def _wait(self, match) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self._read_message(deadline)
            if match(msg):
                return msg
            if "method" in msg:
                self.events.append(msg)

    def call(self, method: str, session: str | None = None, **params) -> dict:
        """Send one DevTools command and return its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params} | ({"sessionId": session} if session else {})
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        reply = self._wait(lambda m: m.get("id") == self._next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def load(self, url: str) -> list[str]:
        """Navigate, wait for the load event, and return every console error, exception and error log entry."""
        self.events.clear()
        self.call("Page.navigate", session=self.session, url=url)
        self._wait(lambda m: m.get("method") == "Page.loadEventFired")
        errors = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                errors.append(f"{d.get('text')} {d.get('exception', {}).get('description', '')}".strip())
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                errors.append(p["entry"]["text"])
        return errors

    def evaluate(self, expression: str):
        """The JSON value of ``expression`` in the page."""
        result = self.call("Runtime.evaluate", session=self.session, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"]["value"]

    def close(self) -> None:
        """Ask the browser to quit, then wait for the process."""
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            self.proc.kill()
        self.proc.wait(timeout=30)
        os.close(self._cmd_w)
        os.close(self._out_r)
