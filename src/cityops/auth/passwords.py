"""Password hashing (Argon2id) and policy."""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cityops.errors import InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 128


@lru_cache(maxsize=4)
def hasher(memory_kib: int = 65536, time_cost: int = 3) -> PasswordHasher:
    # argon2-cffi's PasswordHasher uses Argon2id.
    return PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=2)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("cityops.auth").joinpath("data/common-passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def check_policy(password: str, *, username: str | None = None, field: str = "password") -> None:
    if not isinstance(password, str):
        raise InvalidInput("密码必须是文本 / password must be text", field=field)
    if any(unicodedata.category(ch) == "Cc" for ch in password):
        raise InvalidInput(
            "密码不能含控制字符 / password must not contain control characters", field=field
        )
    plain = normalise(password)
    if len(plain) < MIN_LENGTH:
        raise InvalidInput(
            f"密码至少 {MIN_LENGTH} 个字符 / password must be at least {MIN_LENGTH} characters",
            field=field,
        )
    if len(plain) > MAX_LENGTH:
        raise InvalidInput(
            f"密码最多 {MAX_LENGTH} 个字符 / password must be at most {MAX_LENGTH} characters",
            field=field,
        )
    lowered = plain.casefold()
    if username and normalise(username).casefold() in lowered:
        raise InvalidInput(
            "密码不能包含用户名 / password must not contain the username", field=field
        )
    if lowered in common_passwords():
        raise InvalidInput("密码过于常见 / this password is too common", field=field)


def hash_password(password: str, *, memory_kib: int = 65536, time_cost: int = 3) -> str:
    return hasher(memory_kib, time_cost).hash(normalise(password))


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        return False
    try:
        return hasher().verify(stored, normalise(password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# Verifying against this when the account does not exist keeps the timing of "no such user"
# and "wrong password" alike, so response times do not reveal which names exist — made at
# the configured cost, which is what the accounts' own hashes cost to verify.
@lru_cache(maxsize=4)
def dummy_hash(memory_kib: int = 65536, time_cost: int = 3) -> str:
    return hasher(memory_kib, time_cost).hash("not-a-real-password-0")
