"""Sessions: a long-lived confined sandbox (``session``) whose first process is
cleanroom-helper's agent; the engine's end of that agent (``agent``) and its framing
(``agent_frames``), files in and out (``files``), an exec's usage (``usage``)."""
