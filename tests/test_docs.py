"""The README and the docs pages say what the code does: every `visionzoo ...` line in their shell
blocks is a real command with options it has (values of the right type), every Python block
compiles and calls names (and keywords) the package has, the README's tour runs for real on photos
made here, and the site builds in strict mode (no broken link, picture or API reference)."""
from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)
SHELL = {"bash", "sh", "shell", "console"}
FACES = ROOT.parent / "shared" / "datasets" / "faces"

pytestmark = pytest.mark.xdist_group("docs")


def blocks(kinds: set[str]) -> list[tuple[str, str]]:
    """(page name, block text) of every fenced block of these languages."""
    return [(page.relative_to(ROOT).as_posix(), m.group(2)) for page in PAGES
            for m in FENCE.finditer(page.read_text("utf-8")) if m.group(1) in kinds]


def command_lines(text: str) -> list[list[str]]:
    """Each `visionzoo ...` command of a shell block, as argv after `visionzoo` (continuations
    joined, comments dropped, `&&` / `|` / `;` separated; launchers such as torchrun included)."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        command: list[str] = []
        for token in [*tokens, "&&"]:
            if token in ("&&", "||", "|", ";"):
                if "visionzoo" in command:
                    found.append(command[command.index("visionzoo") + 1:])
                command = []
            else:
                command.append(token)
    return found


def parse(argv: list[str]) -> None:
    """Parse argv as `visionzoo` would, without running the command: unknown commands or options,
    missing arguments and values of the wrong type raise typer's usage errors."""
    from visionzoo.cli import app

    cmd = typer.main.get_command(app)
    root_options = {o for p in cmd.params for o in p.opts}
    args = [a for a in argv if a not in root_options]
    if any(a in ("--install-completion", "--show-completion", "--version", "--help") for a in argv):
        return  # the root's own eager options: they exist (checked above), and running them has effects
    ctx, name = cmd.context_class(cmd, info_name="visionzoo"), "visionzoo"
    while hasattr(cmd, "commands"):
        if args and args[0] in cmd.commands:
            name, args = args[0], args[1:]
        elif getattr(cmd, "default", None) in cmd.commands:
            name = cmd.default
        else:
            raise AssertionError(f"no command {args[:1]} under {ctx.command_path}")
        cmd = cmd.commands[name]
        ctx = cmd.context_class(cmd, info_name=name, parent=ctx)
    cmd.make_context(name, list(args), parent=ctx.parent)


SHELL_COMMANDS = [(page, argv) for page, text in blocks(SHELL) for argv in command_lines(text)]


def test_the_docs_show_commands():
    pages = {page for page, _ in SHELL_COMMANDS}
    assert "README.md" in pages and "docs/detect.md" in pages and len(SHELL_COMMANDS) > 100


@pytest.mark.parametrize("page,argv", SHELL_COMMANDS, ids=[f"{p}:{' '.join(a)[:60]}" for p, a in SHELL_COMMANDS])
def test_every_command_shown_is_a_real_command(page, argv):
    parse(argv)


def test_the_checker_catches_a_stale_option():
    with pytest.raises(Exception, match="No such option"):
        parse(["detect", "train", "data/", "--out", "run", "--no-such-option"])
    with pytest.raises(Exception, match="valid integer"):
        parse(["classify", "photos/", "--top-k", "three"])
    with pytest.raises(AssertionError, match="no command"):
        parse(["detect", "nonsense", "x"])


def _imports(tree: ast.AST) -> dict[str, object]:
    """The names a snippet binds to visionzoo modules (`import visionzoo`, `from visionzoo.tasks import detect`)."""
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "visionzoo":
                    names[a.asname or "visionzoo"] = importlib.import_module("visionzoo")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("visionzoo"):
            module = importlib.import_module(node.module)
            for a in node.names:
                try:
                    names[a.asname or a.name] = getattr(module, a.name)
                except AttributeError:  # a submodule: from visionzoo.tasks import detect
                    names[a.asname or a.name] = importlib.import_module(f"{node.module}.{a.name}")
    return names


def _resolve(node: ast.AST, names: dict[str, object]):
    if isinstance(node, ast.Name):
        return names.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, names)
        if owner is not None and inspect.ismodule(owner):
            assert hasattr(owner, node.attr), f"{owner.__name__} has no {node.attr}"
            return getattr(owner, node.attr)
    return None


PYTHON_BLOCKS = blocks({"python"})


def check_snippet(page: str, code: str) -> None:
    """The snippet compiles; its visionzoo names exist; its calls use keywords the function has."""
    tree = ast.parse(code, filename=page)
    names = _imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            _resolve(node, names)
        if isinstance(node, ast.Call):
            fn = _resolve(node.func, names)
            if not callable(fn) or inspect.isclass(fn):
                continue
            params = inspect.signature(fn).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                continue
            for kw in node.keywords:
                assert kw.arg is None or kw.arg in params, f"{page}: {fn.__qualname__}() has no keyword {kw.arg}"


@pytest.mark.parametrize("page,code", PYTHON_BLOCKS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(PYTHON_BLOCKS)])
def test_every_python_snippet_uses_real_names_and_keywords(page, code):
    check_snippet(page, code)


def test_the_snippet_checker_catches_stale_names():
    with pytest.raises(AssertionError, match="no_such_function"):
        check_snippet("x.md", "import visionzoo\nvisionzoo.no_such_function()")
    with pytest.raises(AssertionError, match="no keyword topk"):
        check_snippet("x.md", "import visionzoo\nvisionzoo.classify(['photos/'], topk=3)")
    with pytest.raises(AssertionError, match="no_such"):
        check_snippet("x.md", "from visionzoo.tasks import detect\ndetect.no_such('run')")


TOUR_RUNS = ("classify", "extract", "search", "dedup", "faces")  # the tour's commands that need no trained run


@pytest.fixture(scope="module")
def tour_dir(tmp_path_factory):
    """photos/, query.jpg, people/NAME/ and party.jpg, as the README's tour names them."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("tour")
    (root / "photos").mkdir()
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        Image.fromarray(getattr(data, name)()).save(root / "photos" / f"{name}.jpg", quality=90)
    shutil.copy(root / "photos" / "chelsea.jpg", root / "query.jpg")
    if FACES.is_dir():
        for person in ("paul_rudd", "kate_siegel"):
            shutil.copytree(FACES / person, root / "people" / person)
        shutil.copy(FACES / "multiface.jpg", root / "party.jpg")
    return root


@pytest.mark.slow
def test_the_readme_tour_runs(tour_dir):
    text = next(code for page, code in blocks(SHELL) if page == "README.md" and "visionzoo classify" in code)
    ran = []
    for argv in command_lines(text):
        if argv[0] not in TOUR_RUNS or (argv[0] == "faces" and not (tour_dir / "people").is_dir()):
            continue
        proc = subprocess.run([sys.executable, "-m", "visionzoo", *argv], cwd=tour_dir, capture_output=True, text=True,
                              env={**os.environ, "VISIONZOO_OFFLINE": "1"})
        assert proc.returncode == 0, (argv, proc.stderr[-2000:])
        ran.append(argv[0])
    assert {"classify", "extract", "search", "dedup"} <= set(ran)
    assert (tour_dir / "grid.png").stat().st_size > 0 and (tour_dir / "neighbours.png").stat().st_size > 0
    assert '"label"' in (tour_dir / "labels.json").read_text()


def test_the_readme_python_runs(tour_dir, monkeypatch):
    code = next(code for page, code in blocks({"python"}) if page == "README.md")
    monkeypatch.chdir(tour_dir)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    coffee = next(r for r in scope["results"] if r.path.endswith("coffee.jpg"))
    assert coffee.predictions[0].label == "espresso"
    assert "<img" in scope["results"]._repr_html_()  # in Jupyter: the photos with their bars


@pytest.mark.slow
def test_the_site_builds_strict(tmp_path):
    """The strict build (notebooks not run here: `make docs` runs them) fails on a broken link, a
    missing picture, an unknown API name or a command-line reference that cannot be made."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    env = {**os.environ, "VISIONZOO_DOCS_EXECUTE": "false", "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cli = (tmp_path / "site" / "reference" / "cli.html").read_text("utf-8")
    assert "visionzoo detect train" in cli and "Example: visionzoo" in cli
    assert "find_duplicates" in (tmp_path / "site" / "reference" / "api.html").read_text("utf-8")


def test_no_page_speaks_of_issues_or_history():
    for page in PAGES:
        text = page.read_text("utf-8").lower()
        assert not re.search(r"\bissues? *#?\d+|the issue (named|asked|said)|\bgh-\d+", text), page
        assert "old default" not in text and "(old)" not in text, page


@pytest.mark.parametrize("words,expected", [("visionzoo det", {"detect"}),
                                            ("visionzoo detect ", {"train", "predict", "evaluate"}),
                                            ("visionzoo detect train --time-b", {"--time-budget"})])
def test_shell_completion_completes_commands_and_options(words, expected):
    """What `visionzoo --install-completion` installs asks the program itself, as here (bash)."""
    env = {**os.environ, "_VISIONZOO_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}
    proc = subprocess.run([sys.executable, "-c", "from visionzoo.cli import main; main()"], env=env,
                          capture_output=True, text=True)
    assert set(proc.stdout.split()) == expected, proc.stdout + proc.stderr


def test_notebooks_store_no_outputs():
    """The build runs them: a stored output could only go stale."""
    import json

    notebooks = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
    assert len(notebooks) >= 5
    for nb in notebooks:
        cells = [c for c in json.loads(nb.read_text("utf-8"))["cells"] if c["cell_type"] == "code"]
        assert cells and all(not c["outputs"] and c["execution_count"] is None for c in cells), nb.name
