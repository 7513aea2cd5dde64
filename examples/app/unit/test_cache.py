"""Unit tests of the example app: no database, no Redis, only fakes. They run anywhere,
including in a confined sandbox with the repository mounted read-only
(`make -C examples/app test-sandboxed`)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from users import CachedUsers  # noqa: E402


class FakeRepo:
    def __init__(self, users):
        self.users = users
        self.reads = 0

    def get(self, user_id):
        self.reads += 1
        return self.users.get(user_id)


class FakeCache:
    def __init__(self):
        self.data = {}

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value, ex=None):
        self.data[key] = value


def test_a_miss_reads_through_and_fills_the_cache():
    repo, cache = FakeRepo({1: {"id": 1, "name": "ada"}}), FakeCache()
    users = CachedUsers(repo, cache)
    assert users.get(1) == {"id": 1, "name": "ada"}
    assert json.loads(cache.data["user:1"]) == {"id": 1, "name": "ada"}
    assert users.get(1)["name"] == "ada"
    assert (repo.reads, users.misses) == (1, 1)


def test_an_unknown_user_is_not_cached():
    repo, cache = FakeRepo({}), FakeCache()
    users = CachedUsers(repo, cache)
    assert users.get(7) is None and users.get(7) is None
    assert cache.data == {} and repo.reads == 2


def test_the_checkout_is_read_only_and_tmp_is_writable():
    # Inside the sandbox: the repository is a read-only mount, /tmp a small tmpfs.
    if os.environ.get("CLEANROOM_SANDBOXED") != "1":
        return
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        open(os.path.join(here, "should-not-exist"), "w").close()
        raise AssertionError("the checkout is writable")
    except OSError:
        pass
    with open("/tmp/scratch", "w") as fh:
        fh.write("ok")
