"""PostgresConfig never shows a password, for any password written any way into the DSN.

No server is needed: this is the configuration object only.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

pytest.importorskip("psycopg")

from eventcore import ConfigurationError
from eventcore.stores.postgres import PostgresConfig

# A password is made of distinctive chunks (two capitals, a digit, more capitals: never part
# of a message, a host or a key) joined by the characters that break a URL or a key=value
# string. A leak of any part of the password shows as a chunk in the output.
CHUNK_RE = re.compile(r"[A-Z]{2}[0-9][A-Z]{2,4}")
CHUNK = st.from_regex(CHUNK_RE, fullmatch=True)
BREAKERS = st.sampled_from(["@", "/", "?", "#", "%", "%zz", "%4", " ", ":", "=", "&", "'", "\\"])
PASSWORD = (
    st.lists(st.one_of(CHUNK, BREAKERS, st.text(max_size=3)), min_size=1, max_size=6)
    .map("".join)
    .filter(lambda text: CHUNK_RE.search(text) is not None)
)


def _quoted(value: str) -> str:
    """A libpq key/value value: in single quotes, with backslash and quote escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _forms(password: str) -> list[tuple[str, bool]]:
    """DSNs holding ``password``, each with whether it is written the way its syntax asks
    (then it must be read back exactly). A password typed into a URL without encoding must
    be refused or read right, and never shown; in a URL's query string it must be encoded
    (``&`` and ``=`` there separate parameters), so only the encoded form is tried."""
    return [
        (f"postgresql://app:{password}@db.internal:5432/shop", False),
        (f"postgres://app:{password}@db.internal/shop?sslmode=disable", False),
        (f"postgresql://app:{quote(password, safe='')}@db.internal:5432/shop", True),
        (f"postgresql://app@db.internal/shop?password={quote(password, safe='')}", True),
        (f"host=db.internal user=app password={_quoted(password)} dbname=shop", True),
    ]


def _assert_hidden(password: str, *texts: str) -> None:
    for chunk in CHUNK_RE.findall(password):
        for text in texts:
            assert chunk not in text, (chunk, text)


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(PASSWORD)
@example("S3CRETX%zz")  # a bad percent escape
@example("S3 CRETX")  # an unencoded space
@example("S3C@RETXY")  # an unencoded '@': the part after it looked like the host
@example("AB1CD/EF2GH")  # an unencoded '/': the part after it looked like the database
@example("AB1CD?EF2GH")
@example("AB1CD#EF2GH")
@example("%AA0AA")  # a valid escape that is not UTF-8: psycopg raised UnicodeDecodeError
@example("%4AA0AA")  # a valid escape typed into a URL unencoded
def test_no_part_of_any_password_is_ever_shown(password: str) -> None:
    for dsn, well_formed in _forms(password):
        try:
            config = PostgresConfig(dsn)
        except ConfigurationError as exc:
            assert not well_formed, exc
            _assert_hidden(password, str(exc), repr(exc))
            assert exc.__cause__ is None  # no driver error that quotes the DSN
            assert exc.__context__ is None or exc.__suppress_context__
            continue
        _assert_hidden(
            password,
            repr(config),
            config.masked_dsn,
            config.mask(f"connection to {dsn} failed: {password}"),
            config.address,
            str(config.params.get("dbname")),
            str(config.params.get("user")),
        )
        # Read as the user meant it; typed unencoded into a URL, a valid escape such as
        # "%4A" means what URLs say it means ("J").
        expected = password if well_formed else unquote(password)
        assert config.params.get("password") in (password, expected)
        assert config.host == "db.internal"


@pytest.mark.parametrize(
    ("password", "template", "message"),
    [
        ("PW9XQ%zz", "postgresql://u:{}@h/db", "starts no percent escape"),
        ("PW9 XQZ", "postgresql://u:{}@h/db", "a space in its user name or password"),
        ("PW9@XQZ", "postgresql://u:{}@h/db", "an '@' in its host part"),
        ("PW9/XQZ", "postgresql://u:{}@h/db", "an '@' after its host part"),
        ("PW9XQ%zz", "postgresql://h/db?password={}", "password query parameter"),
        ("PW9 XQZ", "host=h password={}", "details are not shown because it holds a password"),
        ("PW9XQZ", "postgresql://u:{}@h:port/db", "port 'port'"),
    ],
)
def test_the_reported_leaks_are_refused_without_the_password(
    password: str, template: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as info:
        PostgresConfig(template.format(password))
    for part in re.split(r"[ %@/]", password):
        assert part not in str(info.value)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:p%40ss%2Fw%20rd@db:5432/shop",
        "postgresql://app@db/shop?password=p%40ss",
        "host=db password='p@ss w/rd' dbname=shop",
        "postgresql://db/shop",
        "postgresql://app@db/shop",
    ],
)
def test_well_formed_dsns_are_accepted(dsn: str) -> None:
    config = PostgresConfig(dsn)
    assert "p@ss" not in repr(config) and "p%40ss" not in repr(config)
