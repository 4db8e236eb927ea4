#!/usr/bin/env python3
"""A stand-in for replica-worker in WorkerPoolTests: speaks the worker protocol by hand and misbehaves on request.

Usage: fake-worker.py MODE
       fake-worker.py @FILE   each start takes the first line of FILE as its mode; the last line stays for good

Modes:
  ok             runs tasks: one progress line, then a result whose data echoes the inputs (an input `sleep`
                 in seconds delays it) and lists the descriptors above 2 that this process inherited
  crash-midway   on a task: progress, then exit 3 (or SIGKILL itself when the input `crash` is "signal")
  answer-then-exit  on a task: the result, then exit 3 at once
  hang           after welcome, writes nothing at all (no heartbeats) and ignores its input
  garbage        on a task: prints a line that is not JSON
  other-task     on a task: reports progress about a different task
  split          like ok, but writes every line in several write(2) calls with pauses between them
  wrong-version  says hello with protocol 2; expects reject naming both versions, then exits 78
  spawn-child    on a task: starts `sleep 1000` in the worker's own process group, writes the child's pid to
                 the input `pidFile`, then works as slowly as the input `sleep` says
  stdout-flood   on a task: writes an endless line to stdout (64 KiB writes, never a newline) until the pipe
                 breaks, the flood of a worker gone mad
  memory-hog     on a task: progress, then fills the input `megabytes` (default 512) of memory page by page;
                 answers a result if it is still alive, which under a cgroup's memory limit it is not
  stderr-flood   like ok, but first writes FAKE_WORKER_STDERR_BYTES (default 64 KiB) of numbered lines to
                 stderr, then "stderr flood done"
  silent         never says hello
  exit-early     exits with status 3 before saying hello

Heartbeats come every FAKE_WORKER_HEARTBEAT seconds (default 0.2). Tasks run on a thread of their own while the
main thread reads the gateway's lines, so `shutdown` and the end of stdin end the process at once, as in the real
worker.

Knobs for the modes that run tasks to a result (ok, split, stderr-flood), read from the environment, which the
gateway's workers inherit; the gateway's end-to-end tests set them:
  FAKE_WORKER_TASK_SECONDS  each task takes this long, reporting progress 0.25, 0.5 and 0.75 on the way
                            (default 0: one progress line, 0.5)
  FAKE_WORKER_RUN_LOG       a file: each task appends `<taskId> <inputs.image> <pid>` when it starts and
                            `end <taskId> <pid>` just before its answer, each line in one O_APPEND write, so the
                            lines of several workers never mix
  FAKE_WORKER_CHILD=1       each task first starts `sleep 1000` in the worker's process group and appends
                            `child <pid>` to the run log; the task stops it when it ends
  FAKE_WORKER_FAIL_IMAGES   comma-separated image names: a task for one of them answers a failure that is not
                            retryable and names the image, as the real worker does for a file that is not a photo
  FAKE_WORKER_EXPORT_FROM   a folder holding model.glb and model.usdz: an export task copies them into
                            work/export/, as the real one writes them, so the gateway publishes a model
Results list no outputs: but for that copy, the fake writes no files under work/.

The worker says it runs every kind of the real pipeline, so that a job the gateway plans runs to its end. The
knobs shape Pre-Processing tasks (what the end-to-end tests are about); in the knob modes, the later stages'
tasks (features, retrieve, match, map, depth, fuse, mesh, texture, export) are answered at once and leave no trace in the run log.
"""

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time

LATER_STAGES = {"features", "retrieve", "match", "map", "depth", "fuse", "mesh", "texture", "export"}
MODES_WITH_TASKS = {"ok", "crash-midway", "answer-then-exit", "garbage", "other-task", "split", "spawn-child",
                    "stderr-flood", "stdout-flood", "memory-hog"}
KNOB_MODES = {"ok", "split", "stderr-flood"}
write_lock = threading.Lock()
current_task = None


def choose_mode(argument):
    if not argument.startswith("@"):
        return argument
    with open(argument[1:], "r+") as queue:
        fcntl.flock(queue, fcntl.LOCK_EX)
        modes = [line.strip() for line in queue if line.strip()]
        if len(modes) > 1:
            queue.seek(0)
            queue.truncate()
            queue.write("\n".join(modes[1:]) + "\n")
        return modes[0]


def log(text):
    sys.stderr.write("fake-worker %d: %s\n" % (os.getpid(), text))
    sys.stderr.flush()


def send(message, split=False):
    line = (json.dumps(message, sort_keys=True, separators=(",", ":")) + "\n").encode()
    with write_lock:
        if not split:
            os.write(1, line)
            return
        third = max(1, len(line) // 3)
        for start in range(0, len(line), third):
            os.write(1, line[start:start + third])
            time.sleep(0.03)


def read_message():
    line = sys.stdin.buffer.readline()
    if not line:
        log("input ended")
        os._exit(0)
    return json.loads(line)


def heartbeats(interval, split):
    sequence = 0
    while True:
        time.sleep(interval)
        send({"type": "heartbeat", "sequence": sequence, "taskId": current_task}, split)
        sequence += 1


def inherited_descriptors():
    found = []
    for name in os.listdir("/proc/self/fd"):
        if int(name) <= 2:
            continue
        try:
            found.append(os.readlink("/proc/self/fd/" + name))
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return found


def handshake(mode):
    version = 2 if mode == "wrong-version" else 1
    send({"type": "hello", "protocol": version, "workerVersion": "%d.0" % version, "pid": os.getpid(),
          "capabilities": ["preprocess", "features", "retrieve", "match", "map", "depth", "fuse", "mesh",
                           "texture", "export", "fake-echo"]})
    answer = read_message()
    if mode == "wrong-version":
        reason = answer.get("reason", "")
        if answer.get("type") == "reject" and "protocol 2" in reason and "speaks 1" in reason:
            log("rejected as expected: " + reason)
            sys.exit(78)
        log("expected a reject naming both versions, got %r" % answer)
        sys.exit(1)
    if answer != {"type": "welcome", "protocol": 1}:
        log("expected welcome, got %r" % answer)
        sys.exit(76)


def append_to_run_log(text):
    path = os.environ.get("FAKE_WORKER_RUN_LOG")
    if not path:
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (text + "\n").encode())
    finally:
        os.close(descriptor)


def failing_images():
    names = os.environ.get("FAKE_WORKER_FAIL_IMAGES", "")
    return {name.strip() for name in names.split(",") if name.strip()}


def work_slowly(task_id, split):
    """Sleeps FAKE_WORKER_TASK_SECONDS in quarters, reporting progress after each of the first three."""
    seconds = float(os.environ.get("FAKE_WORKER_TASK_SECONDS", "0"))
    if seconds <= 0:
        send({"type": "progress", "taskId": task_id, "fraction": 0.5, "message": "halfway"}, split)
        return
    for fraction in (0.25, 0.5, 0.75):
        time.sleep(seconds / 4)
        send({"type": "progress", "taskId": task_id, "fraction": fraction}, split)
    time.sleep(seconds / 4)


def answer(message, split):
    """Sends the task's last line; its end goes to the run log first, so the log never shows a task running
    after the gateway could know it ended."""
    global current_task
    append_to_run_log("end %s %d" % (message["taskId"], os.getpid()))
    send(message, split)
    current_task = None


def run_task(mode, task, split):
    global current_task
    task_id, inputs = task["taskId"], task["inputs"]
    current_task = task_id
    if mode in KNOB_MODES:
        run_knobbed_task(task, split)
        return
    if mode == "garbage":
        with write_lock:
            os.write(1, b"this is not JSON\n")
        return
    if mode == "stdout-flood":
        with write_lock:
            block = b"x" * 65536
            while True:
                os.write(1, block)
    if mode == "other-task":
        send({"type": "progress", "taskId": task_id + "-other", "fraction": 0.5})
        return
    send({"type": "progress", "taskId": task_id, "fraction": 0.5, "message": "halfway"}, split)
    if mode == "memory-hog":
        hoard = bytearray(int(inputs.get("megabytes", 512)) << 20)
        for page in range(0, len(hoard), 4096):
            hoard[page] = 1
    if mode == "crash-midway":
        time.sleep(0.05)
        if inputs.get("crash") == "signal":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    if mode == "spawn-child":
        child = subprocess.Popen(["sleep", "1000"])
        with open(inputs["pidFile"] + ".partial", "w") as pid_file:
            pid_file.write(str(child.pid))
        os.rename(inputs["pidFile"] + ".partial", inputs["pidFile"])
    time.sleep(float(inputs.get("sleep", 0)))
    data = {"echo": inputs, "attempt": task["attempt"], "pid": os.getpid(), "descriptors": inherited_descriptors()}
    send({"type": "result", "taskId": task_id, "outputs": [], "data": data}, split)
    current_task = None
    if mode == "answer-then-exit":
        os._exit(3)


def run_knobbed_task(task, split):
    """A task of a well-behaved mode, shaped by the FAKE_WORKER_* knobs."""
    task_id, inputs = task["taskId"], task["inputs"]
    if task["kind"] == "export" and os.environ.get("FAKE_WORKER_EXPORT_FROM"):
        source = os.environ["FAKE_WORKER_EXPORT_FROM"]
        target = os.path.join(task["workDirectory"], "export")
        os.makedirs(target, exist_ok=True)
        for name in ("model.glb", "model.usdz"):
            with open(os.path.join(source, name), "rb") as original:
                data = original.read()
            with open(os.path.join(target, name + ".tmp"), "wb") as copy:
                copy.write(data)
            os.rename(os.path.join(target, name + ".tmp"), os.path.join(target, name))
    if task["kind"] in LATER_STAGES:
        send({"type": "result", "taskId": task_id, "outputs": [], "data": {"attempt": task["attempt"]}}, split)
        return
    image = inputs.get("image", "-")
    append_to_run_log("%s %s %d" % (task_id, image, os.getpid()))
    child = None
    if os.environ.get("FAKE_WORKER_CHILD") == "1":
        child = subprocess.Popen(["sleep", "1000"])
        append_to_run_log("child %d" % child.pid)
    try:
        if image in failing_images():
            answer({"type": "failure", "taskId": task_id, "image": image, "retryable": False,
                    "message": "%s is not a photo" % image}, split)
            return
        work_slowly(task_id, split)
        time.sleep(float(inputs.get("sleep", 0)))
        data = {"echo": inputs, "attempt": task["attempt"], "pid": os.getpid(),
                "descriptors": inherited_descriptors()}
        answer({"type": "result", "taskId": task_id, "outputs": [], "data": data}, split)
    finally:
        if child is not None:
            child.kill()
            child.wait()


def main():
    mode = choose_mode(sys.argv[1])
    log("mode " + mode)
    if mode == "exit-early":
        sys.exit(3)
    if mode == "silent":
        time.sleep(1000)
    if mode == "stderr-flood":
        total = int(os.environ.get("FAKE_WORKER_STDERR_BYTES", 64 << 10))
        written, number = 0, 0
        while written < total:
            line = "stderr line %06d of the flood\n" % number
            sys.stderr.write(line)
            written += len(line)
            number += 1
        sys.stderr.write("stderr flood done\n")
        sys.stderr.flush()
    handshake(mode)
    if mode == "hang":
        log("hanging")
        time.sleep(1000)
    split = mode == "split"
    interval = float(os.environ.get("FAKE_WORKER_HEARTBEAT", "0.2"))
    threading.Thread(target=heartbeats, args=(interval, split), daemon=True).start()
    while True:
        message = read_message()
        if message["type"] == "shutdown":
            log("shutting down")
            os._exit(0)
        if message["type"] == "task" and mode in MODES_WITH_TASKS:
            threading.Thread(target=run_task, args=(mode, message, split), daemon=True).start()


if __name__ == "__main__":
    main()
