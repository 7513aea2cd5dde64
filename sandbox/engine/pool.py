"""A warm pool (``[cleanroom.pool]``): sandboxes made ahead, each used once.

A member is made exactly like a cold sandbox (the runner's create: init → posture
check → confine, then attach and start), but its first program is cleanroom-helper
``-R``, static and mounted read-only, waiting on stdin. ``take`` hands a run one
whose creation options equal the run's (image, limits, network, mounts, workdir,
user; the command, its environment and stdin may differ); the runner sends the
command down its stdin and the helper ``exec``s it, so the command is the sandbox's
first and only program, already confined. After its command the member is removed
like any sandbox, in the background, and never reused. A background thread keeps
``size`` members per set of options that has been asked for (or named in
``images``), never on a caller's path and only while the environment's container
budget has room for one more besides.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import msgspec
from loguru import logger

from sandbox.engine.helper.build import HELPER_TARGET
from sandbox.engine.helper.users import helper_mount, keep_switch_caps, program_of
from sandbox.engine.podman.api import HeldAttach, ImageConfig
from sandbox.engine.runner import SandboxRunner
from sandbox.engine.teardown.ownership import LABEL_POOL
from sandbox.engine.teardown.removal import Made
from sandbox.engine.types import CreateRequest
from sandbox.errors import CleanroomError

_REFILL_PAUSE = 0.05  # after a failed fill or a full budget, before trying again


class Member(msgspec.Struct, kw_only=True):
    """A started sandbox waiting in the helper for its command."""

    made: Made
    stream: HeldAttach
    image: ImageConfig
    generation: int  # the engine's restart count when it was made (its stream dies with the service)

    def program(self, request: CreateRequest) -> list[str]:
        """What the image would run for ``request``, as a cold run would."""
        return program_of(self.image, request)


def pool_key(request: CreateRequest) -> str:
    """The options a member is made with: what two runs must share to use the same member."""
    fixed = msgspec.structs.replace(request, name="", labels={}, command=None, env={}, stdin=False)
    return hashlib.sha256(msgspec.json.encode(fixed)).hexdigest()[:16]


class SandboxPool:
    def __init__(self, runner: SandboxRunner, size: int, *, room: Callable[[], bool] = lambda: True,
                 prepare: Callable[[str], None] = lambda image: None) -> None:
        self._runner = runner
        self.size = size
        self._room = room  # True while the container budget has room for a member and one more
        self._prepare = prepare  # makes sure an image is in local storage (pulls it if allowed)
        self._cond = threading.Condition()
        self._idle: dict[str, list[Member]] = {}
        self._wanted: dict[str, CreateRequest] = {}
        self._closed = False
        self.made = 0  # members created so far (for tests and the bench)
        self._thread = threading.Thread(target=self._fill_loop, name="cleanroom-pool", daemon=True)
        self._thread.start()

    # -- callers -----------------------------------------------------------------------
    def want(self, request: CreateRequest) -> None:
        """Keep members for runs like ``request`` from now on (``images`` at open)."""
        if self._eligible(request):
            with self._cond:
                self._wanted.setdefault(pool_key(request), request)
                self._cond.notify_all()

    def take(self, request: CreateRequest) -> Member | None:
        """A waiting member made for runs like ``request`` (then a refill starts), or None:
        the run goes cold, and members for its options are made from now on."""
        if not self._eligible(request):
            return None
        key = pool_key(request)
        while True:
            with self._cond:
                if self._closed:
                    return None
                self._wanted.setdefault(key, request)
                members = self._idle.get(key) or []
                member = members.pop(0) if members else None
                self._cond.notify_all()
            if member is None or self._usable(member):
                break
        if member is not None and member.program(request):
            self._runner.audit("pool.taken", "Medium", sandbox=member.made.handle.name)
            return member
        if member is not None:  # nothing to run: the cold path gives Podman's own error
            self._runner.dispose_later(member.made, member.stream)
        return None

    def _usable(self, member: Member) -> bool:
        """Still waiting: not killed meanwhile, nor made before the service was restarted.
        One that is not goes (in the background) and the next is tried."""
        if member.generation == self._runner.api.restarts and member.stream.waiting():
            return True
        logger.warning("pool member gone while it waited", sandbox=member.made.handle.name)
        self._runner.audit("pool.member_lost", "Minimal", sandbox=member.made.handle.name)
        self._runner.dispose_later(member.made, member.stream)
        return False

    def idle(self) -> int:
        with self._cond:
            return sum(len(m) for m in self._idle.values())

    def close(self, timeout: float = 30.0) -> None:
        """Stop filling and remove every waiting member (the runner's drain waits for used ones)."""
        with self._cond:
            self._closed = True
            waiting = [m for members in self._idle.values() for m in members]
            self._idle.clear()
            self._cond.notify_all()
        self._thread.join(timeout)
        for member in waiting:
            self._remove(member)

    # -- the background side -------------------------------------------------------------
    def _eligible(self, request: CreateRequest) -> bool:
        return self.size > 0 and request.kind == "sandbox" and request.entrypoint is None

    def _next(self) -> tuple[str, CreateRequest] | None:
        """Options short of members, or None once closed; waits while all are full."""
        with self._cond:
            while not self._closed:
                for key, request in self._wanted.items():
                    if len(self._idle.get(key, [])) < self.size:
                        return key, request
                self._cond.wait()
        return None

    def _fill_loop(self) -> None:
        while (job := self._next()) is not None:
            key, template = job
            if not self._room():
                with self._cond:
                    self._cond.wait(_REFILL_PAUSE)  # a removal frees a place soon
                continue
            member: Member | None
            try:
                member = self._make(key, template)
            except Exception as exc:  # never let the filling thread die quietly
                # The options cannot be pooled (e.g. the image is gone): stop trying; the
                # cold path reports the real error to the caller.
                logger.warning("pool fill failed", image=template.image, error=str(exc))
                self._runner.audit("pool.fill_failed", "Minimal", image=template.image, error=str(exc))
                with self._cond:
                    self._wanted.pop(key, None)
                continue
            with self._cond:
                if not self._closed:
                    self._idle.setdefault(key, []).append(member)
                    member = None
            if member is not None:
                self._remove(member)

    def _make(self, key: str, template: CreateRequest) -> Member:
        runner = self._runner
        self._prepare(template.image)
        image = runner.api.image_config(template.image)
        base = runner.request(template.image, kind="sandbox", labels={LABEL_POOL: key})
        flags = ["-k"] if keep_switch_caps(runner.config) else []
        request = msgspec.structs.replace(
            template, name=base.name, labels=base.labels, entrypoint=[HELPER_TARGET], command=["-R", *flags],
            env={}, stdin=True, system_mounts=[*template.system_mounts, helper_mount()])
        generation = runner.api.restarts
        made = runner.create(request, observed=False)
        try:
            stream = runner.api.attach_held(made.handle.id)
            try:
                runner.api.start_container(made.handle.id, timeout=runner.startup_timeout)
            except BaseException:
                stream.close()
                raise
        except BaseException:
            runner.dispose(made, observed=False)
            raise
        self.made += 1
        return Member(made=made, stream=stream, image=image, generation=generation)

    def _remove(self, member: Member) -> None:
        try:
            self._runner.dispose(member.made, observed=False)  # made unobserved: never a run of its own
            self._runner.audit("sandbox.removed", "Minimal", sandbox=member.made.handle.name, pooled=True)
        except CleanroomError as exc:
            logger.warning("pool member removal failed", sandbox=member.made.handle.name, error=str(exc))
        finally:
            member.stream.close()
            with self._cond:
                self._cond.notify_all()  # a place in the budget may be free again

