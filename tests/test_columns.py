"""Column kinds nncli decides by itself (dates, formatted numbers, identifiers, capped
one-hots, missing values), stated to the user, stored in the schema and applied at predict."""
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner

from nncli import columns as C
from nncli.cli import cli
from nncli.data import Schema, encode_features, prepare_training, read_csv
from nncli.errors import ModelFileError


def table(text, **kw):
    return read_csv(io.BytesIO(text.encode()), **kw)


def kinds(d):
    return {c.name: c.kind for c in d.schema.inputs}


def rows(header, n, make):
    return header + "\n" + "\n".join(make(i) for i in range(n)) + "\n"


# ------------------------------------------------------------------------------------ dates ---
@pytest.mark.parametrize("cells, fmt", [
    (["2019-01-05", "2020-02-03"], "iso"),
    (["2010-01-01 00:00", "2010-01-01T13:45:10Z"], "iso"),
    (["05/01/2019", "13/02/2020"], "%d/%m/%Y"),          # day-first: a day above 12
    (["01/13/2019", "02/03/2020"], "%m/%d/%Y"),          # month-first: a month-day above 12
    (["05-Jan-2019", "13-Feb-2020"], "%d-%b-%Y"),        # unusual but consistent
    (["Mar 3, 2021 10:15 PM"], "%b %d, %Y %I:%M %p"),
    (["3rd of March 2021"], None),                       # not a form nncli knows
    (["2019", "2020"], None),                             # a year code is a number
    (["A-12", "B-7"], None), (["2019-01-05", "soon"], None),   # one cell off: not a date
])
def test_date_formats_found_and_look_alikes_not(cells, fmt):
    assert C.detect_date_format(cells) == fmt


def test_month_first_where_both_orders_fit():
    cells = ["03/04/2024", "05/06/2024", "12/01/2024"]
    assert C.detect_date_format(cells) == "%d/%m/%Y"
    assert C.detect_date_format(cells, month_first=True) == "%m/%d/%Y"
    assert C.detect_date_format(["13/04/2024"], month_first=True) == "%d/%m/%Y"   # only day-first fits
    d = prepare_training(table(rows("when,y", 30, lambda i: f"{1 + i % 12:02d}/{1 + i % 9:02d}/2024,{i}")),
                         dates="monthfirst")
    assert d.schema.inputs[0].date_format == "%m/%d/%Y"
    assert d.notes == ["when: read month-first, as MM/DD/YYYY (the other order fits too: --dates expand)"]
    day = prepare_training(table(rows("when,y", 30, lambda i: f"{1 + i % 12:02d}/{1 + i % 9:02d}/2024,{i}")))
    assert day.notes == ["when: read day-first, as DD/MM/YYYY (the other order fits too: --dates monthfirst)"]
    plain = prepare_training(table(rows("when,y", 30, lambda i: f"{13 + i % 12:02d}/{1 + i % 9:02d}/2024,{i}")))
    assert plain.notes == []


def test_date_parts_by_hand():
    # 2021-03-15 06:00 is a Monday (weekday 0), month index 2, day of year 73, hour 6.
    p = C.date_parts(np.array([C._parse_one("2021-03-15 06:00", "iso")]))
    assert p["year"][0] == 2021
    assert p["month_sin"][0] == pytest.approx(np.sin(2 * np.pi * 2 / 12))
    assert p["doy_cos"][0] == pytest.approx(np.cos(2 * np.pi * 73 / 365.25))
    assert (p["weekday_sin"][0], p["weekday_cos"][0]) == pytest.approx((0.0, 1.0))
    assert (p["hour_sin"][0], p["hour_cos"][0]) == pytest.approx((1.0, 0.0), abs=1e-12)
    assert p["elapsed"][0] == pytest.approx(18701.25)


def test_a_date_column_expands_and_a_year_code_stays_a_number():
    text = rows("when,year,y", 40, lambda i: f"{1 + i % 28:02d}/{1 + i % 12:02d}/20{10 + i % 5},"
                                             f"{2000 + i % 7},{i}")
    d = prepare_training(table(text))
    assert kinds(d) == {"when": "date", "year": "numeric"}
    ic = d.schema.inputs[0]
    assert ic.date_format == "%d/%m/%Y" and "hour_sin" not in ic.parts   # no times: no hour
    assert ic.parts[0] == "year" and ic.parts[-1] == "elapsed"
    assert d.feature_names[:2] == ["when.year", "when.month_sin"]
    assert np.allclose(d.X[:, :len(ic.parts)].mean(axis=0), 0, atol=1e-9)   # standardised
    off = prepare_training(table(text), dates="none")   # text: 40 values in 40 rows
    assert "when" not in kinds(off) and off.schema.ignored[0]["name"] == "when"


# ---------------------------------------------------------------------------------- numbers ---
@pytest.mark.parametrize("cells, decimal, values", [
    (['"$1,200"', "$15", ""], ".", [1200, 15, np.nan]),
    (["12.5%", "3%", "100%"], ".", [12.5, 3, 100]),
    (['"1 234,5 kg"', "4 kg", '"0,25 kg"'], ",", [1234.5, 4, 0.25]),
])
def test_formatted_numbers_are_numbers(cells, decimal, values):
    sep = ";" if decimal == "," else ","
    text = f"x{sep}y\n" + "".join(f"{c}{sep}{k}\n" for k, c in enumerate(cells))
    t = table(text, sep=sep)
    d = prepare_training(t, impute="median")
    ic = d.schema.inputs[0]
    assert ic.kind == "numeric" and ic.number_format["decimal"] == decimal
    got = encode_features(t, d.schema)[:, 0] * ic.std + ic.mean
    want = np.where(np.isnan(values), ic.impute, values)
    assert np.allclose(got, want)


@pytest.mark.parametrize("cells", [["A-12", "B-7", "C-1"], ["1,2,3", "4,5,6", "7,8,9"],
                                   ["1 kg", "300 g", "2 kg"]])
def test_number_look_alikes_stay_text(cells):
    text = "x,y\n" + "".join(f'"{c}",{k}\n' for k, c in enumerate(cells))
    assert kinds(prepare_training(table(text)))["x"] == "categorical"


def test_semicolon_files_read_decimal_commas():
    d = prepare_training(table("x;y\n1,5;1\n2,25;2\n3;3\n", sep=";"))
    assert kinds(d) == {"x": "numeric"}
    assert d.X[:, 0] * d.schema.inputs[0].std + d.schema.inputs[0].mean == pytest.approx([1.5, 2.25, 3])


# --------------------------------------------------------------- identifiers, caps, codes ---
def test_identifier_like_text_is_left_out_unless_named():
    text = rows("name,city,y", 40, lambda i: f"person{i},c{i % 3},{i}")
    d = prepare_training(table(text))
    assert kinds(d) == {"city": "categorical"}
    assert d.schema.ignored == [{"name": "name",
                                 "reason": "identifier-like: 40 distinct values in 40 rows"}]
    named = prepare_training(table(text), features=["name", "city"])
    assert kinds(named) == {"name": "categorical", "city": "categorical"}
    few = prepare_training(table(rows("name,y", 10, lambda i: f"p{i},{i}")))   # too few rows to tell
    assert kinds(few) == {"name": "categorical"}


def test_high_cardinality_text_is_capped_with_an_other_bucket():
    # v0 ×20, v1 ×10, v2..v9 once each: with 3 categories, v0, v1 and 'other'.
    cells = ["v0"] * 20 + ["v1"] * 10 + [f"v{k}" for k in range(2, 10)]
    text = "c,y\n" + "".join(f"{c},{k % 2}\n" for k, c in enumerate(cells))
    d = prepare_training(table(text), max_categories=3, task="regression")
    ic = d.schema.inputs[0]
    assert ic.vocabulary == ["v0", "v1"] and ic.other and d.feature_names == ["c=v0", "c=v1", "c=(other)"]
    assert d.X[-1].tolist() == [0, 0, 1]
    unseen = encode_features(table("c,y\nnever,0\nv1,1\n"), d.schema)
    assert unseen.tolist() == [[0, 0, 1], [0, 1, 0]]
    # by default up to 100 values, each its own input (56 US states fit; 30 did not)
    states = [f"s{k}" for k in range(56)] * 4
    d = prepare_training(table("c,y\n" + "".join(f"{c},{k}\n" for k, c in enumerate(states))))
    assert len(d.schema.inputs[0].vocabulary) == 56 and not d.schema.inputs[0].other


def test_integer_codes_stay_numeric_unless_declared_categorical():
    text = rows("code,y", 60, lambda i: f"{100 + i % 40},{i}")
    assert kinds(prepare_training(table(text))) == {"code": "numeric"}
    d = prepare_training(table(text), categorical=["code"])
    assert kinds(d) == {"code": "categorical"} and d.schema.inputs[0].vocabulary[:2] == ["100", "101"]


# ---------------------------------------------------------------------------- missing values ---
def test_missing_inputs_are_filled_with_an_indicator_where_common():
    # b misses 12 of 40 cells (an indicator), a misses 1 (no indicator); 3 targets missing.
    def row(i):
        a = "" if i == 5 else str(i)
        b = "" if i % 10 < 3 else str(i % 7)
        y = "" if i in (1, 2, 3) else str(i)
        return f"{a},{b},{y}"
    t = table(rows("a,b,y", 40, row))
    d = prepare_training(t, impute="median")
    assert d.feature_names == ["a", "b", "b.missing"] and d.rows_without_target == 3
    assert len(d.X) == 37
    assert d.X[:, 2].sum() == 12 - 2   # rows 1 and 2 have no b and no target
    ic = d.schema.inputs[1]
    assert ic.impute == float(np.median([i % 7 for i in range(40) if i % 10 >= 3 and i not in (1, 2, 3)]))


# ---------------------------------------------------------- schema and predict, through the CLI ---
TRAIN = rows("when,name,price,city,y", 120, lambda i: (
    f"{1 + i % 28:02d}/{1 + i % 12:02d}/2019 {i % 24:02d}:30,person{i},"
    f"\"{'' if i % 9 == 0 else f'${1000 + 37 * i:,}'}\",c{i % 45},{'' if i % 31 == 0 else i % 3}"))


def test_cli_states_the_columns_and_predict_applies_the_schema(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(TRAIN)
    r = CliRunner().invoke(cli, ["train", "t.csv", "--epochs", "2", "--val-split", "0",
                                 "--task", "regression", "--max-categories", "10", "-o", "m.npz"])
    assert r.exit_code == 0, r.output
    first = r.stderr.splitlines()[0]
    assert first.startswith("Columns: when: date (DD/MM/YYYY hh:mm) → month_sin")
    for said in ("price: numbers written with '$'", "price: missing → median, plus a missing indicator",
                 "city: 9 most frequent values one-hot, the rest as 'other'",
                 "name: not an input (identifier-like", "4 rows without a target left out"):
        assert said in first
    j = json.loads(CliRunner().invoke(cli, ["train", "t.csv", "--epochs", "1", "--val-split", "0",
                                           "--task", "regression", "-q", "--json", "-o", "j.npz"]).stdout)
    assert j["rows_without_target"] == 4 and j["columns"][0].startswith("when: date")
    info = CliRunner().invoke(cli, ["info", "m.npz"])
    assert "columns    when: date (DD/MM/YYYY hh:mm)" in info.output
    assert json.loads(CliRunner().invoke(cli, ["info", "m.npz", "--json"]).output)["columns"]

    from nncli.model_io import load_model
    from nncli.pipeline import prepare_data
    model = load_model("m.npz")
    schema = model.schema
    assert Schema.from_dict(json.loads(json.dumps(schema.to_dict()))).to_dict() == schema.to_dict()
    # The training rows, encoded again from the file, are what training encoded.
    data = prepare_data(read_csv("t.csv"), model.meta["config"], split=False)
    kept = read_csv("t.csv")
    X = encode_features(kept, schema)[data.kept]
    assert np.array_equal(X, data.X)
    # predict reads a new file the same way: the name column is not needed, dates parse.
    (tmp_path / "new.csv").write_text('when,price,city\n03/04/2019 05:30,"$2,000",c3\n'
                                      '04/05/2019 06:30,,nowhere\n')
    p = CliRunner().invoke(cli, ["predict", "m.npz", "new.csv"])
    assert p.exit_code == 0, p.output
    assert len(p.stdout.splitlines()) == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("when,price,city\n2019-04-03,1,c3\n")
    p = CliRunner().invoke(cli, ["predict", "m.npz", "bad.csv"])
    assert p.exit_code == 1
    assert "cannot read '2019-04-03' as a date in the form training saw (DD/MM/YYYY hh:mm)" in p.stderr


def test_schema_refuses_a_damaged_date_input():
    d = prepare_training(table(rows("when,y", 30, lambda i: f"2020-01-{1 + i % 28:02d},{i}")))
    good = d.schema.to_dict()
    assert Schema.from_dict(good).inputs[0].parts == d.schema.inputs[0].parts
    for change in ({"format": "%Q"}, {"parts": ["century"]}, {"mean": [0.0]}, {"indicator": 1}):
        doc = json.loads(json.dumps(good))
        doc["inputs"][0].update(change)
        with pytest.raises(ModelFileError):
            Schema.from_dict(doc)
    old = json.loads(json.dumps(good))
    old["version"] = 1
    del old["ignored"]
    with pytest.raises(ModelFileError, match="kind must be one of numeric, boolean, categorical"):
        Schema.from_dict(old)


def test_a_formatted_regression_target_is_read_the_same_at_evaluate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.csv").write_text(rows("size,price", 40, lambda i: f'{i},"${1000 + 50 * i:,}"'))
    r = CliRunner().invoke(cli, ["train", "p.csv", "--epochs", "3", "-q", "-o", "p.npz"])
    assert r.exit_code == 0, r.output
    from nncli.model_io import load_model
    schema = load_model("p.npz").schema
    assert schema.task == "regression" and schema.target_format == [{"decimal": ".", "units": ["$"]}]
    assert schema.target_mean[0] == pytest.approx(1000 + 50 * 19.5, rel=0.05)
    ev = CliRunner().invoke(cli, ["evaluate", "p.npz", "p.csv", "--json"])
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)["rows"] == 40
    doc = schema.to_dict()
    doc["targets"]["number_format"] = [{"decimal": ";", "units": []}]
    with pytest.raises(ModelFileError, match="decimal must be"):
        Schema.from_dict(doc)


def test_a_version_1_schema_still_reads():
    d = prepare_training(table(rows("a,c,y", 30, lambda i: f"{i},{'xy'[i % 2]},{i % 3}")))
    doc = json.loads(json.dumps(d.schema.to_dict()))
    doc["version"] = 1
    del doc["ignored"]
    for c in doc["inputs"]:
        c.pop("indicator", None)
        c.pop("other", None)
    old = Schema.from_dict(doc)
    assert [c.kind for c in old.inputs] == ["numeric", "categorical"] and old.n_features == 3
    assert np.array_equal(encode_features(table(rows("a,c,y", 30, lambda i: f"{i},{'xy'[i % 2]},0")), old), d.X)


def test_the_first_line_names_the_id_column(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "i.csv").write_text(rows("key,a,y", 30, lambda i: f"k{i},{i},{i % 2}"))
    r = CliRunner().invoke(cli, ["train", "i.csv", "--id", "key", "--epochs", "1", "-o", "i.npz"])
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines()[0] == "Columns: key: the id column (--id), not an input."
