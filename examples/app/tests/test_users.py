from users import CachedUsers, UserRepository


def test_create_and_get(postgres_db):
    with postgres_db.connect(autocommit=True) as conn:
        repo = UserRepository(conn)
        uid = repo.create("ada", "ada@example.org")
        assert repo.get(uid) == {"id": uid, "name": "ada", "email": "ada@example.org"}
        assert repo.count() == 2  # the seed row from the template, plus ada


def test_each_test_starts_from_the_template(postgres_db):
    assert postgres_db.execute_query("SELECT name FROM users ORDER BY id") == [["seed"]]


def test_cache_reads_through_once(postgres_db, redis_client):
    with postgres_db.connect(autocommit=True) as conn:
        users = CachedUsers(UserRepository(conn), redis_client)
        uid = users.repo.create("grace", "grace@example.org")
        assert users.get(uid)["name"] == "grace"
        assert users.get(uid)["name"] == "grace"
        assert users.misses == 1
