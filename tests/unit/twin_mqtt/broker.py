"""A device's side of the real Mosquitto on 127.0.0.1:1883, for the bridge's tests."""

from __future__ import annotations

import queue
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

HOST = "127.0.0.1"
PORT = 1883


class Device:
    """Publishes at QoS 1 (returning once the broker acknowledged) and hears replies."""

    def __init__(self) -> None:
        self.heard: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex}")
        self.client.on_message = lambda _c, _u, m: self.heard.put((m.topic, m.payload))
        self.client.connect(HOST, PORT)
        self.client.loop_start()

    def listen(self, topic_filter: str) -> None:
        result, _mid = self.client.subscribe(topic_filter, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> None:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)
        assert info.is_published()

    def next_heard(self, timeout: float = 10.0) -> tuple[str, bytes]:
        return self.heard.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
