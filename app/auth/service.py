"""Accounts: registration, login, tokens (JWT), revocation and password changes."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import jwt
import msgspec
from redis.asyncio import Redis

from app.auth.passwords import hash_password, verify_password
from app.auth.tables import RevokedToken, User
from app.lib.cache import FAILED, Cache, Failed
from app.lib.db import postgres_pool
from app.lib.errors import AppError
from app.lib.settings import Settings

T = TypeVar("T")
USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,30}")
PASSWORD_LENGTH = (8, 1024)
BAD_LOGIN = "wrong username or password"
REGISTRATION_CLOSED = "registration is closed on this instance: ask an admin of this instance for an account"
TOKEN_MEMORY_SECONDS = 2.0
TOKEN_MEMORY_ENTRIES = 10_000  # the same words for an unknown user and a wrong password


class AuthError(AppError):
    status_code = 400

    def __init__(self, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, headers=headers)
        self.field = field


class BadCredentials(AuthError):
    status_code = 401


class Conflict(AuthError):
    status_code = 409


class RegistrationClosed(AuthError):
    status_code = 403


class UserOut(msgspec.Struct):
    """What `GET /users/me` answers (scripts rely on these names)."""

    id: int
    username: str
    is_admin: bool
    created_at: datetime


class TokenOut(msgspec.Struct):
    access_token: str
    token_type: str
    user: UserOut
    expires_in: int


class Credentials(msgspec.Struct, forbid_unknown_fields=False):
    username: str
    password: str


class PasswordChange(msgspec.Struct):
    current_password: str
    new_password: str


@dataclass(frozen=True)
class Claims:
    user_id: int
    jti: str
    version: int
    expires_at: int


def user_out(row: dict) -> UserOut:
    return UserOut(id=row["id"], username=row["username"], is_admin=row["is_admin"], created_at=row["created_at"])


def check_username(username: str) -> str:
    if not USERNAME.fullmatch(username):
        raise AuthError("username: use 3 to 30 letters, digits, '_', '.' or '-'", "username")
    return username


def check_password(password: str, field: str = "password") -> str:
    low, high = PASSWORD_LENGTH
    if not low <= len(password) <= high:
        raise AuthError(f"{field.replace('_', ' ')}: use {low} to {high} characters", field)
    if "\x00" in password:
        raise AuthError(f"{field.replace('_', ' ')}: must not contain a NUL character", field)
    return password


# the user a token names, and whether that token was logged out (one round trip for both)
_USER_AND_REVOCATION = (
    "SELECT id, username, is_admin, is_active, created_at, token_version, must_change_password, "
    "EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = {jti}) AS revoked FROM users WHERE id = {id}"
)
_USER_COLUMNS = (
    User.id,
    User.username,
    User.is_admin,
    User.is_active,
    User.created_at,
    User.token_version,
    User.must_change_password,
)


class Accounts:
    """Everything about users and tokens; one per process (it holds the login rate limiter)."""

    def __init__(self, settings: Settings, cache: Cache) -> None:
        self.settings = settings
        self.cache = cache
        self.limiter = LoginLimiter(cache)
        self._recent: dict[str, tuple[float, tuple[dict, Claims]]] = {}
        self._checking: dict[str, asyncio.Future[tuple[dict, Claims] | None]] = {}

    # -- tokens --------------------------------------------------------------------------

    def issue(self, user: dict) -> tuple[str, int]:
        now = int(time.time())
        lifetime = self.settings.jwt_expiry_minutes * 60
        claims = {
            "sub": str(user["id"]),
            "ver": user["token_version"],
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + lifetime,
        }
        return jwt.encode(claims, self.settings.secret_key, algorithm=self.settings.jwt_algorithm), lifetime

    def decode(self, token: str) -> Claims | None:
        try:
            data = jwt.decode(
                token,
                self.settings.secret_key,
                algorithms=[self.settings.jwt_algorithm],  # never "none", never another family
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
            return Claims(
                user_id=int(data["sub"]),
                jti=str(data["jti"]),
                version=int(data.get("ver", 0)),
                expires_at=int(data["exp"]),
            )
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            return None

    async def user_for_token(self, token: str) -> tuple[dict, Claims] | None:
        """The active user a valid, unrevoked token names.

        A positive answer is kept in this process for TOKEN_MEMORY_SECONDS, so a busy client
        costs no database or Redis read per request; when it runs out, the client's concurrent
        requests share one check. Logout and password changes drop it here at once; in other
        web processes a revoked token works for at most that long.
        """
        remembered = self._recent.get(token)
        if remembered is not None and remembered[0] > time.monotonic():
            return remembered[1]
        checking = self._checking.get(token)
        if checking is None:
            checking = self._checking[token] = asyncio.ensure_future(self._check_and_remember(token))
            checking.add_done_callback(lambda _: self._checking.pop(token, None))
        return await asyncio.shield(checking)  # a client that goes away does not cancel the others' check

    async def _check_and_remember(self, token: str) -> tuple[dict, Claims] | None:
        found = await self._check(token)
        if found is not None:
            if len(self._recent) >= TOKEN_MEMORY_ENTRIES:
                self._recent.clear()
            now = time.monotonic()
            until = min(now + TOKEN_MEMORY_SECONDS, now + found[1].expires_at - time.time())
            self._recent[token] = (until, found)
        return found

    def forget_user(self, user_id: int) -> None:
        """Check this user's tokens again on their next request (an admin changed the account)."""
        self._forget(user_id=user_id)

    def _forget(self, *, jti: str | None = None, user_id: int | None = None) -> None:
        for token, (_, (user, claims)) in list(self._recent.items()):
            if claims.jti == jti or user["id"] == user_id:
                self._recent.pop(token, None)

    async def _check(self, token: str) -> tuple[dict, Claims] | None:
        claims = self.decode(token)
        if claims is None:
            return None
        pool = postgres_pool()
        if pool is not None:
            async with pool.acquire(timeout=5) as connection:
                sql = _USER_AND_REVOCATION.format(jti="$1", id="$2")
                row = await connection.fetchrow(sql, claims.jti, claims.user_id)
            user = dict(row) if row else None
        else:
            rows = await User.raw(_USER_AND_REVOCATION.format(jti="{}", id="{}"), claims.jti, claims.user_id).run()
            user = rows[0] if rows else None
        if user is None or user.pop("revoked") or not user["is_active"] or user["token_version"] != claims.version:
            return None
        return user, claims

    async def revoke(self, claims: Claims) -> None:
        """Log a token out for good: recorded in the database (an error if it cannot be), so it
        stays out after a Redis restart; rows of tokens that have expired are dropped on the way."""
        self._forget(jti=claims.jti)
        now = datetime.now(UTC)
        expires = datetime.fromtimestamp(claims.expires_at, UTC)
        await RevokedToken.delete().where(RevokedToken.expires_at < now).run()
        revoked = RevokedToken(jti=claims.jti, expires_at=expires)
        await RevokedToken.insert(revoked).on_conflict(action="DO NOTHING").run()

    # -- accounts ------------------------------------------------------------------------

    async def register(self, username: str, password: str, *, admin: bool = False) -> dict:
        check_username(username)
        check_password(password)
        first = not await User.exists().run()
        if not (admin or first or self.settings.registration_open):
            raise RegistrationClosed(REGISTRATION_CLOSED)
        # hashed before the name is looked up, so a taken name costs the same time as a free one
        # (the 409 still tells that a name exists: the residual risk, documented in the README)
        password_hash = await hash_password(password)
        if await find_user_id(username) is not None:
            raise Conflict("username: this name is taken, choose another", "username")
        user = User(username=username, password_hash=password_hash, is_admin=admin or first)
        await user.save().run()
        return await _user(user.id)

    async def registration_open(self) -> bool:
        """Whether /register takes a new account: the setting, or no account yet (the first is the admin)."""
        return self.settings.registration_open or not await User.exists().run()

    async def authenticate(self, username: str, password: str, client: str) -> dict:
        """The user, or BadCredentials (same message, same cost, whether the name exists or not)."""
        delay = await self.limiter.check(client, username)
        if delay:
            await asyncio.sleep(delay)
        row = None
        if USERNAME.fullmatch(username) and len(password) <= PASSWORD_LENGTH[1]:
            found = await find_user_id(username)
            if found is not None:
                row = await User.select(*_USER_COLUMNS, User.password_hash).where(User.id == found).first().run()
        ok = await verify_password(row["password_hash"] if row else None, password[: PASSWORD_LENGTH[1]])
        if not ok or row is None or not row["is_active"]:
            await self.limiter.failed(client, username)
            raise BadCredentials(BAD_LOGIN)
        await self.limiter.succeeded(client, username)
        row.pop("password_hash")
        await self.record_login(row["id"])
        return row

    async def record_login(self, user_id: int) -> None:
        """The Users page's "last login" (a login, or a sign-up or invite that signs the browser in)."""
        await User.update({User.last_login_at: datetime.now(UTC)}).where(User.id == user_id).run()

    async def change_password(self, user: dict, current: str, new: str) -> dict:
        check_password(new, "new_password")
        row = await User.select(User.password_hash).where(User.id == user["id"]).first().run()
        if row is None or not await verify_password(row["password_hash"], current):
            raise BadCredentials("current password: it is not right", "current_password")
        new_hash = await hash_password(new)
        await (
            User.update(
                {
                    User.password_hash: new_hash,
                    User.token_version: User.token_version + 1,
                    User.must_change_password: False,
                }
            )
            .where(User.id == user["id"])
            .run()
        )
        self._forget(user_id=user["id"])
        return await _user(user["id"])


async def find_user_id(username: str) -> int | None:
    """The id of the user with this name in any case (names are ASCII, so lower() is exact)."""
    rows = await User.raw("SELECT id FROM users WHERE lower(username) = lower({})", username).run()
    return rows[0]["id"] if rows else None


async def _user(user_id: int) -> dict:
    """The user just written (so it exists)."""
    found = await User.select(*_USER_COLUMNS).where(User.id == user_id).first().run()
    if found is None:  # pragma: no cover - deleted between the write and this read
        raise AuthError("this account no longer exists", headers=None)
    return found


class RateLimited(AuthError):
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many login attempts: try again in {retry_after} s", headers={"retry-after": str(retry_after)}
        )
        self.retry_after = retry_after


class LoginLimiter:
    """Failed logins in a sliding window (5 minutes), counted three ways:

    - per client address (20): past it, that address gets 429 for any name;
    - per username and client address (5): past it, that address gets 429 for that name;
    - per username from anywhere (5): past it, every attempt on that name waits before its
      password is checked (0.5 s, doubling with each failure, at most 8 s) but is never
      refused, so failures from other addresses cannot lock the owner out.

    A successful login clears its name's counts. With Redis the windows are sorted sets
    shared by every web process, so a limit holds however many workers or replicas serve
    the login; each process also keeps its own window, which alone applies while Redis is
    down (behind the cache's breaker). The client address is the connection's peer, never
    X-Forwarded-For (see FORWARDED_ALLOW_IPS).
    """

    def __init__(
        self,
        cache: Cache | None = None,
        per_client: int = 20,
        per_user: int = 5,
        window: float = 300.0,
        max_delay: float = 8.0,
    ):
        self.cache = cache
        self.limits = {"client": per_client, "pair": per_user, "user": per_user}
        self.window = window
        self.max_delay = max_delay
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _keys(self, client: str, username: str) -> tuple[tuple[str, str], ...]:
        name = username.casefold()
        return (("client", client), ("pair", f"{name}|{client}"), ("user", name))

    def _local(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    async def _shared(self, operation: Callable[[Redis], Awaitable[T]]) -> T | Failed:
        """`operation` on Redis through the cache's breaker; FAILED without Redis or while it is down."""
        cache = self.cache
        if cache is None or cache.client is None:
            return FAILED
        client = cache.client
        return await cache.call(lambda: operation(client))

    @staticmethod
    def _redis_key(key: tuple[str, str]) -> str:
        return f"shop:login-failures:{key[0]}:{key[1]}"

    async def check(self, client: str, username: str) -> float:
        """RateLimited for a blocked address; else the seconds this attempt must wait (0 mostly)."""
        now = time.time()
        oldest = {key: list(self._local(key, now)) for key in self._keys(client, username)}

        async def read(redis: Redis) -> list:
            async with redis.pipeline(transaction=False) as pipe:
                for key in oldest:
                    pipe.zremrangebyscore(self._redis_key(key), 0, now - self.window)
                    pipe.zrange(self._redis_key(key), 0, -1, withscores=True)
                return await pipe.execute()

        answers = await self._shared(read)
        if answers is not FAILED:
            for key, entries in zip(oldest, answers[1::2], strict=True):
                shared = sorted(score for _, score in entries)
                if len(shared) > len(oldest[key]):
                    oldest[key] = shared
        delay = 0.0
        for key, failures in oldest.items():
            over = len(failures) - self.limits[key[0]]
            if over < 0:
                continue
            if key[0] == "user":  # slowed, never locked: the owner still gets in
                delay = min(0.5 * 2**over, self.max_delay)
            else:
                raise RateLimited(int(failures[over] + self.window - now) + 1)
        return delay

    async def failed(self, client: str, username: str) -> None:
        now = time.time()
        for key in self._keys(client, username):
            self._local(key, now).append(now)
        if len(self._failures) > 100_000:  # bounded: forget the oldest keys
            for stale in list(self._failures)[:50_000]:
                del self._failures[stale]

        async def record(redis: Redis) -> None:
            async with redis.pipeline(transaction=False) as pipe:
                for key in self._keys(client, username):
                    pipe.zadd(self._redis_key(key), {f"{now}:{secrets.token_hex(4)}": now})
                    pipe.expire(self._redis_key(key), int(self.window) + 1)
                await pipe.execute()

        await self._shared(record)

    async def succeeded(self, client: str, username: str) -> None:
        cleared = self._keys(client, username)[1:]  # the name's counts, not the address's
        for key in cleared:
            self._failures.pop(key, None)
        await self._shared(lambda redis: redis.delete(*(self._redis_key(key) for key in cleared)))
