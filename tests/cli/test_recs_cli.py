from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from openflix.cli import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def ratings(tmp_path: Path) -> Path:
    from tests.conftest import make_interactions

    d = make_interactions()
    rows = [
        f"{d.user_ids[u]},{d.item_ids[i]},{r:g},{t}"
        for u, i, r, t in zip(d.users, d.items, d.ratings, d.timestamps, strict=True)
    ]
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    movies = [f"{1000 + i},Title {i},{'Drama' if i % 2 else 'Comedy'}" for i in range(d.n_items)]
    (tmp_path / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(movies) + "\n")
    return tmp_path


def test_evaluate_json_last_line(runner: CliRunner, ratings: Path) -> None:
    res = runner.invoke(
        cli,
        [
            "recs",
            "evaluate",
            "--data",
            str(ratings),
            "--model",
            "ease",
            "--model",
            "popularity",
            "--json",
            "--no-tune",
        ],
    )
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(result) == {"ease", "popularity"}
    assert 0 <= result["ease"]["ndcg@10"] <= 1
    assert result["ease"]["ndcg@10"] > result["popularity"]["ndcg@10"]


def test_evaluate_reports_tuned_values(runner: CliRunner, ratings: Path) -> None:
    res = runner.invoke(cli, ["recs", "evaluate", "--data", str(ratings), "--model", "ease", "--k", "5"])
    assert res.exit_code == 0, res.output
    assert "chosen on validation: {'l2':" in res.stdout
    assert "ndcg@5" in res.stdout


def test_train_then_recommend_similar_and_fold_in(runner: CliRunner, ratings: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    res = runner.invoke(
        cli, ["recs", "train", "--data", str(ratings), "--model", "ease", "--out", str(model)]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["recs", "recommend", "--model-file", str(model), "--user", "101", "--n", "3"])
    assert res.exit_code == 0, res.output
    assert "Title" in res.stdout
    res = runner.invoke(cli, ["recs", "recommend", "--model-file", str(model), "--history", "1001,1003"])
    assert res.exit_code == 0, res.output
    assert "fold-in" in res.stdout
    res = runner.invoke(cli, ["recs", "similar", "--model-file", str(model), "--item", "1001", "--n", "3"])
    assert res.exit_code == 0, res.output
    assert "titles like Title 1" in res.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["recs", "recommend", "--user", "999"], "unknown member id '999'"),
        (["recs", "recommend", "--history", "1001,77"], "unknown title id '77'"),
        (["recs", "similar", "--item", "abc"], "unknown title id 'abc'"),
    ],
)
def test_unknown_ids_exit_2_without_traceback(
    runner: CliRunner, ratings: Path, args: list[str], needle: str
) -> None:
    res = runner.invoke(cli, [*args, "--data", str(ratings), "--model", "popularity"])
    assert res.exit_code == 2
    assert needle in res.stderr
    assert "Traceback" not in res.output


def test_bad_file_exits_2_naming_the_line(runner: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "u.data"
    f.write_text("1\t2\t3\t4\n1\t2\t3\n")
    res = runner.invoke(cli, ["recs", "evaluate", "--data", str(f)])
    assert res.exit_code == 2
    assert f"{f}, line 2: expected 4 fields separated by tab" in res.stderr
    assert "Traceback" not in res.output


def test_too_few_ratings_to_evaluate_exit_2_saying_so(runner: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "ratings.csv"  # a temporal split leaves a validation part empty
    f.write_text("userId,movieId,rating,timestamp\n1,2,3.0,100\n1,3,4.0,200\n1,4,5.0,300\n2,5,1.0,400\n")
    for model in ("sequential", "popularity"):
        res = runner.invoke(cli, ["recs", "evaluate", "--data", str(f), "--model", model])
        assert res.exit_code == 2, res.output  # it was numpy's "zero-size array to reduction operation"
        assert "nothing to measure on: the held-out part of the split is empty" in res.stderr
        assert "Traceback" not in res.output


def test_missing_model_file(runner: CliRunner, tmp_path: Path) -> None:
    res = runner.invoke(cli, ["recs", "similar", "--model-file", str(tmp_path / "none.npz"), "--item", "1"])
    assert res.exit_code == 2
    assert "no such model file" in res.stderr


def test_train_with_tuning_says_what_was_chosen(runner: CliRunner, ratings: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.npz"
    res = runner.invoke(
        cli,
        [
            "recs",
            "train",
            "--data",
            str(ratings),
            "--model",
            "sequential",
            "--tune",
            "--param",
            "alpha=0.5",
            "--out",
            str(model),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "chosen on validation: {'alpha': 0.5, 'reg':" in res.stdout
    assert model.exists()


def test_a_hyperparameter_the_model_would_misread_is_a_usage_error(
    runner: CliRunner, ratings: Path, tmp_path: Path
) -> None:
    model = tmp_path / "m.npz"
    train = ["recs", "train", "--data", str(ratings), "--out", str(model), "--model"]
    for args, message in (
        (["als", "--param", "factors=-5"], "factors: expected a whole number >= 0, got -5"),
        (["als", "--param", "nosuch=1"], "nosuch: not a hyperparameter of als"),
        (["ease", "--param", "l2=nan"], "l2: expected a number >= 0, got nan"),
        (["itemknn", "--param", "k=0"], "k: expected a whole number >= 1, got 0"),  # it scored every title 0
    ):
        res = runner.invoke(cli, train + args)
        assert res.exit_code == 2 and message in res.stderr, res.output
        assert "Traceback" not in res.output and not model.exists()
    res = runner.invoke(cli, [*train, "sequential", "--param", "tau=inf"])  # JSON has no word for it
    assert res.exit_code == 0, res.output
    assert model.exists()


def test_a_negative_seed_is_a_usage_error(runner: CliRunner, ratings: Path) -> None:
    res = runner.invoke(
        cli, ["recs", "evaluate", "--data", str(ratings), "--seed", "-1", "--model", "popularity"]
    )
    assert res.exit_code == 2 and "'--seed': -1 is not in the range x>=0" in res.stderr, res.output


def test_a_model_out_path_that_is_a_directory_is_refused_before_training(
    runner: CliRunner, ratings: Path, tmp_path: Path
) -> None:
    res = runner.invoke(
        cli, ["recs", "train", "--data", str(ratings), "--out", str(tmp_path), "--model", "ease"]
    )
    assert res.exit_code == 2 and "is a directory" in res.output, res.output
    assert (
        "loaded" not in res.output and "trained" not in res.output
    )  # it trained, then failed on a .tmp path


def test_hyperparameters_are_checked_before_the_data_is_read(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "not-there.csv"  # reading it would fail: the hyperparameter is said first
    res = runner.invoke(cli, ["recs", "train", "--data", str(missing), "--out", str(tmp_path / "m.npz"),
                              "--model", "itemknn", "--param", "k=0"])  # fmt: skip
    assert res.exit_code == 2 and "k: expected a whole number >= 1, got 0" in res.output, res.output


def test_a_table_sent_to_a_pipe_keeps_each_row_on_one_line(runner: CliRunner) -> None:
    # off a terminal rich drew 80 columns and folded a row's genres onto a second line
    from openflix.settings import bundled_data

    args = ["recs", "recommend", "--data", str(bundled_data()), "--model", "popularity", "--user", "1"]
    res = runner.invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert any(
        "Forrest Gump (1994)" in line and "Comedy, Drama, Romance, War" in line
        for line in res.stdout.splitlines()
    )
