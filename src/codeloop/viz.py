"""Small HTML + matplotlib helpers shared by the eval page and the run report.

Pages are self-contained: plots are PNG files next to the page *and* embedded as data URIs, so a
page copied elsewhere still shows its images.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Iterable, Sequence

from codeloop.records import atomic_write_text

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
     padding:0 1em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.93em}
th,td{padding:.3em .8em;text-align:right;border-bottom:1px solid #e5e5e5}
th{border-bottom:2px solid #333;font-weight:600} td:first-child,th:first-child{text-align:left}
table.paper{border-top:2px solid #333;border-bottom:2px solid #333}
.good{color:#137333;font-weight:600} .bad{color:#b3261e;font-weight:600}
img{max-width:100%;border:1px solid #eee;margin:.4em 0}
pre{background:#f6f8fa;padding:.7em;overflow-x:auto;font-size:.85em;border-radius:4px}
details{margin:.4em 0} summary{cursor:pointer}
.tag{display:inline-block;padding:0 .5em;border-radius:3px;font-size:.85em}
.tag.passed{background:#e6f4ea;color:#137333} .tag.failed,.tag.error{background:#fce8e6;color:#b3261e}
.tag.timeout,.tag.memory,.tag.killed{background:#fef7e0;color:#8a6100}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return esc(x)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "paper") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if isinstance(c, Raw) else fmt(c)}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


class Raw(str):
    """A string already in HTML (not escaped by `table`)."""


def save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG (atomically) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}">'


def code_block(code: str, title: str | None = None, status: str | None = None) -> str:
    tag = f' <span class="tag {esc(status)}">{esc(status)}</span>' if status else ""
    head = f"<summary>{esc(title or '')}{tag}</summary>" if title else ""
    return f"<details>{head}<pre><code>{esc(code)}</code></pre></details>"


def page(title: str, subtitle: str, sections: list[str]) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{esc(title)}</h1><p class='sub'>{esc(subtitle)}</p>"
            + "\n".join(sections) + "</body></html>")


def write_page(path: Path, title: str, subtitle: str, sections: list[str]) -> Path:
    atomic_write_text(path, page(title, subtitle, sections))
    return path


def matplotlib_agg() -> Any:
    """Import pyplot with the non-interactive backend (no display here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
