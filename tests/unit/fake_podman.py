"""An in-memory PodmanAPI for unit tests of the engine (the seam httpx's MockTransport
plays for its client): no Podman, every call logged, any call made to fail."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from sandbox.engine.podman.api import ContainerInfo, ContainerState, ContainerSummary, ImageConfig, NetworkSummary
from sandbox.engine.podman.frames import STDERR, STDOUT, Frame
from sandbox.engine.posture import Posture, read_seccomp_profile, seccomp_summary
from sandbox.engine.session import agent_frames as af
from sandbox.errors import ContainerError, ContainerNotFound

# What a container "runs": its command → (output frames, exit code). None as the
# frames means it runs until killed.
Program = Callable[[list[str] | None], tuple[list[Frame] | None, int]]


def echo_program(command: list[str] | None) -> tuple[list[Frame] | None, int]:
    return [(STDOUT, " ".join(command or []).encode() + b"\n")], 0


class _Container:
    def __init__(self, cid: str, spec: dict[str, Any]) -> None:
        self.id = cid
        self.spec = spec
        self.status = "created"
        self.pid = 0
        self.exit_code: int | None = None
        self.killed = threading.Event()
        self.frames: list[Frame] | None = None


def _faithful(spec: dict[str, Any]) -> Posture:
    """What Podman sets up for a container made from ``spec`` when it does as asked."""
    default, denied = seccomp_summary(read_seccomp_profile(spec.get("seccomp_profile_path")))
    return Posture(seccomp_default=default, seccomp_denied=denied,read_only_root=bool(spec.get("read_only_filesystem")),
                   no_new_privileges=bool(spec.get("no_new_privileges")),
                   network_mode=(spec.get("netns") or {}).get("nsmode", ""),
                   writable_mounts=sorted(m["destination"] for m in spec.get("mounts") or []
                                          if "ro" not in m.get("options", [])))


class _Stream:
    def __init__(self, fake: FakePodman, c: _Container) -> None:
        self._fake = fake
        self._c = c
        self.closed = False

    def __iter__(self) -> Iterator[Frame]:
        self._fake.started_events[self._c.id].wait(5)
        if self._c.frames is None:  # runs until killed
            self._c.killed.wait(10)
            self._c.status, self._c.exit_code = "exited", 137
            return
        yield from self._c.frames
        self._c.status = "exited"

    def close(self) -> None:
        self.closed = True


def decode_request(data: bytes) -> list[str]:
    """The argv of a cleanroom-helper -R request (what the helper itself would exec)."""
    assert data[:4] == b"CRR1", data[:8]
    fields = data[8:8 + int.from_bytes(data[4:8], "big")].split(b"\0")[:-1]
    count = int(fields[0])
    return [f.decode() for f in fields[1:1 + count]]


class _HeldStream(_Stream):
    """An attach whose stdin waits for ``feed``: the container runs the program of the
    command sent down it (a warm pool member's helper execs that command)."""

    def __init__(self, fake: FakePodman, c: _Container) -> None:
        super().__init__(fake, c)
        self.fed = threading.Event()
        self.argv: list[str] | None = None

    def waiting(self) -> bool:
        return not self.fed.is_set() and not self._c.killed.is_set()

    def feed(self, stdin: Any, *, prefix: bytes = b"") -> None:
        self._fake.stdin_fed[self._c.id] = stdin if isinstance(stdin, bytes) else stdin.read()
        self.argv = decode_request(prefix)
        self._c.frames, code = self._fake.program(self.argv)
        if self._c.frames is not None:
            self._c.exit_code = code
        self.fed.set()

    def __iter__(self) -> Iterator[Frame]:
        self.fed.wait(10)
        return super().__iter__()


class _AgentChannel:
    """A session's attach channel with cleanroom-helper -A played in Python: each EXEC
    runs ``fake.program`` on its argv; its frames come back as the agent's STDOUT/STDERR
    replies, cut into Podman frames of ``fake.agent_piece`` bytes (to prove reassembly).
    A program whose frames are None runs until a KILL (status 137), unless
    ``fake.agent_deaf`` (then nothing answers: the engine's fallback is to kill the
    sandbox, which ends the channel)."""

    def __init__(self, fake: FakePodman, c: _Container) -> None:
        self._fake = fake
        self._c = c
        self._decoder = af.Decoder()
        self._out: list[bytes] = []
        self._cond = threading.Condition()
        self.closed = False
        self.sent: list[af.Reply] = []  # every request, in order

    def _answer(self, data: bytes) -> None:
        with self._cond:
            self._out.append(data)
            self._cond.notify_all()

    def send(self, data: bytes) -> None:
        if self.closed or self._c.killed.is_set():
            raise ContainerError("writing to the sandbox's stdin failed: the container is gone")
        for req in self._decoder.feed(data):
            self.sent.append(req)
            self._handle(req)

    def _handle(self, req: af.Reply) -> None:
        fake = self._fake
        if req.kind == af.EXEC:
            fields = req.payload.split(b"\0")[:-1]
            flags, user, workdir, count = (f.decode() for f in fields[:4])
            argv = [f.decode() for f in fields[4:4 + int(count)]]
            env = dict(f.decode().split("=", 1) for f in fields[4 + int(count):])
            fake.execs[f"e{req.exec_id}"] = {"cid": self._c.id, "command": argv, "env": env, "workdir": workdir,
                                              "user": user, "flags": flags, "stdin": b"", "id": req.exec_id}
            frames, code = fake.program(argv)
            if frames is None:
                return  # runs until killed
            for stream, payload in frames:
                self._answer(af.reply(af.STDERR if stream == STDERR else af.STDOUT, req.exec_id, payload))
            if "i" not in flags:
                self._answer(af.reply(af.EXIT, req.exec_id, number=code))
            else:
                fake.execs[f"e{req.exec_id}"]["exit_code"] = code
        elif req.kind == af.STDIN:
            e = fake.execs[f"e{req.exec_id}"]
            e["stdin"] += req.payload
            self._answer(af.reply(af.ACK, req.exec_id, number=len(req.payload)))
        elif req.kind == af.STDIN_END:
            e = fake.execs[f"e{req.exec_id}"]
            if "exit_code" in e:  # it read all its stdin, then exited
                self._answer(af.reply(af.EXIT, req.exec_id, number=e["exit_code"]))
        elif req.kind == af.KILL and not fake.agent_deaf:
            self._answer(af.reply(af.EXIT, req.exec_id, number=137))

    def __iter__(self) -> Iterator[Frame]:
        self._fake.started_events[self._c.id].wait(5)
        self._answer(af.reply(af.READY, 0, b"fake agent"))
        piece = self._fake.agent_piece
        while True:
            with self._cond:
                while not self._out and not self.closed and not self._c.killed.is_set():
                    self._cond.wait(0.05)
                if not self._out:
                    return
                data = b"".join(self._out)
                self._out.clear()
            for i in range(0, len(data), piece):
                yield STDOUT, data[i:i + piece]

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class FakePodman:
    url = "fake://podman"
    restarts = 0

    def __init__(self, program: Program = echo_program, log: list[str] | None = None) -> None:
        self.program = program
        self.log = log if log is not None else []  # shared with fake confiners: one order of events
        self.fail: dict[str, BaseException] = {}  # method name → error it raises (once per call)
        self.containers: dict[str, _Container] = {}
        self.removed: list[str] = []
        self.networks: dict[str, dict[str, str]] = {}
        self.started_events: dict[str, threading.Event] = {}
        self.sizes: dict[str, int] = {}  # container layer bytes, as container_size reports them
        self.images: dict[str, ImageConfig] = {}  # reference → what image_config answers (default: root, sh)
        self.missing_images: set[str] = set()  # references image_exists denies
        self.pull_events: list[dict[str, Any]] = []  # what pull_image reports, in order
        self.pulled_digest = ""
        self.build_output: list[str] = []
        self.built: dict[str, dict[str, Any]] = {}
        self.execs: dict[str, dict[str, Any]] = {}  # a session agent's commands, by exec id
        self.archives: dict[tuple[str, str], bytes] = {}  # (container, path) → tar (get_archive serves it back)
        self.stdin_fed: dict[str, bytes] = {}  # container id → what attach fed its stdin
        self.channels: dict[str, _AgentChannel] = {}  # container id → its session agent's channel
        self.agent_piece = 1 << 16  # Podman frame size the fake agent's replies are cut into
        self.agent_deaf = False  # the fake agent ignores KILL requests
        self.posture_override: Posture | None = None  # what inspect reports instead of the faithful posture
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _call(self, name: str, *detail: Any) -> None:
        self.log.append(name)
        error = self.fail.get(name)
        if error is not None:
            raise error

    def _get(self, cid: str) -> _Container:
        try:
            return self.containers[cid]
        except KeyError:
            # Podman takes a name wherever it takes an id.
            named = [c for c in self.containers.values() if c.spec.get("name") == cid]
            if named:
                return named[0]
            raise ContainerNotFound(f"no container with id {cid}") from None

    def ping(self) -> bool:
        return True

    def info(self) -> dict[str, Any]:
        return {"version": {"Version": "fake"}}

    def image_exists(self, reference: str) -> bool:
        return reference not in self.missing_images

    def image_config(self, reference: str) -> ImageConfig:
        if reference in self.missing_images and reference not in self.images:
            raise ContainerNotFound(f"no such image {reference}")
        return self.images.get(reference, ImageConfig(id="sha256:fake", cmd=["/bin/sh"]))

    def create_container(self, spec: dict[str, Any], *, timeout: float) -> str:
        self._call("create")
        with self._lock:
            cid = f"c{next(self._ids)}"
            self.containers[cid] = _Container(cid, spec)
            self.started_events[cid] = threading.Event()
        return cid

    def init_container(self, cid: str, *, timeout: float) -> None:
        self._call("init")
        c = self._get(cid)
        c.status, c.pid = "initialized", 4000 + int(cid[1:])

    def attach(self, cid: str, *, stdin: Any = None) -> _Stream:
        self._call("attach")
        if stdin is not None:
            self.stdin_fed[cid] = stdin if isinstance(stdin, bytes) else stdin.read()
        return _Stream(self, self._get(cid))

    def attach_held(self, cid: str) -> _HeldStream:
        self._call("attach_held")
        return _HeldStream(self, self._get(cid))

    def attach_channel(self, cid: str) -> _AgentChannel:
        self._call("attach_channel")
        channel = self.channels[cid] = _AgentChannel(self, self._get(cid))
        return channel

    def start_container(self, cid: str, *, timeout: float) -> None:
        self._call("start")
        c = self._get(cid)
        if cid in self.channels:  # a session's agent: runs until killed, answers on its channel
            c.status, c.frames = "running", None
            self.started_events[cid].set()
            return
        c.frames, code = self.program(c.spec.get("command"))
        c.status = "running"
        if c.frames is not None:
            c.exit_code = code
        self.started_events[cid].set()

    def inspect_container(self, cid: str, *, posture: bool = False) -> ContainerInfo:
        c = self._get(cid)
        return ContainerInfo(id=c.id, name=c.spec.get("name", c.id), labels=dict(c.spec.get("labels") or {}),
                             state=ContainerState(status=c.status, running=c.status == "running", pid=c.pid,
                                                  exit_code=c.exit_code),
                             posture=(self.posture_override or _faithful(c.spec)) if posture else None)

    def container_size(self, cid: str) -> int:
        return self.sizes.get(cid, 0)

    def kill_container(self, cid: str, signal: str = "SIGKILL") -> None:
        self._call("kill")
        self._get(cid).killed.set()

    def remove_container(self, cid: str) -> None:
        self._call("remove")
        with self._lock:
            c = self.containers.pop(cid, None)
        if c is not None:
            c.killed.set()
            self.started_events[cid].set()
            self.removed.append(cid)

    def container_logs(self, cid: str, *, tail: int | None = None) -> list[Frame]:
        return list(self._get(cid).frames or [])

    def exec_run(self, cid: str, command: list[str], *, env: dict[str, str] | None = None,
                 timeout: float | None = None) -> tuple[int, list[Frame]]:
        self._call("exec")
        self._get(cid)
        frames, code = self.program(command)
        return code, frames or []

    def pull_image(self, reference: str, *, tls_verify: bool, on_event: Callable[[dict[str, Any]], None]) -> None:
        self._call("pull", reference)
        for event in self.pull_events:
            on_event(event)
        self.images.setdefault(reference, ImageConfig(id="sha256:pulled", digest=self.pulled_digest))

    def build_image(self, context: bytes, *, containerfile: str, tag: str, network: str | None,
                    on_line: Callable[[str], None]) -> None:
        self._call("build", tag)
        self.built[tag] = {"context": context, "containerfile": containerfile, "network": network}
        for line in self.build_output:
            on_line(line)
        self.images[tag] = ImageConfig(id="sha256:built")

    def remove_image(self, reference: str, *, force: bool = False) -> None:
        self.images.pop(reference, None)

    # -- sessions: archives are kept as given ------------------------------------------------
    def put_archive(self, cid: str, path: str, data: bytes) -> None:
        self._call("put_archive")
        self.archives[(cid, path)] = data

    def get_archive(self, cid: str, path: str, *, max_bytes: int) -> bytes:
        self._call("get_archive")
        data = self.archives.get((cid, path), b"")
        if len(data) > max_bytes:
            raise ContainerError(f"copying {path} out stopped at {max_bytes} bytes (max_copy_out_bytes)")
        return data

    def list_containers(self, *, labels: list[str]) -> list[ContainerSummary]:
        want = dict(label.split("=", 1) for label in labels)
        return [ContainerSummary(id=c.id, name=c.spec.get("name", c.id), state=c.status,
                                 labels=dict(c.spec.get("labels") or {}))
                for c in self.containers.values()
                if all((c.spec.get("labels") or {}).get(k) == v for k, v in want.items())]

    def create_network(self, name: str, *, labels: dict[str, str], exist_ok: bool = False) -> None:
        self._call("network_create")
        self.networks.setdefault(name, dict(labels))

    def connect_network(self, name: str, cid: str, aliases: list[str]) -> None:
        self._call("network_connect")

    def disconnect_network(self, name: str, cid: str) -> None:
        self._call("network_disconnect")

    def remove_network(self, name: str, *, force: bool = False) -> None:
        self._call("network_remove")
        self.networks.pop(name, None)

    def list_networks(self, *, labels: list[str]) -> list[NetworkSummary]:
        return [NetworkSummary(name=n, labels=lab) for n, lab in self.networks.items()]

    def close(self) -> None:
        pass
