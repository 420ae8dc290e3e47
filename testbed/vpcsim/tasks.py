"""Asynchronous tasks: an operation is applied half-way at call time (ENI
PENDING/ATTACHING/..., IPs PENDING/MIGRATING/DELETING) and finished — or
rolled back when the task fails — once its ``done_at`` has passed. The server
advances tasks at the start of every request, so no background thread is needed."""

from __future__ import annotations

import time
from collections.abc import Callable

from vpcsim.world import Eni, Task, World


def start(
    world: World,
    task_id: str,
    action: str,
    kind: str,
    enis: list[Eni],
    *,
    delay_s: float,
    fail: bool,
    instance_id: str | None = None,
    addresses: list[str] | None = None,
) -> Task:
    task = Task(
        task_id=task_id,
        action=action,
        kind=kind,
        eni_id=enis[0].eni_id,
        done_at=time.monotonic() + delay_s,
        fail=fail,
        instance_id=instance_id,
        addresses=list(addresses or []),
        dest_eni_id=enis[1].eni_id if len(enis) > 1 else None,
    )
    world.tasks[task_id] = task
    for e in enis:
        e.busy_task = task_id
    return task


MAX_TASKS = 20_000  # finished task records kept (oldest dropped first)
MAX_TOKENS = 20_000  # ClientToken replies kept


def advance(world: World, now: float | None = None) -> None:
    """Finish every RUNNING task whose time has come; bound the records kept."""
    t = time.monotonic() if now is None else now
    for task in list(world.tasks.values()):
        if task.status == "RUNNING" and task.done_at <= t:
            finish(world, task)
    if len(world.tasks) > MAX_TASKS:
        for task_id in [k for k, v in world.tasks.items() if v.status != "RUNNING"][
            : len(world.tasks) - MAX_TASKS
        ]:
            del world.tasks[task_id]
    while len(world.idempotency) > MAX_TOKENS:
        del world.idempotency[next(iter(world.idempotency))]


def finish_all(world: World) -> None:
    advance(world, float("inf"))


def _free(world: World, eni_id: str | None) -> Eni | None:
    if eni_id is None:
        return None
    eni = world.enis.get(eni_id)
    if eni is not None:
        eni.busy_task = None
    return eni


def finish(world: World, task: Task) -> None:
    eni = _free(world, task.eni_id)
    dest = _free(world, task.dest_eni_id)
    ok = not task.fail
    task.status = "SUCCESS" if ok else "FAILED"
    task.output = "" if ok else f"{task.action} task {task.task_id} failed (injected fault)"
    if eni is not None:
        _FINISH[task.kind](world, task, eni, dest, ok)


def _create(world: World, task: Task, eni: Eni, dest: Eni | None, ok: bool) -> None:
    if not ok:
        _remove_eni(world, eni)
        return
    eni.state = "AVAILABLE"
    for ip in eni.ips:
        ip.state = "AVAILABLE"


def _attach(world: World, task: Task, eni: Eni, dest: Eni | None, ok: bool) -> None:
    eni.state = "AVAILABLE"
    if not ok:
        eni.instance_id = eni.device_index = eni.attach_time = None


def _detach(world: World, task: Task, eni: Eni, dest: Eni | None, ok: bool) -> None:
    eni.state = "AVAILABLE"
    if ok:
        eni.instance_id = eni.device_index = eni.attach_time = None


def _delete(world: World, task: Task, eni: Eni, dest: Eni | None, ok: bool) -> None:
    if ok:
        _remove_eni(world, eni)
    else:
        eni.state = "AVAILABLE"


def _assign(world: World, task: Task, eni: Eni, dest: Eni | None, ok: bool) -> None:
    if not ok:
        _drop_ips(world, eni, task.addresses)
        return
    for ip in eni.ips:
        if ip.address in task.addresses:
            ip.state = "AVAILABLE"


def _unassign(world: World, task: Task, eni: Eni, dest: Eni | None, ok: bool) -> None:
    if ok:
        _drop_ips(world, eni, task.addresses)
        return
    for ip in eni.ips:
        if ip.address in task.addresses:
            ip.state = "AVAILABLE"


def _migrate(world: World, task: Task, eni: Eni, dest: Eni | None, ok: bool) -> None:
    moving = [ip for ip in eni.ips if ip.address in task.addresses]
    for ip in moving:
        ip.state = "AVAILABLE"
    if ok and dest is not None:
        eni.ips = [ip for ip in eni.ips if ip.address not in task.addresses]
        dest.ips.extend(moving)


_FINISH: dict[str, Callable[[World, Task, Eni, Eni | None, bool], None]] = {
    "create": _create,
    "attach": _attach,
    "detach": _detach,
    "delete": _delete,
    "assign": _assign,
    "unassign": _unassign,
    "migrate": _migrate,
}


def _drop_ips(world: World, eni: Eni, addresses: list[str]) -> None:
    eni.ips = [ip for ip in eni.ips if ip.address not in addresses]
    world.release(eni.subnet_id, addresses)


def _remove_eni(world: World, eni: Eni) -> None:
    world.release(eni.subnet_id, [ip.address for ip in eni.ips])
    world.enis.pop(eni.eni_id, None)
