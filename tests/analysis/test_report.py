"""The HTML report built from stored results of the `ci` scenario: every figure with the right
traces and the measured values, "not measured" where data is missing, escaping, offline."""

import json
import re
import shutil
from html.parser import HTMLParser

import pytest

from lshprof.cli import main
from lshprof.analysis.report import FIGURES, build_report, write_report
from lshprof.experiment.results import load_results, read_run
from lshprof.analysis.summary import summarize


# -- helpers --------------------------------------------------------------------------------------
def figures_in(page: str) -> dict[int, dict]:
    """``{figure number: {"data": traces, "layout": layout}}`` of every plot in the page."""
    dec, comma = json.JSONDecoder(), re.compile(r"\s*,\s*")
    out = {}
    for m in re.finditer(r'Plotly\.newPlot\(\s*"plot-(\d+)",\s*', page):
        data, end = dec.raw_decode(page, m.end())
        layout, _ = dec.raw_decode(page, comma.match(page, end).end())
        out[int(m.group(1))] = {"data": data, "layout": layout}
    return out


def section(page: str, num: int) -> str:
    start = page.index(f"<section class=figure id=fig-{num}>")
    return page[start:page.index("</section>", start)]


def names(fig) -> list[str]:
    return [t.get("name") for t in fig["data"]]


class Sources(HTMLParser):
    """Every src/href attribute, and every <script> with its attributes."""

    def __init__(self):
        super().__init__()
        self.refs, self.scripts = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs)
        for key in ("src", "href", "data", "action", "poster"):
            if attrs.get(key):
                self.refs.append((tag, key, attrs[key]))


def sources(page: str) -> Sources:
    p = Sources()
    p.feed(page)
    return p


def cli(*args) -> int:
    return main([str(a) for a in args])


# -- stored results of the ci scenario --------------------------------------------------------------
@pytest.fixture(scope="module")
def ci_runs(tmp_path_factory, ci_run_two_seeds, ci_run):
    """Two stored runs of the ci scenario: two seeds (error bars), and the whole scenario;
    copies of the shared ones (tests/conftest.py), named ci-a and ci-b for the report."""
    base = tmp_path_factory.mktemp("runs")
    a, b = base / "ci-a", base / "ci-b"
    shutil.copytree(ci_run_two_seeds, a)  # lshprof run ci -q --seeds 0 1 --no-report
    shutil.copytree(ci_run, b)            # lshprof run ci -q
    assert not (a / "report.html").exists()
    return a, b


@pytest.fixture(scope="module")
def ci_page(ci_runs):
    return build_report([ci_runs[0]])


def test_every_figure_of_a_ci_run(ci_runs, ci_page):
    figs = figures_in(ci_page)
    assert sorted(figs) == [1, 2, 3, 4, 5, 6, 7]          # 8 needs several runs
    summary = summarize(load_results(ci_runs[0]))
    methods = list(dict.fromkeys(summary["method"]))
    assert methods == ["dense", "dropout", "adaptive_dropout", "wta", "topk", "lsh"]
    sparse = [m for m in methods if m != "dense"]

    # 1: one line per method, dense as reference, values and error bars from the summary
    f1 = figs[1]
    assert names(f1) == ["dense (reference)"] + sparse
    for t in f1["data"][1:]:
        row = summary[summary["method"] == t["name"]].iloc[0]
        assert t["x"] == [0.125] and t["y"] == [pytest.approx(row["accuracy"])]
        assert t["error_y"]["array"] == [pytest.approx(row["accuracy_sd"])]
    dense_acc = summary.loc[summary["method"] == "dense", "accuracy"].iloc[0]
    assert f1["data"][0]["y"] == [pytest.approx(dense_acc)] * 2
    assert f1["layout"]["xaxis"]["type"] == "log"

    # 2: stacked MACs per sample by phase; they add up to the summary's MACs per sample
    f2 = figs[2]
    assert f2["layout"]["barmode"] == "stack"
    phases = [n for n in names(f2) if n != "dense layers of the same shapes"]
    assert {"forward", "backward input", "backward weight", "select", "hash"} <= set(phases)
    labels = f2["data"][0]["x"]
    assert labels == ["dense"] + [f"{m} f=0.125" for m in sparse]
    for i, m in enumerate(methods):
        stacked = sum((t["y"][i] or 0) for t in f2["data"] if t["type"] == "bar")
        row = summary[summary["method"] == m].iloc[0]
        assert stacked == pytest.approx(row["macs_per_sample"])
    dense_eq = f2["data"][-1]["y"]
    assert dense_eq == [pytest.approx(dense_eq[0])] * len(methods)   # same shapes everywhere
    assert any(b["args"][0] == {"yaxis.type": "log"}
               for menu in f2["layout"]["updatemenus"] for b in menu["buttons"])

    # 3: stacked seconds by phase, plus time per sample (µs) with deviations
    f3 = figs[3]
    assert {"forward", "backward", "update", "select"} <= set(names(f3))
    per_sample = next(t for t in f3["data"] if t["name"] == "time per sample")
    assert per_sample["y"] == [pytest.approx(v * 1e6) for v in summary["time_per_sample_s"]]
    assert per_sample["error_y"]["array"] is not None

    # 4: energy per sample, marked estimated, and energy vs MACs per method
    f4 = figs[4]
    assert f4["data"][0]["name"] == "energy per sample (estimated)"
    assert names(f4)[1:] == methods
    assert "ESTIMATED" in section(ci_page, 4)

    # 5: the diagonal, then time (and estimated energy) share per sparse method
    f5 = figs[5]
    assert f5["data"][0]["name"].startswith("ideal")
    assert f5["data"][0]["x"] == f5["data"][0]["y"]
    assert names(f5)[1:] == [n for m in sparse for n in (f"{m}: time",
                                                         f"{m}: energy (estimated)")]
    lsh_time = next(t for t in f5["data"] if t["name"] == "lsh: time")
    row = summary[summary["method"] == "lsh"].iloc[0]
    assert lsh_time["x"] == [pytest.approx(row["mac_share"])]
    assert lsh_time["y"] == [pytest.approx(row["time_share"])]
    assert lsh_time["customdata"] == [pytest.approx(row["mac_share"] / row["time_share"])]

    # 6: LSH recall and mass, with the random-set baselines
    f6 = figs[6]
    assert names(f6) == ["lsh: recall of the true top-k", "lsh: recall of a random set",
                         "lsh: activation mass captured", "lsh: mass of a random set",
                         "lsh: mass of the true top-k (ceiling)"]
    recall, random_recall = f6["data"][0]["y"][0], f6["data"][1]["y"][0]
    assert 0 <= random_recall < recall <= 1

    # 7: loss and accuracy per epoch, one pair of lines per method and fraction
    f7 = figs[7]
    assert len(f7["data"]) == 2 * len(methods)
    assert all(t["x"] == [1, 2, 3, 4, 5, 6] for t in f7["data"])
    for num, title in FIGURES.items():
        # 9-11, the hash study, only for a run of several LSH settings (ci has one)
        assert (f"<h3>{num}. {title}</h3>" in ci_page) == (num <= 8), num
    # 8: not measured, and said so
    assert "not measured" in section(ci_page, 8) and "one run given" in section(ci_page, 8)


def test_header_claims_and_tables(ci_runs, ci_page):
    meta = read_run(ci_runs[0])
    for text in ("ci", meta["lshprof_version"], meta["machine"]["cpu_model"],
                 meta["started_at"], "estimated, never measured"):
        assert text in ci_page
    claims = re.findall(r'<tr data-claim="(\w+)">', ci_page)
    assert claims == ["macs", "accuracy", "baselines", "time", "energy", "scaling"]
    verdicts = re.findall(r'<td class="verdict [\w-]+">([^<]+)</td>', ci_page)
    assert len(verdicts) == 6
    # estimated energy is never judged, and there is no thread sweep
    assert verdicts[4] == "not measured" and verdicts[5] == "not measured"
    # every cell of the run is in the raw table, and the metadata is there
    assert ci_page.count("<tr><td data-v=\"dense\">dense</td>") == 1 + 2   # summary + 2 seeds
    assert "energy J (est.)" in ci_page
    assert "run.json</summary><pre>" in ci_page


def test_two_runs_compared(ci_runs):
    page = build_report(list(ci_runs))
    figs = figures_in(page)
    assert sorted(figs) == list(range(1, 9))
    f8 = figs[8]
    assert len(f8["data"]) == 2 * 4                    # 2 runs x 4 panels
    assert {t["name"] for t in f8["data"]} == {"ci-a", "ci-b"}
    # figures 1-7 show one run at a time, with a menu to switch
    menu = next(m for m in figs[1]["layout"]["updatemenus"] if m["type"] == "dropdown")
    assert [b["label"] for b in menu["buttons"]] == ["ci-a", "ci-b"]
    visible = [t.get("visible", True) for t in figs[1]["data"]]
    assert visible == [True] * 6 + [False] * 6
    assert page.count("<tr data-claim=") == 12 and page.count("<td>ci-b</td>") == 6


# -- missing measurements -------------------------------------------------------------------------
def test_missing_measurements_say_not_measured(ci_dense_run):
    page = build_report([ci_dense_run])  # lshprof run ci -q --methods dense --energy none
    figs = figures_in(page)
    assert sorted(figs) == [1, 2, 3, 7]
    for num, why in ((4, "energy was not measured"), (5, "needs a dense cell"),
                     (6, "no LSH method"), (8, "one run given")):
        sec = section(page, num)
        assert "<div class=missing><b>not measured</b>" in sec and why in sec, num
    assert set(re.findall(r'<td class="verdict [\w-]+">([^<]+)</td>', page)) == {"not measured"}


def test_quality_off_says_how_to_turn_it_on(root, tmp_path):
    scen = tmp_path / "noq.toml"
    text = root.joinpath("scenarios", "ci.toml").read_text()
    scen.write_text(text.replace("quality = true", "quality = false"))
    assert "quality = false" in scen.read_text()
    out = tmp_path / "noq"
    assert cli("run", scen, "-o", out, "-q", "--methods", "dense", "lsh", "--no-report") == 0
    sec = section(build_report([out]), 6)
    assert "quality = true" in sec and "not measured" in sec


# -- escaping and offline -------------------------------------------------------------------------
EVIL = "<script>alert(1)</script>"


def test_text_from_scenarios_and_metadata_is_escaped(ci_runs, tmp_path):
    run = tmp_path / "evil"
    shutil.copytree(ci_runs[1], run)
    meta = json.loads((run / "run.json").read_text())
    meta["scenario"]["name"] = EVIL
    meta["scenario"]["description"] = f"<img src=x onerror=alert(2)> {EVIL}"
    meta["machine"]["cpu_model"] = EVIL
    (run / "run.json").write_text(json.dumps(meta))
    for f in (run / "cells").glob("*.json"):  # the stored rows: one file per cell
        doc = json.loads(f.read_text())
        for row in doc["rows"]:
            if row["method"] == "lsh":
                row["method"] = "<b>lsh</b>" + EVIL
        f.write_text(json.dumps(doc))
    page = build_report([run])
    body = page[page.index("</head>"):]
    assert EVIL not in body and "<img src=x" not in body and "<b>lsh</b>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<title>lshprof report: &lt;script&gt;" in page
    # in the figures the label is escaped too (plotly shows entities as text)
    f1 = figures_in(page)[1]
    assert "&lt;b&gt;lsh&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in names(f1)
    # the only scripts are plotly.js, the plots and the table sorter: none came from the data
    assert all(not s for s in sources(page).scripts)
    assert len(sources(page).scripts) == 1 + 7 + 1


def test_offline_no_request_to_any_host(ci_runs, ci_page, tmp_path):
    src = sources(ci_page)
    assert src.refs == []                                  # nothing loaded from anywhere
    assert ci_page.count("Plotly.newPlot(") == 7
    import plotly.offline
    assert ci_page.count(plotly.offline.get_plotlyjs()[:200]) == 1   # plotly.js embedded once
    # beside: plotly.js written once next to the pages, loaded by a relative path
    p1 = write_report([ci_runs[0]], tmp_path / "r" / "one.html", plotlyjs="beside")
    p2 = write_report([ci_runs[1]], tmp_path / "r" / "two.html", plotlyjs="beside")
    js = sorted(x.name for x in (tmp_path / "r").glob("*.js"))
    assert len(js) == 1
    for p in (p1, p2):
        page = p.read_text()
        refs = sources(page).refs
        assert refs == [("script", "src", js[0])]
        assert not re.match(r"^[a-z]+:", refs[0][2]) and p.stat().st_size < 200_000


# -- the command line -----------------------------------------------------------------------------
def test_report_command(ci_runs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "pages" / "ci.html"
    assert cli("report", *ci_runs, "-o", out) == 0
    assert f"report: {out}" in capsys.readouterr().out
    size = out.stat().st_size
    assert 1_000_000 < size < 10_000_000
    assert sorted(figures_in(out.read_text())) == list(range(1, 9))
    assert [p.name for p in out.parent.iterdir()] == ["ci.html"]      # no temp file left
    # default target: reports/RUN.html under the working folder
    monkeypatch.chdir(tmp_path)
    assert cli("report", ci_runs[0]) == 0
    assert (tmp_path / "reports" / "ci-a.html").exists()


@pytest.mark.parametrize("case", ["no-run", "not-a-run", "out-is-dir", "out-under-file"])
def test_report_bad_input_is_one_line_and_exit_2(case, ci_runs, tmp_path, capsys):
    target = tmp_path / "r.html"
    runs = [ci_runs[0]]
    if case == "no-run":
        runs = [tmp_path / "missing"]
    elif case == "not-a-run":
        (tmp_path / "empty").mkdir()
        runs = [tmp_path / "empty"]
    elif case == "out-is-dir":
        target = tmp_path / "adir"
        target.mkdir()
    else:
        (tmp_path / "afile").write_text("x")
        target = tmp_path / "afile" / "r.html"
    assert cli("report", *runs, "-o", target) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lshprof report: error: ") and "\n" not in err
    assert not (tmp_path / "r.html").exists()


def test_report_of_a_run_without_rows_is_refused(tmp_path, capsys):
    run = tmp_path / "empty-run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"format": "lshprof-run", "version": 1,
                                              "status": "running", "rows": 0}))
    assert cli("report", run, "-o", tmp_path / "r.html") == 2
    assert "no finished measurements" in capsys.readouterr().err


def test_run_writes_its_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli("run", "ci", "-o", out, "-q", "--methods", "dense", "lsh") == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    page = (out / "report.html").read_text()
    assert sorted(figures_in(page)) == [1, 2, 3, 4, 5, 6, 7]
    # re-running a finished run writes the report again, and nothing else changes
    rows = {f.name: f.read_bytes() for f in (out / "cells").iterdir()}
    (out / "report.html").unlink()
    assert cli("run", "ci", "-o", out, "-q", "--methods", "dense", "lsh") == 0
    assert (out / "report.html").exists()
    assert {f.name: f.read_bytes() for f in (out / "cells").iterdir()} == rows


def test_thread_sweep_is_judged_and_labelled(root, tmp_path):
    text = (root / "scenarios" / "ci.toml").read_text()
    scen = tmp_path / "threads.toml"
    assert "seeds = [0, 1, 2]" in text  # one seed, two thread counts instead
    scen.write_text(text.replace("seeds = [0, 1, 2]", "seeds = [0]\nthreads = [1, 2]"))
    out = tmp_path / "threads"
    assert cli("run", scen, "-o", out, "-q", "--methods", "dense", "lsh", "--no-report") == 0
    page = build_report([out])
    row = re.search(r'<tr data-claim="scaling">.*?</tr>', page, re.S).group(0)
    assert "from 1 to 2 threads" in row
    assert re.search(r'class="verdict (holds|does-not-hold)"', row)
    figs = figures_in(page)
    assert figs[2]["data"][0]["x"] == ["dense @1t", "lsh f=0.125 @1t", "dense @2t",
                                       "lsh f=0.125 @2t"]
    # accuracy and curves are drawn at the fewest threads: one line per method, not two
    assert names(figs[1]) == ["dense (reference)", "lsh"]
    assert len(figs[7]["data"]) == 4
