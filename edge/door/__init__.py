"""The door runtime: sources, tracking, decision, MQTT, button, enrollment."""
