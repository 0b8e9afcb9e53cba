from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from openflix.errors import DataError, DataFormatError
from openflix.recs import _parse, datasets


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


class TestMovieLens100K:
    def test_real_file_counts_titles_and_genres(self, ml100k_path: Path) -> None:
        data = datasets.load(ml100k_path)
        assert (data.nnz, data.n_users, data.n_items) == (100_000, 943, 1682)
        toy = data.item_index(1)
        assert data.item_title(toy) == "Toy Story (1995)"
        assert data.item_info is not None
        assert data.item_info.genres[toy] == "Animation|Children's|Comedy"
        assert data.ratings.min() == 1 and data.ratings.max() == 5

    def test_ids_map_both_ways(self, tmp_path: Path) -> None:
        f = write(tmp_path / "u.data", "10\t7\t5\t100\n3\t7\t4\t50\n10\t2\t1\t70\n")
        data = datasets.load(f)
        assert data.user_ids.tolist() == [3, 10]
        assert data.item_ids.tolist() == [2, 7]
        assert data.csr[data.user_index(10), data.item_index(7)] == 5

    @pytest.mark.parametrize(
        ("text", "line", "needle"),
        [
            ("1\t2\t3\t4\n1\t2\t3\n", 2, "expected 4 fields"),
            ("1\t2\t3\t4\n1\t2\t3\t4\t5\n", 2, "expected 4 fields"),
            ("1\t2\t3\t4\nx\t2\t3\t4\n", 2, "expected an integer id, got 'x'"),
            ("1\t2\t3\t4\n1\t2\t7\t4\n", 2, "must be in 1..5, got '7'"),
            ("1\t2\t3\t4\n1\t2\t3\tyesterday\n", 2, "expected a Unix time or a date"),
            ("1\t2\t3\t4\n1\t2\t3\t99999999999999999999\n", 2, "expected a Unix time or a date"),
            ("1\t2\t3\t4\n1\t2\t3\t-9999999999999\n", 2, "expected a Unix time or a date"),
            ("1\t2\t3\t4\n9223372036854775808\t2\t3\t4\n", 2, "expected an integer id"),
            ("1,2,3,4\n", 1, "it looks comma-separated"),
        ],
    )
    def test_bad_input_names_file_line_and_problem(
        self, tmp_path: Path, text: str, line: int, needle: str
    ) -> None:
        f = write(tmp_path / "u.data", text)
        with pytest.raises(DataFormatError) as info:
            datasets.load(f)
        assert info.value.line == line
        assert needle in str(info.value)
        assert str(f) in str(info.value)

    def test_empty_and_binary_files_are_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(DataFormatError, match="empty"):
            datasets.load(write(tmp_path / "u.data", ""))
        with pytest.raises(DataFormatError, match="binary") as info:
            datasets.load(write(tmp_path / "u.data", b"1\t2\t3\t4\n\x00\x01\xff\xfe"))
        assert info.value.line == 2

    def test_an_item_line_with_too_many_fields_names_it(self, tmp_path: Path) -> None:
        write(tmp_path / "u.data", "1\t2\t3\t4\n")
        item = "2|Up (2009)|01-Jan-2009||http://x" + "|0" * 19
        write(tmp_path / "u.item", f"{item}\n{item}|0\n")
        with pytest.raises(DataFormatError, match=r"u\.item, line 2: expected 24 fields"):
            datasets.load(tmp_path)


class TestMovieLensLatest:
    def test_bundled_latest_small(self, latest_small_path: Path) -> None:
        data = datasets.load(latest_small_path)
        assert (data.nnz, data.n_users, data.n_items) == (100_004, 671, 9066)
        assert data.ratings.min() == 0.5
        assert data.item_title(data.item_index(1)) == "Toy Story (1995)"

    def test_error_line_counts_the_header(self, tmp_path: Path) -> None:
        f = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,10\n1,3,9,11\n")
        with pytest.raises(DataFormatError, match=r"line 3, field 'rating': must be in 0.5..5"):
            datasets.load(tmp_path)
        assert f.exists()

    @pytest.mark.parametrize(
        ("movies", "needle"),
        [
            ('movieId,title,genres\n1,"Broken, Heart,Drama\n', r'line 2: a double quote \("\) opens a field'),
            ("movieId,title,genres\n1,Toy Story,Animation\n2,A,B,C,D\n", "line 3: expected 3 fields"),
        ],
    )
    def test_a_movies_file_pandas_cannot_read_names_it(
        self, tmp_path: Path, movies: str, needle: str
    ) -> None:
        write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,10\n")
        movies_csv = write(tmp_path / "movies.csv", movies)
        with pytest.raises(DataFormatError, match=needle) as info:
            datasets.load(tmp_path)
        assert str(movies_csv) in str(info.value)


class TestMovieLens1M:
    def test_double_colon_and_titles(self, tmp_path: Path) -> None:
        write(tmp_path / "ratings.dat", "1::10::5::978300760\n2::10::3::978300761\n2::20::4::978300762\n")
        write(tmp_path / "movies.dat", "10::Heat (1995)::Action|Crime\n20::Up (2009)::Animation\n")
        data = datasets.load(tmp_path)
        assert data.nnz == 3
        assert data.item_title(data.item_index(10)) == "Heat (1995)"

    def test_wrong_field_count(self, tmp_path: Path) -> None:
        write(tmp_path / "ratings.dat", "1::10::5::978300760\n2::10::3\n")
        with pytest.raises(DataFormatError) as info:
            datasets.load(tmp_path)
        assert info.value.line == 2


class TestNetflix:
    def test_combined_data_layout(self, tmp_path: Path) -> None:
        write(
            tmp_path / "combined_data_1.txt",
            "1:\n1488844,3,2005-09-06\n822109,5,2005-05-13\n2:\n1488844,4,2004-01-01\n",
        )
        write(
            tmp_path / "movie_titles.txt",
            "1,2003,Dinosaur Planet\n2,2004,Isle of Man TT 2004 Review, Part 2\n",
        )
        data = datasets.load(tmp_path)
        assert data.nnz == 3
        assert sorted(data.item_ids.tolist()) == [1, 2]
        two = data.item_index(2)
        assert data.item_title(two) == "Isle of Man TT 2004 Review, Part 2 (2004)"
        u = data.user_index(1488844)
        assert data.csr[u, two] == 4
        assert data.timestamps.min() == pd.Timestamp("2004-01-01", tz="UTC").timestamp()

    def test_training_set_folder_in_small_chunks(self, tmp_path: Path) -> None:
        (tmp_path / "training_set").mkdir()
        for m in range(1, 4):
            lines = "".join(f"{c},{(c + m) % 5 + 1},2005-01-0{m}\n" for c in range(1, 8))
            write(tmp_path / "training_set" / f"mv_{m:07d}.txt", f"{m}:\n{lines}")
        whole = datasets.load(tmp_path)
        assert whole.nnz == 21 and whole.n_items == 3 and whole.n_users == 7
        chunked = datasets.load_netflix(tmp_path, chunk_bytes=16)
        assert np.array_equal(chunked.csr.toarray(), whole.csr.toarray())

    @pytest.mark.parametrize(
        ("text", "line", "needle"),
        [
            ("1488844,3,2005-09-06\n", 1, "'MovieID:' line"),
            ("1:\n1488844,3,2005-13-45\n", 2, "expected a date like 2005-09-06"),
            ("1:\n1488844,6,2005-01-01\n", 2, "must be in 1..5"),
            ("1:\nabc,3,2005-01-01\n", 2, "expected an integer id"),
        ],
    )
    def test_bad_lines(self, tmp_path: Path, text: str, line: int, needle: str) -> None:
        f = write(tmp_path / "combined_data_1.txt", text)
        with pytest.raises(DataFormatError) as info:
            datasets.load(f)
        assert info.value.line == line
        assert needle in str(info.value)


class TestTable:
    def test_header_detected_and_columns_by_name(self, tmp_path: Path) -> None:
        f = write(tmp_path / "plays.csv", "when,who,what,plays\n2024-01-01,alice,t1,3\n2024-01-02,bob,t2,1\n")
        data = datasets.load(f, columns=["who", "what", "plays", "when"])
        assert sorted(data.user_ids.tolist()) == ["alice", "bob"]
        assert data.ratings.tolist() == [3.0, 1.0]
        assert data.timestamps[0] == pd.Timestamp("2024-01-01", tz="UTC").timestamp()

    def test_a_byte_order_mark_before_the_header_is_not_part_of_its_first_name(self, tmp_path: Path) -> None:
        f = write(tmp_path / "excel.csv", b"\xef\xbb\xbfuser,item,rating\n1,2,3.5\n2,2,4\n")  # as Excel saves
        data = datasets.load(f)
        assert data.user_ids.tolist() == [1, 2] and data.nnz == 2

    def test_headerless_positions_and_separator_sniffed(self, tmp_path: Path) -> None:
        f = write(tmp_path / "x.tsv", "1\t2\t1.0\n2\t3\t2.0\n")
        data = datasets.load(f)
        assert data.nnz == 2 and not data.has_timestamps

    def test_unknown_column_name_lists_the_header(self, tmp_path: Path) -> None:
        f = write(tmp_path / "x.csv", "user,item\n1,2\n")
        with pytest.raises(DataFormatError, match=r"no column named 'rating' \(the file has user, item\)"):
            datasets.load(f, columns=["user", "item", "rating"])

    @pytest.mark.parametrize(
        ("text", "line", "message"),
        [
            ("user,item,rating\n1,2,3\n2,3\n3,2,5\n", 3, "line 3 has 2 ('2,3')"),  # short
            ("user,item,rating\n1,2,3\n2,3,4,9\n3,2,5\n", 3, "line 3 has 4 ('2,3,4,9')"),  # long
            ("user,item\n1,2,3\n2,3,4\n", 1, "line 1 has 2 ('user,item')"),  # a header short of a name
            ("user,item,rating\n\n1,2,3\n2,3\n3,2,5\n", 4, "line 4 has 2 ('2,3')"),  # after a blank line
            # the separator that splits the most lines alike, not the first that splits most: these
            # decimal commas outnumber nothing
            ("user;item;rating\n1;2;3,5\n2;3;4,0\n3;4;2,5\n4;5\n", 5, "by semicolon, as on most"),
        ],
    )
    def test_an_uneven_line_among_the_first_is_named_not_blamed_on_the_separator(
        self, tmp_path: Path, text: str, line: int, message: str
    ) -> None:
        # it said "cannot tell the separator" at line 1 for any of these
        f = write(tmp_path / "x.csv", text)
        with pytest.raises(DataFormatError, match=re.escape(message)) as info:
            datasets.load(f)
        assert info.value.line == line and "--sep" in str(info.value)
        assert "cannot tell the separator" not in str(info.value)

    def test_a_quoted_field_holding_the_separator_does_not_hide_it(self, tmp_path: Path) -> None:
        ok = write(tmp_path / "ok.csv", 'user,item,rating,note\n1,2,3,"Foo, The"\n2,3,4,Bar\n3,2,5,Baz\n')
        assert datasets.load(ok).nnz == 3  # it was "cannot tell the separator"

    def test_a_quote_never_closed_is_named_at_its_line_in_any_block(self, tmp_path: Path) -> None:
        from openflix.recs import _parse

        rows = "".join(f"{i},2,3\n" for i in range(1, 200))
        f = write(tmp_path / "q.csv", f'user,item,rating\n{rows}"7,3,4\n3,2,5\n')  # the quote on line 201
        with pytest.raises(DataFormatError, match="never closed") as info:
            datasets.load(f)
        assert info.value.line == 201  # pandas said "row 200"
        with pytest.raises(DataFormatError, match="never closed") as info:  # blocks of about 300 bytes
            list(_parse.read_fields(f, sep=",", n_fields=3, skip_lines=1, block_bytes=300))
        assert info.value.line == 201

    def test_a_quoted_field_over_several_lines_is_read_whole_across_blocks(self, tmp_path: Path) -> None:
        from openflix.recs import _parse

        # each row's note spans two lines: a block ending at any line break may end inside one
        rows = "".join(f'{i},2,"a note\nover ""two"" lines"\n' for i in range(1, 60))
        f = write(tmp_path / "n.csv", f"user,item,note\n{rows}")
        whole = pd.concat(list(_parse.read_fields(f, sep=",", n_fields=3, skip_lines=1)))
        blocks = list(_parse.read_fields(f, sep=",", n_fields=3, skip_lines=1, block_bytes=300))
        assert len(blocks) > 5 and pd.concat(blocks).values.tolist() == whole.values.tolist()
        assert len(whole) == 59 and whole.iloc[-1, 2] == 'a note\nover "two" lines'  # it was "never closed"

    def test_a_literal_quote_inside_a_field_does_not_make_one_block_of_the_file(self, tmp_path: Path) -> None:
        from openflix.recs import _parse

        rows = "".join(f"{i},2,plain\n" for i in range(1, 200))
        f = write(tmp_path / "v.csv", f'user,item,note\n1,2,12" Vinyl\n{rows}')  # pandas: a literal quote
        blocks = list(_parse.read_fields(f, sep=",", n_fields=3, skip_lines=1, block_bytes=300))
        assert len(blocks) > 3  # not the whole file held at once, however long it is
        whole = pd.concat(blocks)
        assert len(whole) == 200 and whole.iloc[0, 2] == '12" Vinyl' and whole.index[-1] == 201

    def test_a_quote_never_closed_after_a_field_over_several_lines_is_named_at_its_line(
        self, tmp_path: Path
    ) -> None:
        from openflix.recs import _parse

        rows = "".join(f"{i},2,3\n" for i in range(1, 30))
        f = write(tmp_path / "q.csv", f'user,item,rating\n1,"2\n\n",3\n{rows}"7,3,4\n3,2,5\n')
        with pytest.raises(DataFormatError, match="never closed") as info:
            datasets.load(f, sep=",")
        assert info.value.line == 34  # it said 32: pandas counts records, and one spans 3 lines
        with pytest.raises(DataFormatError, match="never closed") as info:
            list(_parse.read_fields(f, sep=",", n_fields=3, skip_lines=1, block_bytes=100))
        assert info.value.line == 34

    def test_rows_after_a_field_over_several_lines_are_named_at_their_lines(self, tmp_path: Path) -> None:
        f = write(tmp_path / "m.csv", 'user,item,rating\n1,"2\n\n",3\n1,3,4\n1,,5\n2,5,1\n')
        with pytest.raises(DataFormatError, match="field 2 is missing") as info:
            datasets.load(f, sep=",")
        assert info.value.line == 6  # it said 4: a row a line
        f = write(tmp_path / "n.csv", 'user,item,rating\n1,"2\n\n",3\n1,3,4\n1,4,5,9\n2,5,1\n')
        with pytest.raises(DataFormatError, match="expected 3 fields separated by comma, got 4") as info:
            datasets.load(f, sep=",")
        assert info.value.line == 6  # pandas said line 4: it counts records

    def test_one_column_for_two_roles_is_refused(self, tmp_path: Path) -> None:
        # 0,0 read the member ids again as titles: every member had watched "themselves"
        f = write(tmp_path / "x.csv", "user,item\n1,2\n")
        for columns in (["0", "0"], ["user", "0"], ["user", "item", "user"]):
            with pytest.raises(
                DataError, match=r"--columns gives column '.+' as both user and (item|rating)"
            ):
                datasets.load(f, columns=columns)
        p = tmp_path / "r.parquet"
        pd.DataFrame({"u": [1, 2], "i": [5, 6]}).to_parquet(p)
        with pytest.raises(DataError, match="as both user and item"):
            datasets.load(p, columns=["u", "0"])

    def test_parquet(self, tmp_path: Path) -> None:
        f = tmp_path / "r.parquet"
        pd.DataFrame({"u": [1, 2, 2], "i": [5, 5, 6], "r": [1.0, 2.0, 3.0]}).to_parquet(f)
        data = datasets.load(f, columns=["u", "i", "r"])
        assert data.nnz == 3 and data.ratings.sum() == 6

    def test_parquet_junk(self, tmp_path: Path) -> None:
        f = write(tmp_path / "r.parquet", b"PAR1 not really")
        with pytest.raises(DataFormatError, match="not a readable Parquet file"):
            datasets.load(f)

    def test_rating_range_option(self, tmp_path: Path) -> None:
        f = write(tmp_path / "x.csv", "user,item,rating\n1,2,3\n1,3,11\n")
        with pytest.raises(DataFormatError, match=r"line 3, field 'rating': must be in 1..10"):
            datasets.load(f, rating_range=(1, 10))


class TestBlocks:
    """Loads parse in blocks; a block boundary changes nothing, errors keep their line numbers."""

    @pytest.fixture
    def tiny_blocks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(_parse, "BLOCK_BYTES", 40)

    def test_same_result_with_tiny_blocks(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        rows = "".join(
            f"{u}\t{i}\t{(u * i) % 5 + 1}\t{1000 + u + i}\n" for u in range(1, 30) for i in range(1, 8)
        )
        f = write(tmp_path / "u.data", rows)
        whole = datasets.load(f)
        monkeypatch.setattr(_parse, "BLOCK_BYTES", 40)
        blocked = datasets.load(f)
        assert np.array_equal(whole.csr.toarray(), blocked.csr.toarray())
        assert np.array_equal(whole.timestamps, blocked.timestamps)

    @pytest.mark.usefixtures("tiny_blocks")
    def test_error_line_in_a_later_block(self, tmp_path: Path) -> None:
        rows = "".join(f"{u},{u + 1},3,{u}\n" for u in range(1, 40))
        f = write(tmp_path / "x.csv", "user,item,rating,timestamp\n" + rows + "7,8,x,9\n")
        with pytest.raises(DataFormatError) as info:
            datasets.load(f)
        assert info.value.line == 41
        assert info.value.field == "rating"

    @pytest.mark.usefixtures("tiny_blocks")
    def test_ids_text_in_one_block_numbers_in_another(self, tmp_path: Path) -> None:
        rows = "".join(f"{u},{u + 1}\n" for u in range(1, 20)) + "alice,3\n"
        data = datasets.load(write(tmp_path / "x.csv", "user,item\n" + rows))
        assert "alice" in data.user_ids.tolist()
        assert data.nnz == 20


def test_factorize_dense_and_hashed() -> None:
    from openflix.recs.data import factorize

    ids = np.array([30, 10, 30, 20], dtype=np.int64)
    codes, uniques = factorize(ids)
    assert uniques.tolist() == [10, 20, 30] and codes.tolist() == [2, 0, 2, 1]
    sparse = np.array([10**12, 5, 10**12])
    codes, uniques = factorize(sparse)
    assert uniques.tolist() == [5, 10**12] and codes.tolist() == [1, 0, 1]
