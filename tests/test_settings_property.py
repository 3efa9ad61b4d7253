"""Every config that `validate-config` accepts is accepted by every component it configures.

Configs are generated from the settings models themselves (Config's JSON
schema: each key's type and bounds), so a bound added to a model is
explored without touching this test. A generated config is either refused
by validation with a ConfigError, or each component is constructed from its
section: the engine (real models), the gallery, the door loop with its
tracker and decisions, enrollment, the camera source, the MQTT link, the
button and the light (gpiozero's mock pins).
"""

from __future__ import annotations

import io
import uuid
from contextlib import ExitStack

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.adapters.camera import open_source
from edge.adapters.gpio import EnrollButton, EnrollLight
from edge.adapters.mqtt import MqttLink
from edge.adapters.stdout import StdoutPublisher
from edge.config import Config, ConfigError, validate
from edge.door.loop import DoorLoop
from edge.enrollment.at_door import DoorEnrollment
from edge.enrollment.session import EnrollmentSession
from edge.gallery.store import Gallery
from edge.perception.engine import FaceEngine
from edge.perception.litert import DelegateError
from edge.perception.liveness import LivenessChecker
from edge.perception.modelset import embedding_model_id

MockFactory = pytest.importorskip("gpiozero.pins.mock").MockFactory

SCHEMA = Config.model_json_schema()


def from_schema(schema: dict) -> st.SearchStrategy:
    """Values that fit ``schema`` (the subset of JSON schema that pydantic writes for our models)."""
    if "$ref" in schema:
        return from_schema(SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]])
    if "anyOf" in schema:
        return st.one_of([from_schema(option) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        return st.fixed_dictionaries({}, optional={k: from_schema(v) for k, v in schema["properties"].items()})
    if kind == "array":
        return st.tuples(*map(from_schema, schema["prefixItems"])).map(list)
    if kind == "number":
        low = schema.get("minimum", schema.get("exclusiveMinimum", -1e6))
        high = schema.get("maximum", schema.get("exclusiveMaximum", 1e6))
        return st.floats(low, high, exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema)
    if kind == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        return st.text("ab_-/.0", min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 12))
    raise AssertionError(f"no strategy for {schema}")


def with_environment(raw: dict, folder) -> dict:
    """Keys that name things on this machine get things that exist here (models, gallery, camera)."""
    raw.setdefault("recognition", {}).pop("models_dir", None)
    raw.setdefault("gallery", {})["path"] = str(folder / f"g-{uuid.uuid4().hex}")
    return raw


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=from_schema(SCHEMA), source=st.sampled_from(["folder", "0", "rtsp://camera.local/stream", "picamera"]))
def test_every_accepted_config_constructs_every_component(tmp_path, raw, source):
    raw = with_environment(raw, tmp_path)
    raw.setdefault("camera", {})["source"] = str(tmp_path) if source == "folder" else source
    try:
        config = validate(raw, "generated")
    except ConfigError:
        return  # refused with the reasons: nothing to construct
    recognition, door = config.recognition, config.door
    threshold = config.search.match_threshold
    with ExitStack() as stack:
        try:
            engine = stack.enter_context(FaceEngine.open(recognition))
        except DelegateError:
            # The only environment failure allowed: an accelerator this machine has not, demanded.
            assert recognition.runtime.delegate_required and recognition.runtime.delegate != "cpu"
            return
        model_id = embedding_model_id(recognition)
        gallery = stack.enter_context(Gallery.create(config.gallery.path, model_id, dtype=config.gallery.dtype))
        liveness = stack.enter_context(LivenessChecker.open(recognition)) if door.liveness else None
        loop = DoorLoop(engine, gallery, StdoutPublisher(io.StringIO()), door, threshold, camera="generated",
                        liveness=liveness)
        if config.enrollment.require_live and liveness is None:
            liveness = stack.enter_context(LivenessChecker.open(recognition))
        loop.enrollment = DoorEnrollment(engine, config.gallery.path, model_id, config.enrollment, threshold,
                                         lambda message: None, liveness=liveness)
        EnrollmentSession("someone", config.enrollment, threshold, started_at=0.0)
        open_source(config.camera)
        if config.mqtt.host is not None:
            MqttLink(config.mqtt, door.device_id, door.device_name, lambda command: None)
        pins = MockFactory()
        if config.button.pin is not None:
            stack.enter_context(EnrollButton(config.button, lambda: None, lambda: None, pin_factory=pins))
        if config.light.pin is not None:
            stack.enter_context(EnrollLight(config.light, pin_factory=pins))


def test_the_generator_reaches_valid_configs_and_refusals(tmp_path):
    """The property above is not vacuous: the generated configs include accepted and refused ones."""
    outcomes = set()

    @settings(max_examples=60, deadline=None)
    @given(raw=from_schema(SCHEMA))
    def sample(raw):
        try:
            validate(with_environment(raw, tmp_path), "generated")
            outcomes.add("accepted")
        except ConfigError:
            outcomes.add("refused")

    sample()
    assert outcomes == {"accepted", "refused"}
