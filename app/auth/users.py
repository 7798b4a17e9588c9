"""User management by admins: list, create (one-time password or invite link), deactivate and
reactivate, make or revoke admin, reset a password; and the invitee's side of an invite.

Rules kept here, whatever the caller (page, JSON or a future CLI):
- an instance never has zero active admins: revoking or deactivating the last one is refused,
  under a lock, so two admins revoking each other at once cannot both succeed;
- deactivating and resetting a password bump the user's token version, so their tokens are
  refused; every web process checks the user's tokens again at once (this one directly, the
  others through PostgreSQL NOTIFY; embedded there is one process), and a revoked admin's
  next request is no longer an admin's;
- one-time passwords and invite links are shown once, to the admin who made them; the
  database keeps the password's argon2 hash and the invite's SHA-256, never either in clear.

Every change is logged as "who did what to whom" (never a password or a link).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import TransactionType

from app.auth.passwords import hash_password
from app.auth.service import AuthError, Conflict, check_password, check_username, find_user_id
from app.auth.tables import User

logger = logging.getLogger(__name__)

INVITE_DAYS = 7
ONE_TIME_PASSWORD_BYTES = 12  # 16 characters of URL-safe base64
INVITE_TOKEN_BYTES = 32


class NotFound(AuthError):
    status_code = 404


class LastAdmin(AuthError):
    status_code = 409


class UserRow(msgspec.Struct):
    """One account as `GET /users` lists it (scripts rely on these names)."""

    id: int
    username: str
    is_admin: bool
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None
    must_change_password: bool  # an admin's one-time password is still the password
    invited: bool  # an invite link is pending (not used yet, not expired)


class NewUser(msgspec.Struct, forbid_unknown_fields=False):
    """`POST /users`: the name, whether admin, and how the person gets in."""

    username: str
    is_admin: bool = False
    method: Literal["password", "invite"] = "password"


class Created(msgspec.Struct):
    """The answer of a create or a reset: the secret is shown here once, never again."""

    user: UserRow
    one_time_password: str | None = None
    invite_path: str | None = None  # append to the instance's address
    invite_expires_at: datetime | None = None


_COLUMNS = (
    User.id,
    User.username,
    User.is_admin,
    User.is_active,
    User.created_at,
    User.last_login_at,
    User.must_change_password,
    User.invite_hash,
    User.invite_expires_at,
)


def _row(found: dict) -> UserRow:
    expires = found["invite_expires_at"]
    invited = found["invite_hash"] is not None and expires is not None and _aware(expires) > datetime.now(UTC)
    return UserRow(
        id=found["id"],
        username=found["username"],
        is_admin=bool(found["is_admin"]),
        is_active=bool(found["is_active"]),
        created_at=found["created_at"],
        last_login_at=found["last_login_at"],
        must_change_password=bool(found["must_change_password"]),
        invited=invited,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def invite_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def list_users() -> list[UserRow]:
    rows = await User.select(*_COLUMNS).order_by(User.username).run()
    return [_row(found) for found in rows]


async def get_user(user_id: int) -> UserRow:
    found = await User.select(*_COLUMNS).where(User.id == user_id).first().run()
    if found is None:
        raise NotFound(f"there is no user {user_id}")
    return _row(found)


async def create_user(actor: dict, new: NewUser) -> Created:
    check_username(new.username)
    if await find_user_id(new.username) is not None:
        raise Conflict("username: this name is taken, choose another", "username")
    password, token = _secrets(new.method)
    user = User(
        username=new.username,
        password_hash=await hash_password(password),
        is_admin=new.is_admin,
        must_change_password=new.method == "password",
        **_invite_columns(token),
    )
    await user.save().run()
    logger.info(
        "users: %s created %s (%s, %s)",
        actor["username"],
        new.username,
        "admin" if new.is_admin else "not admin",
        "one-time password" if new.method == "password" else "invite link",
    )
    return await _created(user.id, new.method, password, token)


async def reset_password(actor: dict, user_id: int, method: Literal["password", "invite"] = "password") -> Created:
    """A new one-time password (or invite link) for the user; their tokens stop working."""
    target = await get_user(user_id)
    password, token = _secrets(method)
    await (
        User.update(
            {
                User.password_hash: await hash_password(password),
                User.must_change_password: method == "password",
                User.token_version: User.token_version + 1,
                **_invite_columns(token, by_column=True),
            }
        )
        .where(User.id == user_id)
        .run()
    )
    await _forget(user_id)
    logger.info("users: %s reset the password of %s (%s)", actor["username"], target.username, method)
    return await _created(user_id, method, password, token)


async def set_active(actor: dict, user_id: int, active: bool) -> UserRow:
    target = await get_user(user_id)
    if not active and target.id == actor["id"]:
        raise LastAdmin("you cannot deactivate yourself: ask another admin")
    async with _writing():
        if not active and target.is_admin:
            await _keep_an_admin(target)
        changes: dict = {User.is_active: active}
        if not active:  # its tokens stay refused even after a reactivation: they sign in again
            changes[User.token_version] = User.token_version + 1
        await User.update(changes).where(User.id == user_id).run()
    await _forget(user_id)
    logger.info("users: %s %s %s", actor["username"], "reactivated" if active else "deactivated", target.username)
    return await get_user(user_id)


async def set_admin(actor: dict, user_id: int, admin: bool) -> UserRow:
    target = await get_user(user_id)
    async with _writing():
        if not admin and target.is_admin:
            await _keep_an_admin(target)
        await User.update({User.is_admin: admin}).where(User.id == user_id).run()
    await _forget(user_id)
    logger.info("users: %s %s %s", actor["username"], "made admin" if admin else "revoked admin of", target.username)
    return await get_user(user_id)


async def accept_invite(token: str, password: str) -> dict:
    """The invitee sets their password with the link's token; the user (to sign them in)."""
    check_password(password)
    found = (
        await User.select(User.id, User.invite_expires_at, User.is_active)
        .where(User.invite_hash == invite_hash(token))
        .first()
        .run()
    )
    if found is None or not found["is_active"] or _aware(found["invite_expires_at"]) <= datetime.now(UTC):
        raise NotFound("this invite link is not valid (used, expired or mistyped): ask your admin for a new one")
    await (
        User.update(
            {
                User.password_hash: await hash_password(password),
                User.must_change_password: False,
                User.invite_hash: None,
                User.invite_expires_at: None,
            }
        )
        .where(User.id == found["id"])
        .run()
    )
    row = await User.select(User.id, User.username, User.token_version).where(User.id == found["id"]).first().run()
    if row is None:  # pragma: no cover - deleted between the write and this read
        raise NotFound("this account no longer exists")
    logger.info("users: %s accepted their invite", row["username"])
    return row


async def invite_is_valid(token: str) -> str | None:
    """The invitee's name if the token is a live invite."""
    if not token or len(token) > 200:
        return None
    found = (
        await User.select(User.username, User.invite_expires_at, User.is_active)
        .where(User.invite_hash == invite_hash(token))
        .first()
        .run()
    )
    if found is None or not found["is_active"] or _aware(found["invite_expires_at"]) <= datetime.now(UTC):
        return None
    return found["username"]


def _secrets(method: str) -> tuple[str, str | None]:
    """(the password to hash, the invite token or None). An invited user's password is random and
    shown to nobody: until they follow the link there is no way in."""
    password = secrets.token_urlsafe(ONE_TIME_PASSWORD_BYTES)
    return password, secrets.token_urlsafe(INVITE_TOKEN_BYTES) if method == "invite" else None


def _invite_columns(token: str | None, by_column: bool = False) -> dict:
    expires = datetime.now(UTC) + timedelta(days=INVITE_DAYS) if token else None
    values = {"invite_hash": invite_hash(token) if token else None, "invite_expires_at": expires}
    if by_column:
        return {User.invite_hash: values["invite_hash"], User.invite_expires_at: values["invite_expires_at"]}
    return values


async def _created(user_id: int, method: str, password: str, token: str | None) -> Created:
    row = await get_user(user_id)
    if token is None:
        return Created(user=row, one_time_password=password)
    found = await User.select(User.invite_expires_at).where(User.id == user_id).first().run()
    expires = found["invite_expires_at"] if found else None
    return Created(user=row, invite_path=f"/invite/{token}", invite_expires_at=expires)


@contextlib.asynccontextmanager
async def _writing() -> AsyncIterator[None]:
    """A transaction in which no other admin change runs: the users table locked on PostgreSQL,
    SQLite's write lock taken at the start (IMMEDIATE), so "is another admin left?" stays true."""
    db = User._meta.db
    if isinstance(db, PostgresEngine):
        async with db.transaction():
            await User.raw("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").run()
            yield
    else:
        async with db.transaction(transaction_type=TransactionType.immediate):
            yield


async def _keep_an_admin(target: UserRow) -> None:
    others = await User.count().where((User.is_admin == True) & (User.is_active == True) & (User.id != target.id))  # noqa: E712
    if others == 0:
        raise LastAdmin(
            f"{target.username} is the last active admin: make another user admin first (an instance needs one)"
        )


USERS_CHANNEL = "shop_users"  # PostgreSQL NOTIFY: a user's tokens must be checked again


async def _forget(user_id: int) -> None:
    """This process checks the user's tokens again at once; on PostgreSQL every other web
    process too (they LISTEN on USERS_CHANNEL, app.metrics.service), else within the 2 s a
    checked token is remembered."""
    from app.auth.deps import get_accounts

    get_accounts().forget_user(user_id)
    if isinstance(User._meta.db, PostgresEngine):
        await User.raw("SELECT pg_notify({}, {})", USERS_CHANNEL, str(user_id)).run()
