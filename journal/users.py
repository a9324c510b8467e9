"""Users, passwords (argon2) and sign-in with lockout after repeated failures."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from journal.models import ROLES, User, UserSession

MAX_FAILED_LOGINS = 10
_hasher = PasswordHasher()


class UserError(ValueError):
    """Bad input for a user (unknown role, SMO missing, duplicate login)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The signed-in user as access rules see it."""

    id: int
    login: str
    role: str
    smo: str | None
    extension: str | None

    def public(self) -> dict[str, str | int | None]:
        return {"id": self.id, "login": self.login, "role": self.role, "smo": self.smo,
                "extension": self.extension}


def principal_of(user: User) -> Principal:
    return Principal(user.id, user.login, user.role, user.smo, user.extension)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def add_user(session: AsyncSession, login: str, password: str, role: str,
                   smo: str | None = None, extension: str | None = None,
                   full_name: str | None = None) -> User:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    if role == "smo" and not smo:
        raise UserError("an smo user needs --smo CODE")
    if role != "smo" and smo:
        raise UserError("--smo is only for role smo")
    if len(password) < 8:
        raise UserError("the password must have at least 8 characters")
    if not login or len(login) > 80:
        raise UserError("the login must have 1 to 80 characters")
    if await session.scalar(select(User.id).where(User.login == login)) is not None:
        raise UserError(f"user {login!r} already exists")
    user = User(login=login, password_hash=hash_password(password), role=role, smo=smo,
                extension=extension, full_name=full_name, created_at=datetime.now(UTC),
                failed_logins=0, locked=False)
    session.add(user)
    await session.flush()
    return user


class LoginRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def authenticate(session: AsyncSession, login: str, password: str) -> User:
    """The user for these credentials; count failures and lock after MAX_FAILED_LOGINS."""
    user = await session.scalar(select(User).where(User.login == login))
    if user is None:
        _hasher.hash(password)  # same cost as a real check: no user enumeration by timing
        raise LoginRefused("bad_credentials", "Неверный логин или пароль")
    if user.locked:
        raise LoginRefused("locked", "Учётная запись заблокирована, обратитесь к администратору")
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked = True
        raise LoginRefused("bad_credentials", "Неверный логин или пароль") from None
    user.failed_logins = 0
    return user


def token_digest(token: str) -> str:
    """What the database keeps of a session token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(session: AsyncSession, user: User, hours: float) -> tuple[str, str]:
    """A new bearer/cookie token and its CSRF token; only the token's hash is stored."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = datetime.now(UTC)
    session.add(UserSession(token_hash=token_digest(token), user_id=user.id, csrf_token=csrf,
                            created_at=now, expires_at=now + timedelta(hours=hours)))
    return token, csrf


@dataclass(frozen=True, slots=True)
class ResolvedSession:
    """A live session: who it is, its CSRF token and when it expires."""

    user: Principal
    csrf: str
    expires_at: datetime


async def resolve_session(session: AsyncSession, token: str) -> ResolvedSession | None:
    row = (await session.execute(
        select(User, UserSession.csrf_token, UserSession.expires_at)
        .join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.token_hash == token_digest(token))
    )).first()
    if row is None:
        return None
    user, csrf, expires_at = row
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at < datetime.now(UTC) or user.locked:
        return None
    return ResolvedSession(principal_of(user), csrf, expires_at)


async def close_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.token_hash == token_digest(token)))
