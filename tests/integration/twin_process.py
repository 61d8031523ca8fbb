"""A twin service as its own process with the MQTT bridge on, for tests that kill it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc

from devstack.stack import free_port
from grassroots.twin.v1 import twin_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]


class TwinProcess:
    """`python -m services.twin` on a data folder; restarts keep the folder and the MQTT
    session (client id), as a restarted pod keeps its volume and name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.topic_root = f"t{uuid.uuid4().hex[:12]}"
        self.client_id = f"twin-{self.topic_root}"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = folder / "twin.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRASSROOTS_TWIN_")}
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "GRASSROOTS_TWIN_HOST": "127.0.0.1",
                "GRASSROOTS_TWIN_GRPC_PORT": str(self.port),
                "GRASSROOTS_TWIN_METRICS_PORT": "0",
                "GRASSROOTS_TWIN_DATABASE": str(self.folder / "twin.sqlite3"),
                "GRASSROOTS_TWIN_BUS_URL": str(self.folder / "twin-bus.sqlite3"),
                # No rules fire here; the events service is not needed.
                "GRASSROOTS_TWIN_EVENTS_ADDRESS": f"127.0.0.1:{free_port()}",
                "GRASSROOTS_TWIN_MQTT_ENABLED": "true",
                "GRASSROOTS_TWIN_MQTT_TOPIC_ROOT": self.topic_root,
                "GRASSROOTS_TWIN_MQTT_CLIENT_ID": self.client_id,
            }
        )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.twin"], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        self.wait_ready()

    def wait_ready(self, seconds: float = 60.0) -> None:
        """Serving gRPC, which the twin does only once the bridge's subscription holds."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            with grpc.insecure_channel(self.address) as channel:
                try:
                    grpc.channel_ready_future(channel).result(timeout=1)
                    return
                except grpc.FutureTimeoutError:
                    continue
        raise AssertionError(f"twin not ready:\n{self.log.read_text()[-3000:]}")

    def stub(self, channel: grpc.Channel) -> pb_grpc.TwinServiceStub:
        return pb_grpc.TwinServiceStub(channel)

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
