"""The benchmark's tables: real public data that installs offline with a package.

Each loader returns a `Table`: a pandas DataFrame written to CSV as a user would have it
(dates as text, missing cells empty), the target, the task, and the column roles the
reference pipeline (the one a competent scikit-learn user writes by hand) needs: which
columns are dates, text, or names it drops. nncli sees only the CSV and the target.

Sources: scikit-learn's bundled sets, statsmodels' bundled datasets, vega_datasets' local
files (`pip install statsmodels vega_datasets`). Where a column is derived from the bundled
data, the loader says so in `note`.

The kinds of table issue 10 describes, and where each is: dates (seattle-temps: timestamps;
stocks: day-first; co2: weekly, with missing targets), names and ids (fertility; airports:
codes, names, cities), text with missing values and more values than a small cap (airports:
56 states, 12 gaps), a year code that must stay a number and a skewed target (grunfeld),
missing numbers (fertility), survey codes (anes96, fair), clean numbers (breast-cancer,
diabetes).
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Table:
    name: str
    frame: object  # pandas.DataFrame, target included
    target: str
    task: str  # 'classification' | 'regression'
    dates: list = field(default_factory=list)  # date columns (text in the CSV)
    text: list = field(default_factory=list)  # categorical text columns
    names: list = field(default_factory=list)  # identifier-like columns the reference drops
    note: str = ""


def _sample(df, n, seed=0):
    """A fixed subsample of n rows (the same every run), keeping the benchmark short."""
    return df if len(df) <= n else df.sample(n=n, random_state=seed).sort_index()


def seattle_temps():
    from vega_datasets import local_data
    df = local_data.seattle_temps()
    df["date"] = df["date"].dt.strftime("%Y-%m-%d %H:%M")
    return Table("seattle-temps", _sample(df, 2000)[["date", "temp"]], "temp", "regression",
                 dates=["date"], note="hourly temperature from a timestamp; 2,000 of 8,759 rows")


def stocks():
    from vega_datasets import local_data
    df = local_data.stocks()
    df["date"] = df["date"].dt.strftime("%d/%m/%Y")  # day-first, as many spreadsheets write it
    return Table("stocks", df[["symbol", "date", "price"]], "price", "regression",
                 dates=["date"], text=["symbol"], note="monthly price, day-first dates")


def airports():
    from vega_datasets import local_data
    df = local_data.airports()
    return Table("airports", df[["iata", "name", "city", "state", "country", "longitude", "latitude"]],
                 "latitude", "regression", text=["state", "country"], names=["iata", "name", "city"],
                 note="latitude from longitude and the state: codes, names, 56 states, missing text")


def co2():
    import statsmodels.api as sm
    df = sm.datasets.co2.load_pandas().data
    df = df.reset_index().rename(columns={"index": "week"})
    df["week"] = df["week"].dt.strftime("%Y-%m-%d")
    return Table("co2", df[["week", "co2"]], "co2", "regression", dates=["week"],
                 note="weekly Mauna Loa CO2; 59 weeks without a reading (missing target)")


def grunfeld():
    import statsmodels.api as sm
    df = sm.datasets.grunfeld.load_pandas().data
    df["year"] = df["year"].astype(int)
    return Table("grunfeld", df[["firm", "year", "value", "capital", "invest"]], "invest",
                 "regression", text=["firm"], note="skewed target; a year code stays a number")


def fertility():
    import statsmodels.api as sm
    df = sm.datasets.fertility.load_pandas().data
    keep = ["Country Name", "Country Code"] + [str(y) for y in range(1960, 2001, 2)]
    df = df.rename(columns={"2011": "rate_2011"})  # a target named "2011" would read as an index
    return Table("fertility", df[keep + ["rate_2011"]], "rate_2011", "regression", names=["Country Name", "Country Code"],
                 note="2011 fertility from 1960-2000 (every other year); names; many missing cells")


def anes96():
    import statsmodels.api as sm
    df = sm.datasets.anes96.load_pandas().data
    df = df.drop(columns=["logpopul"])
    df["vote"] = np.where(df["vote"] == 1, "Dole", "Clinton")
    return Table("anes96", df, "vote", "classification", note="1996 vote from survey codes")


def fair():
    import statsmodels.api as sm
    df = sm.datasets.fair.load_pandas().data
    df["affair"] = np.where(df["affairs"] > 0, "yes", "no")  # derived: the usual binary target
    df = df.drop(columns=["affairs"])
    return Table("fair", _sample(df, 2500), "affair", "classification",
                 note="derived binary target (affairs > 0), 32% positive; 2,500 of 6,366 rows")


def breast_cancer():
    from sklearn.datasets import load_breast_cancer
    b = load_breast_cancer(as_frame=True)
    df = b.frame.copy()
    df["target"] = np.where(df["target"] == 1, "benign", "malignant")
    return Table("breast-cancer", df, "target", "classification", note="clean numeric (scikit-learn)")


def diabetes():
    from sklearn.datasets import load_diabetes
    df = load_diabetes(as_frame=True, scaled=False).frame
    return Table("diabetes", df, "target", "regression", note="clean numeric (scikit-learn)")


ALL = [seattle_temps, stocks, airports, co2, grunfeld, fertility, anes96, fair, breast_cancer, diabetes]
