import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SCHEMA = """
CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE NOT NULL);
INSERT INTO users (name, email) VALUES ('seed', 'seed@example.org');
"""


@pytest.fixture(scope="session")
def cleanroom_postgres_setup():
    # Runs once per test run, on the template every postgres_db is cloned from.
    return lambda conn: conn.execute(SCHEMA)
