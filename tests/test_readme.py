"""The README's commands and examples are the ones that work."""

import concurrent.futures
import os
import re
import subprocess
import sys

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(root):
    return FENCE.findall((root / "README.md").read_text())


def test_first_block_is_two_commands_setup_and_tests(root):
    lang, body = blocks(root)[0]
    lines = [line for line in body.splitlines() if line.strip()]
    assert len(lines) == 2
    assert lines[0].endswith("lshprof run")
    assert "pytest" in lines[1]
    for line in lines:
        assert line.startswith("python3 -m venv .venv && ")


def test_ci_runs_the_readme_test_command(root):
    script = (root / ".ci" / "run").read_text()
    # .ci/run reads the command from the README instead of repeating it
    awk = re.search(r"test_cmd=\$\((.*)\)\n", script).group(1)
    r = subprocess.run(["bash", "-c", awk], capture_output=True, text=True, cwd=root)
    assert r.stdout.strip() == [l for l in blocks(root)[0][1].splitlines() if l.strip()][1]


def test_python_examples_run(root, tmp_path):
    """Each example in a fresh interpreter, in a folder of its own; they run side by side
    (each is mostly start-up), every CPU busy."""
    examples = [body for lang, body in blocks(root) if lang == "python"]
    assert examples

    def run(i, body):
        cwd = tmp_path / f"example-{i}"
        cwd.mkdir()
        return subprocess.run([sys.executable, "-c", body], capture_output=True, text=True,
                              cwd=cwd, timeout=300)

    with concurrent.futures.ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        results = list(pool.map(run, range(len(examples)), examples))
    for body, r in zip(examples, results):
        assert r.returncode == 0, (body, r.stderr)


def test_toml_examples_are_valid_scenarios(root, tmp_path):
    from lshprof.experiment.scenario import load_scenario

    examples = [body for lang, body in blocks(root) if lang == "toml"]
    assert examples
    for i, body in enumerate(examples):
        f = tmp_path / f"example{i}.toml"
        f.write_text(body)
        s = load_scenario(str(f))
        assert s.cells()


def test_ci_examples_use_real_commands_and_options(root):
    """The GitHub Actions workflow and the baseline update steps parse as lshprof
    commands (every sub-command and option exists), and name the committed baseline."""
    import shlex

    from lshprof.cli.app import build_parser

    text = "".join(body for lang, body in blocks(root) if lang in ("yaml", "sh"))
    commands = [line.split("run: ", 1)[-1].split("#")[0].strip()
                for line in text.splitlines() if "lshprof " in line.split("#")[0]]
    checked = [c for c in commands if c.startswith("lshprof ") and " bench" not in c]
    assert {shlex.split(c)[1] for c in checked} >= {"run", "check", "baseline"}
    parser = build_parser()
    for c in checked:
        parser.parse_args(shlex.split(c)[1:])  # exits 2 on an unknown option
    assert (root / ".ci" / "baseline.json").exists() and ".ci/baseline.json" in text
    from lshprof.bench.speed import build_parser as speed_parser

    suite = [c for c in commands if c.startswith("lshprof bench --suite")]
    assert suite
    for c in suite:
        speed_parser().parse_args(shlex.split(c)[2:])
