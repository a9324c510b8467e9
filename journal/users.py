"""Users, sessions and sign-in with a time-limited lockout after repeated failures.

Passwords are hashed and checked in ``journal.passwords`` (off the event loop); the web layer
(``hotline.web.auth``) runs a sign-in as begin (count) → check → finish, and answers every
refusal alike."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from journal.models import ROLES, User, UserSession
from journal.passwords import hash_now, hash_off_loop

# Failed sign-ins in a row before the first lockout; it lasts LOCKOUT_FIRST_S and doubles
# with each further failure up to LOCKOUT_MAX_S. Time-limited: anyone can cause it.
LOCKOUT_AFTER = 5
LOCKOUT_FIRST_S = 60
LOCKOUT_MAX_S = 15 * 60


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
    """The argon2 hash, on this thread: for set-up code with no event loop to keep free."""
    return hash_now(password)


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
    user = User(login=login, password_hash=await hash_off_loop(password), role=role, smo=smo,
                extension=extension, full_name=full_name, created_at=datetime.now(UTC),
                failed_logins=0, locked=False)
    session.add(user)
    await session.flush()
    return user


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """One sign-in, counted as a failure before its password is checked (see begin_sign_in).

    ``password_hash`` is None when the password must not be checked (unknown login, account
    locked): the caller then checks a dummy hash instead, so every refusal costs the same."""

    user_id: int | None
    password_hash: str | None
    refused: str | None  # why it cannot succeed: "unknown_login", "locked"; None: check it
    locked_now: bool = False  # this attempt started a lockout


def lockout_seconds(failures: int) -> float | None:
    """How long ``failures`` failed sign-ins in a row lock an account: none below
    LOCKOUT_AFTER, then LOCKOUT_FIRST_S doubling with each further failure, at most
    LOCKOUT_MAX_S."""
    if failures < LOCKOUT_AFTER:
        return None
    return float(min(LOCKOUT_MAX_S, LOCKOUT_FIRST_S * 2 ** min(failures - LOCKOUT_AFTER, 16)))


def is_locked(user: User, now: datetime | None = None) -> bool:
    """Locked by an administrator, or within a lockout after failed sign-ins."""
    until = user.locked_until
    return bool(user.locked) or (until is not None and until > (now or datetime.now(UTC)))


async def begin_sign_in(session: AsyncSession, login: str,
                        now: datetime | None = None) -> SignInAttempt:
    """Count a sign-in attempt as a failure *before* its password is checked, atomically.

    Counting first, in one statement (``failed_logins = failed_logins + 1 ... RETURNING``),
    is what stops parallel guesses: each attempt that gets a count below the lockout threshold
    may check its password, the one that reaches it locks the account in the same transaction,
    and every attempt after that is refused unchecked. A successful check resets the count
    (:func:`finish_sign_in`). Commit this transaction before checking the password: the
    check takes ~100 ms and must not hold a write lock.
    """
    now = now or datetime.now(UTC)
    not_locked = (User.login == login) & User.locked.is_(False) \
        & (User.locked_until.is_(None) | (User.locked_until <= now))
    row = (await session.execute(
        update(User).where(not_locked).values(failed_logins=User.failed_logins + 1)
        .returning(User.id, User.failed_logins, User.password_hash)
        .execution_options(synchronize_session=False)
    )).first()
    if row is None:
        user_id = await session.scalar(select(User.id).where(User.login == login))
        return SignInAttempt(user_id, None, "unknown_login" if user_id is None else "locked")
    user_id, failures, password_hash = row
    seconds = lockout_seconds(failures)
    if seconds is not None:
        await session.execute(update(User).where(User.id == user_id)
                              .values(locked_until=now + timedelta(seconds=seconds))
                              .execution_options(synchronize_session=False))
    return SignInAttempt(user_id, password_hash, None, locked_now=seconds is not None)


async def finish_sign_in(session: AsyncSession, user_id: int) -> User:
    """The password was right: clear the failure count (and the lockout this attempt may have
    started) and return the user."""
    await session.execute(update(User).where(User.id == user_id)
                          .values(failed_logins=0, locked_until=None)
                          .execution_options(synchronize_session=False))
    user = await session.get(User, user_id, populate_existing=True)
    assert user is not None
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
    # Only an administrator's lock ends sessions: a lockout after failed sign-ins can be
    # caused by anyone who knows the login, and must not sign the user out.
    if expires_at < datetime.now(UTC) or user.locked:
        return None
    return ResolvedSession(principal_of(user), csrf, expires_at)


async def close_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.token_hash == token_digest(token)))
