"""The MQTT bridge: field devices publish telemetry to the broker, the twin ingests it.

Devices publish JSON to `grassroots/<tenant id>/<entity id>/telemetry` at QoS 1 with a
device key in the payload; the bridge checks topic, size, shape and key, hands the
readings to the twin's ingest and acknowledges each message only once its readings
are committed, so a crash loses nothing the broker accepted (ADR 19).
"""
