"""Open a local HTML page in headless Chromium (Debian's `chromium`), read what loaded, take a screenshot.

No driver library: `--dump-dom` prints the DOM once the page's virtual time budget is spent, so a
copy of the page with a small script appended writes what the browser loaded (every image's
natural size, every video's readyState and duration) into the DOM as JSON. Resource loads pause
virtual time, so the budget is not used up while files are still being read. The flags keep
Chromium off the network (closed here) and out of the user's profile.
"""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = shutil.which("chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")
BUDGET_MS = 20000  # virtual time for the page to settle

# After the load event (every <img> done), wait for each video's metadata or error, then report.
_CHECK = """<script>
addEventListener("load", async () => {
  const videos = [...document.querySelectorAll("video")];
  await Promise.all(videos.map(v => v.readyState >= 1 || v.error ? null : new Promise(done => {
    v.addEventListener("loadedmetadata", done, {once: true});
    v.addEventListener("error", done, {once: true});
  })));
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({
    images: [...document.images].map(i => ({src: i.getAttribute("src"), complete: i.complete, width: i.naturalWidth})),
    videos: videos.map(v => ({src: v.getAttribute("src"), readyState: v.readyState, duration: v.duration,
                              width: v.videoWidth, error: v.error && v.error.code})),
  });
  document.body.append(out);
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                              timeout=120)


def loaded(page: Path) -> dict:
    """What Chromium loaded of `page`: {"images": [{src, complete, width}], "videos": [{src, readyState,
    duration, width, error}]}. The check runs on a copy beside the page, so relative links resolve alike."""
    probe = page.with_name(f".{page.stem}.browser-check.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _CHECK + "\n</body>"), encoding="utf-8")
    try:
        done = _chromium(f"--virtual-time-budget={BUDGET_MS}", "--dump-dom", probe.resolve().as_uri())
    finally:
        probe.unlink()
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"chromium wrote no check result (exit {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2000) -> Path:
    """A PNG of the first `width` x `height` CSS pixels of `page`."""
    done = _chromium(f"--virtual-time-budget={BUDGET_MS}", f"--window-size={width},{height}", f"--screenshot={png}",
                     page.resolve().as_uri())
    assert png.exists(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return png
