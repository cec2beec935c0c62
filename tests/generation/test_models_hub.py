"""Hub ids that cannot be loaded fail at once, in one line that names what the user wrote."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("transformers")
huggingface_hub = pytest.importorskip("huggingface_hub")

from codeloop import models  # noqa: E402
from codeloop.errors import UserError  # noqa: E402

NAME = "someone/no-such-model"


@pytest.fixture
def online(monkeypatch):
    """As if HF_HUB_OFFLINE were unset; from_pretrained must never be reached (its retries are slow)."""
    from huggingface_hub import constants
    from transformers import AutoModelForCausalLM

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    models._hub_probe.cache_clear()

    def never(*a, **kw):
        raise AssertionError("from_pretrained was called for a model that cannot be loaded")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", never)
    yield constants
    models._hub_probe.cache_clear()


class Hub:
    """/api/models/<id> answers 404 RepoNotFound, as huggingface.co does for an unknown id."""

    def __init__(self):
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.paths.append(self.path)
                data = json.dumps({"error": "Repository not found"}).encode()
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_no_network_fails_at_once_in_one_line(online, monkeypatch):
    monkeypatch.setattr(online, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused
    with pytest.raises(UserError) as err:
        models.load_model(NAME)
    msg = err.value.message
    assert f"'{NAME}'" in msg and "cannot be reached" in msg and "\n" not in msg
    assert err.value.where == "--model"


def test_an_id_the_hub_does_not_know(online, monkeypatch):
    hub = Hub()
    try:
        monkeypatch.setattr(online, "ENDPOINT", hub.url)
        with pytest.raises(UserError) as err:
            models.load_model(NAME)
    finally:
        hub.close()
    assert f"'{NAME}'" in err.value.message and "nor a model on the Hugging Face Hub" in err.value.message
    assert len(hub.paths) == 1 and NAME in hub.paths[0]  # one question, no retries


def test_offline_names_the_model_and_the_setting(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as err:
        models.load_model(NAME)
    assert f"'{NAME}'" in err.value.message and "HF_HUB_OFFLINE" in err.value.message


def test_load_errors_name_what_the_user_wrote(tiny_model_dir, tmp_path, monkeypatch):
    broken = tmp_path / "half-model"
    broken.mkdir()
    shutil.copy(tiny_model_dir / "config.json", broken / "config.json")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as err:
        models.load_tokenizer("half-model")
    assert "'half-model'" in err.value.message and "\n" not in err.value.message
    with pytest.raises(UserError) as err:
        models.load_model("half-model")
    assert "'half-model'" in err.value.message and "\n" not in err.value.message
