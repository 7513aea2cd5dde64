"""A tiny example app: users in PostgreSQL, a read-through cache in Redis."""

from __future__ import annotations

import json


class UserRepository:
    def __init__(self, conn) -> None:
        self.conn = conn

    def create(self, name: str, email: str) -> int:
        row = self.conn.execute("INSERT INTO users (name, email) VALUES (%s, %s) RETURNING id", (name, email))
        return row.fetchone()[0]

    def get(self, user_id: int) -> dict | None:
        row = self.conn.execute("SELECT id, name, email FROM users WHERE id = %s", (user_id,)).fetchone()
        return {"id": row[0], "name": row[1], "email": row[2]} if row else None

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM users").fetchone()[0]


class CachedUsers:
    def __init__(self, repo: UserRepository, cache) -> None:
        self.repo, self.cache = repo, cache
        self.misses = 0

    def get(self, user_id: int) -> dict | None:
        hit = self.cache.get(f"user:{user_id}")
        if hit is not None:
            return json.loads(hit)
        self.misses += 1
        user = self.repo.get(user_id)
        if user is not None:
            self.cache.set(f"user:{user_id}", json.dumps(user), ex=60)
        return user
