"""Does a report render? Open it in a headless Chromium and ask the browser whether every figure
decoded: an ``<img>`` whose PNG is cut off or empty shows as a broken icon, which no check of the
HTML text catches. Used by ``codeloop report NAME --check``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from codeloop.errors import UserError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_ENV = "CODELOOP_CHROMIUM"

# Runs at the load event, which waits for every image: marks each with what the browser made of it.
# (Synchronous on purpose: an async decode() can still be pending when --dump-dom writes the page.)
_PROBE = ("<script>window.addEventListener('load', () => {"
          "for (const im of document.images) {"
          "im.setAttribute('data-rendered', im.complete && im.naturalWidth > 0 ? 'yes' : 'no');"
          "im.setAttribute('data-size', im.naturalWidth + 'x' + im.naturalHeight); }"
          "document.body.setAttribute('data-checked', String(document.images.length)); });</script>")
_IMG = re.compile(r"<img\b[^>]*>", re.I)
_ATTR = re.compile(r'([\w-]+)="([^"]*)"')


@dataclass
class RenderCheck:
    figures: int
    broken: list[str] = field(default_factory=list)  # the alt text (or position) of each broken figure
    sizes: list[str] = field(default_factory=list)  # WxH as decoded, in page order

    @property
    def ok(self) -> bool:
        return not self.broken


def find_browser() -> str:
    exe = os.environ.get(BROWSER_ENV) or next((p for b in BROWSERS if (p := shutil.which(b))), None)
    if not exe:
        raise UserError("checking that a report renders needs a headless Chromium: apt install chromium "
                        f"(Debian/Ubuntu), or set ${BROWSER_ENV} to the browser's path", "--check")
    return exe


def check_renders(html: str | Path, timeout_s: float = 120.0, browser: str | None = None) -> RenderCheck:
    """Load `html` in headless Chromium (`browser`, else `find_browser()`) and report every figure
    that did not decode."""
    html = Path(html)
    if not html.is_file():
        raise UserError("no such report (run `codeloop report NAME` first)", str(html))
    exe = browser or find_browser()
    with tempfile.TemporaryDirectory(prefix="codeloop-render-") as tmp:
        page = Path(tmp) / html.name
        text = html.read_text(encoding="utf-8")
        page.write_text(text.replace("</body>", _PROBE + "</body>", 1) if "</body>" in text else text + _PROBE,
                        encoding="utf-8")
        cmd = [exe, "--headless", "--disable-gpu", "--no-first-run", "--allow-file-access-from-files",
               f"--user-data-dir={Path(tmp) / 'profile'}", "--virtual-time-budget=15000", "--dump-dom",
               page.as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.insert(1, "--no-sandbox")  # Chromium refuses to start as root with its sandbox on
        for _attempt in range(3):  # a browser's first start on a busy machine can dump the page before it loads
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise UserError(f"the browser did not finish loading the report in {timeout_s:.0f} s",
                                str(html)) from None
            if "data-checked=" in out.stdout:
                break
    dom = out.stdout
    if "data-checked=" not in dom:
        tail = (out.stderr or "").strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"the browser did not load the report ({exe} exited {out.returncode}: {tail[0][:200]})",
                        str(html))
    check = RenderCheck(figures=0)
    for i, tag in enumerate(_IMG.findall(dom), 1):
        attrs = dict(_ATTR.findall(tag))
        check.figures += 1
        check.sizes.append(attrs.get("data-size", "?"))
        # A browser draws the top of a cut-off PNG and calls it decoded: read embedded ones whole too.
        if attrs.get("data-rendered") != "yes" or not _embedded_png_whole(attrs.get("src", "")):
            check.broken.append(attrs.get("alt") or f"figure {i}")
    return check


def _embedded_png_whole(src: str) -> bool:
    if not src.startswith("data:image/"):
        return True  # a linked file: the browser's verdict stands
    import base64
    import binascii
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(src.partition("base64,")[2], validate=True))) as im:
            im.load()
        return True
    except (OSError, ValueError, binascii.Error, SyntaxError):
        return False
