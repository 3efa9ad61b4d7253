"""`edge run` failing after the MQTT link started: one line, exit status 2, and `offline` on the broker.

A user's mistake (a damaged model file, an accelerator that is not there,
a button on a machine without GPIO) must not show a traceback, and Home
Assistant must see the door go offline rather than stay "online" forever.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from broker import Mosquitto, Observer, mosquitto_binary
from edge import demo
from edge.enrollment.dataset import build_gallery
from edge.perception.modelset import default_models_dir
from edge.perception.settings import RecognitionSettings

pytestmark = pytest.mark.slow  # a broker and edge subprocesses


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    work = tmp_path_factory.mktemp("service")
    build_gallery(demo.write_dataset(work / "people"), work / "gallery", RecognitionSettings(), workers=1)
    return work / "gallery", demo.write_frames(work / "frames", visitors=("obama3.jpg",))


@pytest.fixture
def mosquitto(tmp_path):
    with Mosquitto(mosquitto_binary(), tmp_path / "broker") as broker:
        yield broker


def damaged_models(folder):
    shutil.copytree(default_models_dir(), folder)
    embedder = folder / "sface_float16.tflite"
    data = bytearray(embedder.read_bytes())
    data[len(data) // 2] ^= 0xFF
    embedder.write_bytes(bytes(data))
    return folder


@pytest.mark.parametrize(
    "section,message",
    [
        ("[button]\npin = 17\n", "GPIO 17"),
        ("[recognition.runtime]\ndelegate = 'edgetpu'\ndelegate_required = true\n", "libedgetpu"),
        ("[recognition]\nmodels_dir = '{models}'\n", "does not match the manifest"),
    ],
    ids=["no GPIO here", "no Edge TPU here", "damaged model file"],
)
def test_a_failure_after_the_link_started_is_one_line_and_the_door_goes_offline(
    scene, mosquitto, tmp_path, section, message
):
    gallery, frames = scene
    if "{models}" in section:
        section = section.format(models=damaged_models(tmp_path / "models"))
    config = tmp_path / "edge.toml"
    config.write_text(f"[gallery]\npath = '{gallery}'\n[camera]\nsource = '{frames}'\n[door]\ndevice_id = 'front'\n"
                      f"[mqtt]\nhost = '{mosquitto.host}'\nport = {mosquitto.port}\n{section}")
    seen = Observer(mosquitto, ["edge/front/availability"])
    try:
        run = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(config), "--exit-at-end"],
                             capture_output=True, text=True, timeout=120)
        seen.wait_for("edge/front/availability", 2)
        availability = [m.payload for m in seen.on("edge/front/availability")]
    finally:
        seen.close()
    assert run.returncode == 2, run.stderr
    lines = [line for line in run.stderr.splitlines() if not line.startswith("INFO: Created TensorFlow Lite")]
    assert len(lines) == 1 and lines[0].startswith("edge: ") and message in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert availability == [b"online", b"offline"]
