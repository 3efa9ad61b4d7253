"""Settings of the door's components: tracker, decision and loop (the [door] section).

    TrackerSettings   edge.door.tracking.Tracker             [door.tracker]
    MotionSettings    edge.door.motion.MotionGate            [door.motion]
    DecisionSettings  edge.door.decision.DecisionMaker       [door.decision]
    LoopSettings      edge.door.loop.DoorLoop                [door]
"""

from __future__ import annotations

from pydantic import Field, model_validator

from edge.names import DeviceId
from edge.settings import Count, Settings
from edge.similarity import Similarity


class TrackerSettings(Settings):
    """Which face in this frame is which in the last one.

    iou: the least box overlap (intersection over union, 0..1] with a track's
    last box for a face to continue that track. gap: seconds a track may go
    unseen before it ends (the person left).

    A continued face is re-checked (matched again at once) when it changed
    abruptly: after more than ``lost_frames`` detection passes in a row
    missed it, when its size (sqrt of box area) changed by more than a
    factor ``scale_jump`` since the last sighting, or when its centre moved
    by more than ``jump`` times its size since the last sighting.
    """

    iou: float = Field(0.3, gt=0.0, le=1.0, description="box overlap that continues a track")
    gap: float = Field(2.0, ge=0.0, le=60.0, description="seconds unseen before a person counts as gone")
    lost_frames: int = Field(0, ge=0, le=1000, description="missed detections after which a face is re-checked")
    scale_jump: float = Field(1.3, gt=1.0, le=10.0, description="size change between sightings that re-checks a face")
    jump: float = Field(0.5, gt=0.0, le=10.0, description="centre shift, in face sizes, that re-checks a face")


class MotionSettings(Settings):
    """Where a frame is searched for faces (edge.door.motion).

    Frames are compared at ``width`` pixels wide, in grey: a frame has
    motion when more than ``min_area`` (fraction 0..1 of the image) of its
    pixels differ from the previous frame's by more than ``threshold`` grey
    levels (0..255). Without motion and with nobody tracked, a frame is not
    searched, except once every ``full_every`` seconds. While someone is
    tracked, ``near_tracks`` searches only around the tracked faces (each
    box grown by ``margin`` times its size on every side), and the whole
    frame when something moves outside them or ``full_every`` seconds have
    passed. ``enabled = false`` searches every frame whole.
    """

    enabled: bool = Field(True, description="skip the face search on still frames of an empty doorway")
    near_tracks: bool = Field(True, description="while someone is tracked, search only around them unless "
                                                "something moves elsewhere")
    margin: float = Field(1.0, ge=0.25, le=10.0, description="face sizes added around a tracked face's box")
    width: int = Field(80, ge=16, le=640, description="pixels: the width frames are compared at")
    threshold: float = Field(12.0, ge=0.0, le=255.0, description="grey levels a pixel must change by")
    min_area: float = Field(0.003, ge=0.0, le=1.0, description="fraction of pixels that must change")
    full_every: float = Field(2.0, gt=0.0, le=60.0, description="seconds: search at least this often anyway")


class DecisionSettings(Settings):
    """When a track's attempts become a 'recognized' or 'unknown' event.

    Similarities are cosine similarities (-1..1). An attempt counts for the
    person it names when it is a match (edge.similarity.is_match with the
    [recognition] match_threshold), and as a stranger below
    ``unknown_threshold`` (at most the match threshold; in between it counts
    for nobody, but a full window without a match is a stranger too).

    window: recent usable attempts per track considered. min_agreeing:
    attempts in the window naming one person to announce them. min_unknown:
    attempts below unknown_threshold to announce a stranger. cooldown:
    seconds before the same person is announced again, on any track.
    min_face_size: pixels (sqrt of box area); smaller faces are not used for
    decisions (a door camera sees a visitor's face large). min_sharpness:
    variance of the Laplacian of the aligned crop; 0 turns the check off.

    Once a track is announced its face is still matched now and then (see
    LoopSettings.recheck). An attempt disagrees with a recognized person when
    its similarity to them is below ``unknown_threshold``, or when another
    enrolled person is a match and more similar than them by at least
    ``split_margin``; with a track announced unknown, when it is a match for
    someone. After ``split_after`` disagreeing attempts in a row the track is
    split: the announced person has left, and the face gets a new track and
    a decision of its own.

    require_live: a person is recognized only when their face looked live
    (edge.perception.liveness): of the attempts naming them, at least
    ``min_live`` live and more live than not; as many not live make a
    'spoof' event instead. Off: recognized either way, and the event says
    whether they looked live.
    """

    unknown_threshold: Similarity = Field(0.30, description="similarity below which an attempt counts as a stranger")
    window: Count = Field(5, ge=1, le=50, description="recent attempts per person considered")
    min_agreeing: Count = Field(3, ge=1, le=50, description="attempts naming one person to announce them")
    min_unknown: Count = Field(4, ge=1, le=50, description="attempts below unknown_threshold to announce a stranger")
    cooldown: float = Field(60.0, ge=0.0, le=86400.0, description="seconds before the same person is announced again")
    min_face_size: float = Field(60.0, ge=0.0, le=2000.0, description="pixels; smaller faces are not used")
    min_sharpness: float = Field(0.0, ge=0.0, le=1e6, description="variance of the Laplacian; 0 = off")
    split_after: Count = Field(2, ge=1, le=50, description="disagreeing attempts in a row that split a track")
    split_margin: float = Field(0.1, ge=0.0, le=2.0, description="how much more similar someone else must be")
    require_live: bool = Field(True, description="recognize only faces that look live; others are a 'spoof'")
    min_live: Count = Field(2, ge=1, le=50, description="attempts that must look live (or not) to decide")

    @model_validator(mode="after")
    def _counts_fit_window(self) -> DecisionSettings:
        for name in ("min_agreeing", "min_unknown", "min_live"):
            if getattr(self, name) > self.window:
                raise ValueError(f"{name} ({getattr(self, name)}) must not exceed window ({self.window})")
        return self

    def check_against(self, match_threshold: float) -> None:
        """Raise ValueError unless unknown_threshold is at most ``match_threshold``."""
        if self.unknown_threshold > match_threshold:
            raise ValueError(
                f"unknown_threshold ({self.unknown_threshold}) must not exceed match_threshold ({match_threshold})"
            )


class LoopSettings(Settings):
    """The door loop: who it is, how often it looks and matches.

    device_id names the door in events, MQTT topics and Home Assistant;
    device_name is the name Home Assistant shows (default: device_id).
    detect_every: search for faces in every n-th frame. attempts_per_second:
    most gallery matches per track per second of frame time. recheck:
    seconds between matches of a track already announced (recognized or
    unknown), to notice that someone else has taken its place; a face that
    changed abruptly (TrackerSettings) is matched at once, and a track in
    doubt at the full rate. liveness: score each matched face for liveness
    ([recognition.liveness]); needed by ``decision.require_live``.
    """

    device_id: DeviceId = Field("door", description="names the door in topics and in Home Assistant")
    device_name: str | None = Field(None, min_length=1, max_length=100, description="the name Home Assistant shows")
    detect_every: int = Field(1, ge=1, le=30, description="search for faces in every n-th frame")
    attempts_per_second: float = Field(10.0, gt=0.0, le=60.0, description="most gallery matches per person per second")
    recheck: float = Field(1.0, ge=0.0, le=60.0, description="seconds between matches of a face already announced")
    liveness: bool = Field(True, description="score each matched face: live, or a photo or a screen")
    tracker: TrackerSettings = TrackerSettings()
    motion: MotionSettings = MotionSettings()
    decision: DecisionSettings = DecisionSettings()

    @model_validator(mode="after")
    def _live_needs_scores(self) -> LoopSettings:
        if self.decision.require_live and not self.liveness:
            raise ValueError("decision.require_live needs liveness = true (or set require_live = false)")
        return self
