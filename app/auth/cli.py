"""`litestar users ...`: create an admin account (also with registration closed)."""

from __future__ import annotations

import sys

import click

from app.lib.cli import run_command


def register(cli: click.Group) -> None:
    """Add the `users` group to the Litestar CLI."""

    @cli.group(name="users")
    def users() -> None:
        """Manage accounts."""

    @users.command(name="create-admin")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True, help="Read the password from standard input (for scripts).")
    @click.option("--promote", is_flag=True, help="If USERNAME exists, make it an admin (its password is kept).")
    def create_admin(username: str, password_stdin: bool, promote: bool) -> None:
        """Create the admin account USERNAME; asks for its password (8 to 1024 characters)."""
        from app.auth.deps import get_accounts
        from app.auth.service import AuthError, Conflict, find_user_id
        from app.auth.tables import User

        async def main() -> str:
            existing = await find_user_id(username)
            if existing is not None:
                if not promote:
                    raise Conflict(f"{username!r} exists already: add --promote to make it an admin")
                await User.update({User.is_admin: True}).where(User.id == existing).run()
                return f"{username} is now an admin"
            if password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
            else:
                password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
            user = await get_accounts().register(username, password, admin=True)
            return f"admin {user['username']} created (id {user['id']})"

        click.echo(run_command(main, known=(AuthError,)))
