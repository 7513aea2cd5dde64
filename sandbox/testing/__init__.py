"""Testing: the pytest plugin (fixtures, markers, report), per-test execution and time
limits, snapshots, sharding and coverage from inside sandboxes."""
