"""`codeloop report --check`: a report's figures are opened in a headless Chromium, and a figure that
does not decode (or decodes only in part) is named."""

import shutil
from pathlib import Path

import pytest

from codeloop.errors import UserError
from codeloop.pipeline.report_check import BROWSERS, check_renders, find_browser

HAS_BROWSER = any(shutil.which(b) for b in BROWSERS)


def _page(tmp_path: Path) -> Path:
    from codeloop.viz import img, matplotlib_agg, save_figure

    plt = matplotlib_agg()
    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    good = img(save_figure(fig, tmp_path / "a.png"), "a curve")
    data = good.split("base64,")[1].rstrip('">')
    cut = f'<img alt="cut off" src="data:image/png;base64,{data[:len(data) // 2 // 4 * 4]}">'
    junk = '<img alt="not an image" src="data:image/png;base64,AAAA">'
    page = tmp_path / "report.html"
    page.write_text(f"<html><body><h1>run</h1>{good}{cut}{junk}</body></html>")
    return page


@pytest.mark.skipif(not HAS_BROWSER, reason="no headless Chromium here (apt install chromium)")
def test_figures_that_do_not_decode_are_named(tmp_path):
    result = check_renders(_page(tmp_path))
    assert result.figures == 3
    assert result.broken == ["cut off", "not an image"]
    assert result.sizes[0] != "0x0" and result.sizes[2] == "0x0"
    assert not result.ok


def test_without_a_browser_the_check_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.delenv("CODELOOP_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UserError) as err:
        find_browser()
    assert "apt install chromium" in err.value.message and err.value.where == "--check"
