"""The in-sandbox helper: ``cleanroom_helper.c`` (drops to a user, waits for a pooled
command, runs a session's agent), built static on first use (``build``), and how a
non-root user runs under cgroup confinement (``users``)."""
