"""``openflix db|tokens|models|demo``: the platform from the command line, with exit 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from openflix.cli import cli
from openflix.cli import platform as platform_cli
from openflix.recs.data import Interactions
from tests.conftest import write_ratings_csv


def test_import_train_promote_rollback_and_tokens(
    env: dict[str, str], tmp_path: Path, store_data: Interactions
) -> None:
    run = CliRunner().invoke
    csv = write_ratings_csv(store_data, tmp_path / "ratings.csv")
    r = run(cli, ["db", "import", "--data", str(csv)])
    assert r.exit_code == 0, r.output
    assert f"{store_data.nnz:,} events" in r.output
    r = run(cli, ["db", "import", "--data", str(csv)])
    assert "imported 0 titles, 0 members, 0 events" in r.output

    assert run(cli, ["models", "train", "--promote"]).exit_code == 0
    assert run(cli, ["models", "train", "--model", "ease"]).exit_code == 0
    versions = json.loads(run(cli, ["models", "list", "--json"]).output)
    assert [(v["id"], v["in_production"]) for v in versions] == [(2, False), (1, True)]
    assert run(cli, ["models", "promote", "2"]).exit_code == 0
    assert json.loads(run(cli, ["models", "list", "--json"]).output)[0]["in_production"] is True
    r = run(cli, ["models", "rollback"])
    assert r.exit_code == 0 and "version 1 is in production" in r.output

    member = str(int(store_data.user_ids[0]))
    r = run(cli, ["tokens", "create", "--role", "member", "--member", member])
    assert r.exit_code == 0 and r.stdout.strip().startswith("ofx_")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tokens", "create", "--role", "member"], "needs --member"),
        (["tokens", "create", "--role", "admin", "--member", "1"], "only for member tokens"),
        (["tokens", "create", "--role", "member", "--member", "777"], "member 777 does not exist"),
        (["tokens", "revoke", "55"], "token 55 does not exist"),
        (
            ["tokens", "create", "--role", "admin", "--name", "x" * 201],
            "--name: expected up to 200 printable",
        ),
        (
            ["tokens", "create", "--role", "admin", "--name", "ci\x1b[2J"],
            "got 6 characters with control characters",
        ),
        (
            ["tokens", "create", "--role", "admin", "--name", "ci\u200b"],
            "with control characters",
        ),  # a zero-width space
        (["models", "promote", "9"], "model version 9 does not exist"),
        (["models", "rollback"], "nothing to roll back"),
        (["models", "train"], "the store holds no events"),
        (["worker"], "OPENFLIX_REDIS_URL"),
        # numbers the store cannot hold are refused before anything is read
        (
            ["tokens", "revoke", "99999999999999999999"],
            "'TOKEN_ID': 99999999999999999999 is not",
        ),
        (["tokens", "create", "--role", "member", "--member", "-1"], "'--member': -1 is not in the range"),
        (["models", "promote", "0"], "'VERSION_ID': 0 is not in the range"),
        (["serve", "--workers", "-3"], "'--workers': -3 is not in the range"),
    ],
)
def test_bad_requests_exit_2_with_one_clear_line(env: dict[str, str], args: list[str], message: str) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["db", "upgrade"])
    r = runner.invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


@pytest.mark.parametrize(
    "args", [["models", "list"], ["models", "rollback"], ["tokens", "revoke", "1"], ["models", "train"]]
)
def test_an_unmigrated_database_names_the_command_to_run(env: dict[str, str], args: list[str]) -> None:
    r = CliRunner().invoke(cli, args)  # no `db upgrade` first
    assert r.exit_code == 2, r.output
    assert "the database schema is not migrated; this version needs revision" in r.output
    assert "run `openflix db upgrade`" in r.output and "Traceback" not in r.output


def test_a_database_url_naming_another_kind_of_file_is_one_line(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    monkeypatch.setenv("OPENFLIX_DATABASE_URL", f"sqlite:///{text}")
    r = CliRunner().invoke(cli, ["models", "list"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"the database at sqlite:///{text} cannot be reached: file is not a database" in r.output


@pytest.mark.parametrize(
    ("args", "variables", "message"),
    [
        (["--bind", "127.0.0.1:99999"], {}, "expected HOST:PORT with a port in 0..65535"),
        ([], {"OPENFLIX_BIND": "localhost"}, "expected HOST:PORT"),
        ([], {"OPENFLIX_RATE_LIMIT": "lots"}, "OPENFLIX_RATE_LIMIT='lots' is not a rate limit"),
        ([], {"OPENFLIX_RETRAIN_AT": "25:99"}, "OPENFLIX_RETRAIN_AT='25:99' is not a time"),
        ([], {"OPENFLIX_WORKERS": "abc"}, "OPENFLIX_WORKERS='abc': expected a whole number in 1..256"),
        ([], {"OPENFLIX_THREADS": "-3"}, "OPENFLIX_THREADS='-3': expected a whole number in 1..256"),
    ],
)
def test_serve_says_what_its_workers_would_fail_on_before_starting_them(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    variables: dict[str, str],
    message: str,
) -> None:
    """Each worker used to fail at boot with a traceback and Gunicorn exited 3."""

    def would_serve(*_: object) -> None:
        raise AssertionError("serve went on to start Gunicorn")

    monkeypatch.setattr(platform_cli, "exec_gunicorn", would_serve)  # this process is the test's
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    r = CliRunner().invoke(cli, ["serve", *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_a_bad_file_imports_nothing(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("userId,movieId,rating,timestamp\n1,2,4.0,100\n1,3,abc,200\n")
    r = CliRunner().invoke(cli, ["db", "import", "--data", str(bad)])
    assert r.exit_code == 2 and "line 3" in r.output
    from sqlalchemy import create_engine, func, select

    from openflix.store.schema import Event

    engine = create_engine(env["OPENFLIX_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Event)) == 0
    engine.dispose()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("9223372036854775808,40,3.0,100", "member id 9223372036854775808"),  # was stored as -2**63
        ("-3,40,3.0,100", "member id -3"),  # tokens and the API take 0 and up
        ("1,-40,3.0,100", "title id -40"),
        ("1,40,3.0,99999999999999999999", "line 3, field 'timestamp': expected a Unix time"),  # garbage
    ],
)
def test_ids_and_times_the_store_cannot_keep_are_refused_and_nothing_imported(
    env: dict[str, str], tmp_path: Path, row: str, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(f"userId,movieId,rating,timestamp\n1,2,4.0,100\n{row}\n")
    r = CliRunner().invoke(cli, ["db", "import", "--data", str(bad)])
    assert r.exit_code == 2 and message in r.output, r.output
    r = CliRunner().invoke(cli, ["models", "train"])
    assert r.exit_code == 2 and "the store holds no events" in r.output, r.output


def test_demo_without_serving_sets_everything_up(
    env: dict[str, str], tmp_path: Path, store_data: Interactions
) -> None:
    csv = write_ratings_csv(store_data, tmp_path / "ratings.csv")
    r = CliRunner().invoke(cli, ["demo", "--no-serve", "--data", str(csv)])
    assert r.exit_code == 0, r.output
    assert "put it in production" in r.output and "#token=ofx_" in r.output and "/docs" in r.output
    r = CliRunner().invoke(cli, ["demo", "--no-serve", "--data", str(csv)])
    assert "already" in r.output and "model version 1 is in production" in r.output


@pytest.mark.parametrize(
    ("redis_url", "message"),
    [
        ("redis://127.0.0.1:1/0", "Redis at redis://127.0.0.1:1/0 cannot be reached"),  # nothing listens on 1
        ("notredis", "OPENFLIX_REDIS_URL='notredis': Redis URL must specify one of the following schemes"),
    ],
)
def test_a_worker_without_a_redis_it_can_use_is_one_line(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, redis_url: str, message: str
) -> None:
    monkeypatch.setenv("OPENFLIX_REDIS_URL", redis_url)
    r = CliRunner().invoke(cli, ["worker", "--burst"])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_a_token_name_may_hold_any_printable_character(env: dict[str, str]) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["db", "upgrade"])
    r = runner.invoke(
        cli, ["tokens", "create", "--role", "admin", "--name", "Zoë's\u00a0laptop"]
    )  # a no-break space
    assert r.exit_code == 0, r.output


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    # `openflix cdn steer ... | head -c1`: a closed pipe is not the user's error (it was "error: Broken
    # pipe" and exit 2, when the reader left before the command's last line)
    import subprocess
    import sys

    program = (
        "import errno, click\n"
        "from openflix.cli.main import OpenflixGroup\n"
        "@click.group(cls=OpenflixGroup)\n"
        "def group(): pass\n"
        "@group.command()\n"
        "def lines():\n"
        "    raise BrokenPipeError(errno.EPIPE, 'Broken pipe')\n"
        "group(['lines'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1 and "Broken pipe" not in done.stderr, done
