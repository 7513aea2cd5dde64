# cleanroom: two commands do everything on a fresh machine: `make demo`, `make test`.
# Run as root, they set up the host (packages, the cleanroom user, cgroup delegation,
# the Podman API service, images) and then run as that unprivileged user.
SHELL := /bin/bash
AS_USER := bash scripts/as-cleanroom.sh
PYTEST := python -m pytest -p no:cacheprovider
PYTEST_ARGS ?=

.PHONY: setup images demo test unit bench lint clean prune doctor

setup:
	@if [ "$$(id -u)" -eq 0 ]; then bash scripts/setup-host.sh; else echo "not root: assuming rootless Podman is set up"; fi

images: setup
	bash scripts/build-images.sh

demo:
	$(AS_USER) bash scripts/demo.sh

test:
	$(AS_USER) $(PYTEST) tests/unit tests/integration tests/security $(PYTEST_ARGS)

unit:
	$(AS_USER) $(PYTEST) tests/unit $(PYTEST_ARGS)

bench:
	$(AS_USER) $(PYTEST) tests/performance -s -o python_files="bench_*.py" $(PYTEST_ARGS)

doctor:
	$(AS_USER) cleanroom doctor

prune:
	$(AS_USER) cleanroom prune

lint:
	$(AS_USER) python -m ruff check --no-cache sandbox tests
	$(AS_USER) python -m mypy --cache-dir=/tmp/cleanroom-mypy-cache

clean:
	-$(AS_USER) cleanroom prune
	rm -rf build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
