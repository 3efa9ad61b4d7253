"""The config file: validated strictly, secrets from the environment."""

from __future__ import annotations

import pytest

from edge.config import Config, ConfigError, load_config


def write(tmp_path, text):
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file():
    assert load_config(None) == Config()


def test_reads_values(tmp_path):
    text = "[recognition]\nmodel_set = 'int8'\n[recognition.runtime]\nnum_threads = 4\n[recognition.embedder]\nflip_average = true\n"
    config = load_config(write(tmp_path, text))
    assert config.recognition.model_set == "int8"
    assert config.recognition.runtime.num_threads == 4
    assert config.recognition.embedder.flip_average is True


@pytest.mark.parametrize(
    "text,message",
    [
        ("[recognition.runtime]\nnum_thread = 2\n", "recognition.runtime.num_thread: unknown key"),
        ("[recognition.runtime]\nnum_threads = 0\n", "recognition.runtime.num_threads: .*greater than or equal to 1"),
        ("[search]\nmatch_threshold = 1.5\n", "search.match_threshold: .*less than or equal to 1"),
        ("[search]\nmatch_threshold = -0.2\n", "search.match_threshold: .*greater than or equal to 0"),
        ("[recognition]\nmodel_set = 'float64'\n", "recognition.model_set"),
        ("[recognition.runtime]\ndelegate = 'tpu'\n", "recognition.runtime.delegate"),
        ("[recognition.runtime]\ndelegate = 'gpu'\n", "needs gpu_delegate_library"),
        ("[recognition.detector]\nthresholds = [0.6, 0.7, 7]\n", "less than or equal to 1"),
        ("[recognition\n", "not valid TOML"),
        ("[webcam]\n", "webcam: unknown key"),
        ("[door.decision]\nunknown_threshold = 0.5\n", "must not exceed match_threshold"),
        ("[mqtt]\nhost = 'b'\npassword = 'hunter2'\n", "a password needs a username"),
    ],
)
def test_bad_config_is_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_environment_substitution(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_TEST_LIB", "/opt/libgpu.so")
    config = load_config(write(tmp_path, "[recognition.runtime]\ngpu_delegate_library = '${EDGE_TEST_LIB}'\n"))
    assert config.recognition.runtime.gpu_delegate_library == "/opt/libgpu.so"
    monkeypatch.delenv("EDGE_TEST_LIB")
    with pytest.raises(ConfigError, match="EDGE_TEST_LIB is not set"):
        load_config(write(tmp_path, "[recognition.runtime]\ngpu_delegate_library = '${EDGE_TEST_LIB}'\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.toml")


def test_the_shipped_example_config_is_valid(monkeypatch):
    monkeypatch.setenv("EDGE_MQTT_PASSWORD", "from-the-environment")
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "firmware_config" / "edge.example.toml"
    config = load_config(example)
    assert config.recognition.runtime.num_threads == 4
    assert config.mqtt.password == "from-the-environment" and config.door.device_id == "front_door"


def test_a_secret_in_a_bad_value_is_not_echoed(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[mqtt]\nhost = 'b'\nusername = 'u'\npassword = ['hunter2']\n"))
    assert "mqtt.password" in str(caught.value) and "hunter2" not in str(caught.value)


def test_button_and_light_need_their_own_pins(tmp_path):
    with pytest.raises(ConfigError, match="both GPIO 17"):
        load_config(write(tmp_path, "[button]\npin = 17\n[light]\npin = 17\n"))


def test_a_config_nested_too_deeply_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(write(tmp_path, "x = " + "[" * 5000 + "]" * 5000 + "\n"))
