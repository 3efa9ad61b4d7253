"""Model files and delegates: a wrong file or a missing accelerator is caught clearly."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from edge.perception.detect import MtcnnDetector
from edge.perception.embed import Embedder
from edge.perception.modelset import MODEL_SETS, default_models_dir, model_files
from edge.perception.litert import DelegateError, ModelError, TfliteModel
from edge.perception.settings import DetectorSettings, EmbedderSettings, RecognitionSettings, RuntimeSettings

MODELS = default_models_dir()


@pytest.mark.parametrize("model_set", sorted(MODEL_SETS))
def test_every_model_set_is_listed_and_matches_its_manifest(model_set):
    files = model_files(MODELS, model_set)
    for path in (files.pnet, files.rnet, files.onet, files.embed):
        assert path.is_file()


def test_damaged_model_file_is_refused(tmp_path):
    shutil.copytree(MODELS, tmp_path / "models", ignore=shutil.ignore_patterns("*.py"))
    target = tmp_path / "models" / "sface_float32.tflite"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match the manifest"):
        model_files(tmp_path / "models", "float32")


def test_missing_manifest_and_unknown_set(tmp_path):
    with pytest.raises(ModelError, match="no model manifest"):
        model_files(tmp_path, "float32")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a valid model manifest"):
        model_files(tmp_path, "float32")
    (tmp_path / "manifest.json").write_text(json.dumps({"models": {}}))
    with pytest.raises(ModelError, match="not listed"):
        model_files(tmp_path, "float32")
    with pytest.raises(ModelError, match="unknown model set"):
        model_files(MODELS, "float64")


def test_a_non_model_file_is_refused(tmp_path):
    bogus = tmp_path / "bogus.tflite"
    bogus.write_bytes(b"this is not a flatbuffer" * 10)
    with pytest.raises(ModelError, match="not a usable TFLite model"):
        TfliteModel(bogus, RuntimeSettings())
    with pytest.raises(ModelError, match="not found"):
        TfliteModel(tmp_path / "absent.tflite", RuntimeSettings())


def test_models_in_the_wrong_role_are_refused():
    files = model_files(MODELS, "float32")
    options = RuntimeSettings(num_threads=1)
    embedder_model = TfliteModel(files.embed, options)
    pnet = TfliteModel(files.pnet, options)
    with pytest.raises(ModelError, match="not an MTCNN R-Net"):
        MtcnnDetector(pnet, embedder_model, TfliteModel(files.onet, options), DetectorSettings())
    with pytest.raises(ModelError, match="face embedder"):
        Embedder(TfliteModel(files.rnet, options), EmbedderSettings())


def test_missing_delegate_falls_back_to_cpu_with_one_log_line(caplog):
    files = model_files(MODELS, "float32")
    with caplog.at_level(logging.WARNING):
        model = TfliteModel(files.rnet, RuntimeSettings(delegate="edgetpu"))
    assert not model.delegated
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "running on the CPU" in warnings[0].getMessage()


def test_required_delegate_that_cannot_load_fails():
    files = model_files(MODELS, "float32")
    with pytest.raises(DelegateError, match="libedgetpu"):
        TfliteModel(files.rnet, RuntimeSettings(delegate="edgetpu", delegate_required=True))
    with pytest.raises(DelegateError, match="/nonexistent/libgpu.so"):
        TfliteModel(files.rnet, RuntimeSettings(delegate="gpu", delegate_required=True,
                                                gpu_delegate_library="/nonexistent/libgpu.so"))
    with pytest.raises(ValueError, match="gpu_delegate_library"):
        RuntimeSettings(delegate="gpu")
    with pytest.raises(ValueError, match="delegate"):
        RuntimeSettings(delegate="npu")


def test_edgetpu_build_is_preferred_when_present(tmp_path):
    from edge.perception.litert import resolve_model_file

    plain = tmp_path / "sface_int8.tflite"
    compiled = tmp_path / "sface_int8_edgetpu.tflite"
    plain.write_bytes(b"x")
    assert resolve_model_file(plain, RuntimeSettings(delegate="edgetpu")) == plain
    compiled.write_bytes(b"x")
    assert resolve_model_file(plain, RuntimeSettings(delegate="edgetpu")) == compiled
    assert resolve_model_file(plain, RuntimeSettings(delegate="cpu")) == plain


def test_the_settings_name_every_model_set_and_no_other():
    from typing import get_args

    assert set(get_args(RecognitionSettings.model_fields["model_set"].annotation)) == set(MODEL_SETS)
