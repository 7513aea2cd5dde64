"""The engine: a sandbox's life from create to audit record, at this level (``runner``,
``spec``, ``posture``, ``output``, ``results``, the warm ``pool``, services' ``launcher``),
with its parts by concern below: ``podman`` (the libpod API), ``session`` (long-lived
sandboxes and their agent), ``helper`` (the static in-sandbox helper), ``teardown``
(cleanup, ownership, removal, prune)."""
