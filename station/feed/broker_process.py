"""A private Mosquitto for tests and benchmarks: its own config, port, persistence and log.

Never the system broker: :class:`Mosquitto` writes a config file in its own folder,
listens on a free port of 127.0.0.1 (and optionally a TLS port), keeps its persistence
file there too, and can be stopped (SIGTERM: the broker saves its sessions and queued
messages), killed (SIGKILL) and started again on the same ports.

    with Mosquitto(tmp_path / "broker") as broker:
        ...  # broker.host, broker.port
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto")


class BrokerError(RuntimeError):
    pass


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((c for c in CANDIDATES if os.access(c, os.X_OK)), None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class BrokerTls:
    """The broker's side of TLS: its CA (to check client certificates), certificate and key."""
    cafile: Path
    certfile: Path
    keyfile: Path
    require_certificate: bool = False


class Mosquitto:
    def __init__(self, workdir: str | Path, *, binary: str | None = None, port: int | None = None,
                 allow_anonymous: bool = True, password_file: Path | None = None,
                 tls: BrokerTls | None = None, tls_port: int | None = None, extra_conf: str = ""):
        self.binary = binary or find_mosquitto()
        if self.binary is None:
            raise BrokerError("no mosquitto binary found (apt install mosquitto)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.tls = tls
        self.tls_port = (tls_port or free_port()) if tls else None
        self.conf = self.workdir / "mosquitto.conf"
        self.log_file = self.workdir / "mosquitto.log"
        (self.workdir / "persist").mkdir(exist_ok=True)
        self.conf.write_text(self._config(allow_anonymous, password_file, extra_conf))
        self.proc: subprocess.Popen | None = None

    def _config(self, allow_anonymous: bool, password_file: Path | None, extra: str) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.workdir / 'persist'}/",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
        ]
        if os.geteuid() == 0:  # mosquitto drops root for user 'mosquitto', who cannot read our files
            lines.append("user root")
        if password_file is not None:
            lines.append(f"password_file {password_file}")
        if self.tls is not None:
            lines += [
                f"listener {self.tls_port} {self.host}",
                f"cafile {self.tls.cafile}",
                f"certfile {self.tls.certfile}",
                f"keyfile {self.tls.keyfile}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
        return "\n".join(lines) + "\n" + extra + "\n"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        if self.running:
            return self
        # Its own session: a Ctrl-C at the terminal is for us, and we stop the broker last.
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        ports = [self.port] + ([self.tls_port] if self.tls_port else [])
        deadline = time.monotonic() + timeout
        while not all(port_open(self.host, p) for p in ports):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}: {err.strip()} "
                                  f"{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(f"mosquitto did not open port {self.port} in {timeout} s: {self.log_tail()}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: the broker saves its persistence (sessions, queued messages) and exits."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> "Mosquitto":
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
