"""The users table (the app's own accounts, not Piccolo's BaseUser)."""

from typing import TYPE_CHECKING

from piccolo.columns import Boolean, Integer, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

if TYPE_CHECKING:
    from piccolo.columns import Serial


class User(Table, tablename="users"):
    if TYPE_CHECKING:  # Piccolo adds the `id` primary key when it makes the class
        id: Serial
    username = Varchar(length=30, unique=True, index=True)
    password_hash = Varchar(length=255, secret=True)  # argon2id, PHC string format
    is_admin = Boolean(default=False)
    is_active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())
    # bumped by a password change, a reset and a deactivation: tokens carrying an older value are refused
    token_version = Integer(default=0)
    last_login_at = Timestamptz(null=True, default=None)
    # set by an admin's one-time password: the user chooses their own before anything else
    must_change_password = Boolean(default=False)
    # an invite link's token, as its SHA-256 (the link itself is shown once to the admin)
    invite_hash = Varchar(length=64, null=True, default=None, secret=True)
    invite_expires_at = Timestamptz(null=True, default=None)


class RevokedToken(Table, tablename="revoked_tokens"):
    """Tokens logged out before they expire, by their `jti`; a row is useless (and deleted) once
    its token has expired. In the database, so a logout survives a Redis restart."""

    jti = Varchar(length=64, primary_key=True)
    expires_at = Timestamptz(index=True)
