"""Build the report: check the data, execute the notebooks, render the manuscript.

    python -m rbmlib.report                   # paper preset (notebooks/params/paper.yml)
    python -m rbmlib.report --preset smoke    # a few minutes; copies in notebooks/executed-smoke/
    python -m rbmlib.report --force           # re-execute even the notebooks that are up to date
    python -m rbmlib.report --only 02_rbm_anatomy --no-render
    python -m rbmlib.report --store-checked-outputs   # the outputs nbval compares (below)
    python -m rbmlib.report --write-variables         # only _variables.yml (below)

Steps, in order:

1. the data: Fashion-MNIST found and verified (:func:`rbmlib.data.ensure_data`);
2. every ``notebooks/NN_*.ipynb``, in name order, executed by papermill with the
   preset's parameters into an executed copy (``notebooks/executed/`` for the
   paper preset, which the manuscript embeds). A notebook is skipped when its
   executed copy was made from the same source cells with the same parameters
   (recorded in the copy's metadata; content, not file times, so a fresh git
   checkout does not re-run everything). A failed run leaves the previous copy
   in place and the failed one beside it as ``.NAME.failed.ipynb``; a run that
   was killed leaves ``.NAME.partial.ipynb``, which the next run removes. The
   copy records the thread count, CPU type and versions it ran with, and its
   outputs are stripped of this machine's absolute paths;
3. for the preset the manuscript shows (:data:`RENDERED_PRESET`): ``_variables.yml``,
   the numbers that the article's prose quotes as ``{{< var name >}}``, written
   from that preset's committed results (:func:`rbmlib.report.variables.manuscript_variables`), then
   ``quarto render`` when Quarto is installed, else a note on how to install it.

The presets are the tuning presets (:data:`rbmlib.tuning.presets.PRESETS`); each
has its notebook parameters in ``notebooks/params/<name>.yml``. The source
notebooks keep the smoke preset as their defaults: CI runs them under nbval
(``pytest --nbval-lax``), which compares the cells tagged
:data:`CHECK_OUTPUT_TAG` with the outputs stored in them. Those outputs are the
only ones a source notebook keeps; ``--store-checked-outputs`` executes the
notebooks at their defaults and stores them (:func:`store_checked_outputs`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from rbmlib import paths
from rbmlib._environ import temporary_environ
from rbmlib.report.variables import VARIABLES_FILE, write_variables
from rbmlib.tuning.presets import PRESETS  # one set of presets for tuning and report (no torch import)

QUARTO_URL = "https://quarto.org/docs/get-started/"
METADATA_KEY = "rbm-report"
#: The preset whose executed copies (notebooks/executed/) and results the manuscript shows.
RENDERED_PRESET = paths.RENDERED_PRESET
#: nbval's tag (``pytest --nbval-lax``): the cell's stored outputs must be reproduced.
CHECK_OUTPUT_TAG = "nbval-check-output"

#: Set while a notebook runs; the kernel inherits them from this process.
KERNEL_ENVIRONMENT = {
    # The notebooks' tqdm bars would be stored in the executed copy as stderr;
    # papermill's per-cell bar in the terminal shows progress instead.
    "TQDM_DISABLE": "1",
    # tqdm.auto in a kernel looks for ipywidgets (not a dependency), warns with the
    # path of its own file, then uses the text bars that TQDM_DISABLE turns off.
    "PYTHONWARNINGS": "ignore:IProgress not found",
}


class NotebookError(RuntimeError):
    """A notebook failed to execute; the message names the partly executed copy."""


def source_notebooks(folder=None) -> list[Path]:
    """The notebooks of the report, ``NN_name.ipynb``, in execution order."""
    folder = Path(paths.NOTEBOOKS_DIR if folder is None else folder)
    return sorted(folder.glob("[0-9][0-9]_*.ipynb"))


def params_file(preset: str) -> Path:
    """The notebook parameters of a preset: ``notebooks/params/<preset>.yml``."""
    return Path(paths.NOTEBOOK_PARAMS_DIR) / f"{preset}.yml"


#: A parameter file's key naming another preset whose file it starts from (one level).
EXTENDS_KEY = "extends"


def load_parameters(preset: str) -> dict:
    """``{notebook name: {parameter: value}}`` from ``notebooks/params/<preset>.yml``.

    A file with ``extends: <other preset>`` starts from that preset's
    parameters and sets, parameter by parameter, the ones it names (so
    protocol 2 states only where it differs from the paper's settings,
    which stay written once).

    Raises
    ------
    ValueError
        For an unknown preset, a preset without its file, a file that is not
        a mapping of mappings, or an ``extends`` that itself extends.
    """
    import yaml

    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}; use one of {', '.join(PRESETS)}.")
    path = params_file(preset)
    if not path.exists():  # a new tuning preset must say what its notebooks run with
        raise ValueError(f"The {preset} preset has no {_rel(path)}; create it ({{}} keeps every default).")
    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{path} must map notebook names to parameter mappings.")
    base = content.pop(EXTENDS_KEY, None)
    if not all(isinstance(v, dict) for v in content.values() if v is not None):
        raise ValueError(f"{path} must map notebook names to parameter mappings.")
    own = {name: dict(values or {}) for name, values in content.items()}
    if base is None:
        return own
    base = str(base)
    chained = base == preset or (params_file(base).exists()
                                 and EXTENDS_KEY in (yaml.safe_load(params_file(base).read_text()) or {}))
    if chained:
        raise ValueError(f"{_rel(path)} extends {base!r}: name a preset whose file has no `extends`.")
    inherited = load_parameters(base)
    return {name: {**inherited.get(name, {}), **own.get(name, {})} for name in {**inherited, **own}}


def source_digest(notebook: Path) -> str:
    """SHA-256 of a notebook's cell types and sources (not its metadata or outputs)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    content = json.dumps([[c["cell_type"], "".join(c["source"])] for c in cells])
    return hashlib.sha256(content.encode()).hexdigest()


def stale_reason(source: Path, executed: Path, parameters: dict) -> str | None:
    """Why ``executed`` must be (re)made from ``source``, or None when it is up to date."""
    if not executed.exists():
        return "no executed copy yet"
    try:
        record = json.loads(executed.read_text())["metadata"].get(METADATA_KEY, {})
    except (ValueError, KeyError):
        return "executed copy unreadable"
    if record.get("source_sha256") != source_digest(source):
        return "source changed"
    if record.get("parameters") != json.loads(json.dumps(parameters)):
        return "parameters changed"
    return None


def partial_path(executed: Path) -> Path:
    """Where papermill writes ``executed`` while it runs (hidden, ignored by git)."""
    return Path(executed).with_name(f".{Path(executed).stem}.partial.ipynb")


def remove_partials(folder) -> list[Path]:
    """Delete the partial copies that killed runs left in ``folder``; returns them.

    A run that ends, well or badly, moves its partial copy away; one still
    there was cut short (SIGKILL, power) and can neither be resumed nor trusted.
    """
    stale = sorted(Path(folder).glob(".*.partial.ipynb"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def kernel_environment(values=None):
    """Set ``values`` (default :data:`KERNEL_ENVIRONMENT`) in ``os.environ`` for the kernel to inherit.

    Restores the previous values on exit. A warnings filter already in
    ``PYTHONWARNINGS`` is kept, the new ones added after it.
    """
    values = dict(KERNEL_ENVIRONMENT if values is None else values)
    if os.environ.get("PYTHONWARNINGS") and "PYTHONWARNINGS" in values:
        values["PYTHONWARNINGS"] = f"{os.environ['PYTHONWARNINGS']},{values['PYTHONWARNINGS']}"
    with temporary_environ(values):
        yield


def machine_paths() -> dict[str, str]:
    """This machine's absolute paths that must not reach a committed notebook, each with its stand-in.

    The installed packages (``<packages>``), the virtual environment
    (``<venv>``), the project root (``.``: the kernel runs there), the home
    folder (``~``) and the temporary folder (``<tmp>``), each also as its
    resolved path when that differs.
    """
    packages = {*site.getsitepackages(), site.getusersitepackages(),
                sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    stand_ins = {}
    for stand_in, folders in (("<packages>", packages), ("<venv>", {sys.prefix}), (".", {paths.ROOT}),
                              ("~", {Path.home()}), ("<tmp>", {tempfile.gettempdir(), "/tmp"})):
        for folder in folders:
            for form in {str(folder), str(Path(folder).resolve())}:
                if len(form) > 1:  # never "/" itself
                    stand_ins.setdefault(form, stand_in)
    return stand_ins


def scrub_machine_paths(nb, stand_ins=None):
    """Replace this machine's absolute paths in the text outputs of ``nb`` (in place); returns ``nb``.

    Stream text, error messages and tracebacks and ``text/*`` display data are
    scrubbed; images are left alone (base64 may spell ``/tmp/`` by chance).
    Longer paths are replaced first, so a package's file under the project's
    ``.venv`` reads ``<packages>/tqdm/auto.py``.

    Parameters
    ----------
    nb : nbformat.NotebookNode
    stand_ins : mapping of path -> str, optional
        Default :func:`machine_paths`.
    """
    stand_ins = machine_paths() if stand_ins is None else stand_ins
    # A path ends where no further name character follows: /tmp matches /tmp/x, never /tmpfs.
    pattern = re.compile("(" + "|".join(re.escape(p) for p in sorted(stand_ins, key=len, reverse=True))
                         + r")(?![\w.-])")

    def scrub(value):
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return pattern.sub(lambda m: stand_ins[m.group(1)], value) if isinstance(value, str) else value

    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for key in ("text", "ename", "evalue", "traceback"):
                if key in output:
                    output[key] = scrub(output[key])
            for mime in [m for m in output.get("data", {}) if m.startswith("text/")]:
                output["data"][mime] = scrub(output["data"][mime])
    return nb


def execution_record(nb) -> dict:
    """What an executed copy's numbers depend on besides seeds and parameters (see README, Determinism).

    ``threads`` is ``OMP_NUM_THREADS`` as the kernel inherited it, or the count
    torch picks in this process when it is unset (the kernel, on the same
    machine, picks the same); ``python`` is the kernel's own version.
    """
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads is None:
        import torch  # here only: seconds to import, and only needed when the count is not pinned

        threads = torch.get_num_threads()
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    return {
        "threads": int(threads) if str(threads).strip().isdigit() else threads,
        "machine": platform.machine(),
        "python": nb.metadata.get("language_info", {}).get("version", platform.python_version()),
        "torch": torch_version,
    }


def execute_notebook(source, executed, parameters, *, preset="smoke", kernel_name="python3") -> Path:
    """Execute ``source`` with ``parameters`` into ``executed`` (written only on success).

    The kernel runs with :data:`KERNEL_ENVIRONMENT`; papermill shows a bar per
    cell on stderr. The executed copy records the preset, the parameters, the
    digest of the source and :func:`execution_record` in
    ``metadata["rbm-report"]``, and its outputs are passed through
    :func:`scrub_machine_paths`.

    Raises
    ------
    NotebookError
        If a cell fails; ``executed`` is left as it was.
    """
    import nbformat
    import papermill as pm

    source, executed = Path(source), Path(executed)
    digest = source_digest(source)  # before running: an edit made meanwhile must not look executed
    executed.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(executed)
    failed = executed.with_name(f".{executed.stem}.failed.ipynb")
    partial.unlink(missing_ok=True)  # left by a killed run: never mistake it for this run's output
    try:
        with kernel_environment():
            # disable=False: this bar is for the terminal, whatever TQDM_DISABLE says.
            bar = {"desc": f"    {source.stem}", "disable": False}
            pm.execute_notebook(str(source), str(partial), parameters=parameters, kernel_name=kernel_name,
                                cwd=str(paths.ROOT), progress_bar=bar)
    except Exception as exc:  # papermill's execution error, a dead kernel, ...
        if partial.exists():
            os.replace(partial, failed)
        raise NotebookError(
            f"{source.name} failed ({type(exc).__name__}: {str(exc).strip()[-2000:]}). "
            f"The partly executed notebook is {failed}."
        ) from exc
    nb = nbformat.read(partial, as_version=4)
    # papermill records absolute paths (and the temporary output name): keep them portable.
    recorded = nb.metadata.get("papermill", {})
    recorded.update({k: _rel(p) for k, p in (("input_path", source), ("output_path", executed)) if k in recorded})
    nb.metadata[METADATA_KEY] = {
        "preset": preset,
        "parameters": json.loads(json.dumps(parameters)),
        "source_sha256": digest,
        **execution_record(nb),
    }
    scrub_machine_paths(nb)
    nbformat.write(nb, partial)
    os.replace(partial, executed)
    failed.unlink(missing_ok=True)
    return executed


def is_checked(cell) -> bool:
    """Whether nbval compares this cell's outputs: a code cell tagged :data:`CHECK_OUTPUT_TAG`."""
    return cell["cell_type"] == "code" and CHECK_OUTPUT_TAG in cell.get("metadata", {}).get("tags", [])


def keep_checked_outputs(source_nb, executed_nb):
    """Give ``source_nb`` the outputs of ``executed_nb`` in its tagged cells and none elsewhere (in place).

    Cells are matched by id. A tagged cell gets its code-cell number as its
    execution count: nbval checks only cells that look executed, and a fixed
    number keeps the stored file the same from one run to the next.

    Raises
    ------
    ValueError
        If a tagged cell has no counterpart in ``executed_nb``.
    """
    executed = {cell.get("id"): cell for cell in executed_nb.cells}
    code_cells = [cell for cell in source_nb.cells if cell["cell_type"] == "code"]
    for number, cell in enumerate(code_cells, start=1):
        if not is_checked(cell):
            cell["outputs"], cell["execution_count"] = [], None
            continue
        if cell.get("id") not in executed:
            raise ValueError(f"tagged cell {cell.get('id')!r} is missing from the executed notebook")
        cell["outputs"] = executed[cell["id"]].get("outputs", [])
        cell["execution_count"] = number
        for output in cell["outputs"]:
            if output["output_type"] == "execute_result":
                output["execution_count"] = number
    return source_nb


def store_checked_outputs(notebooks=None, *, kernel_name="python3") -> list[Path]:
    """Execute source notebooks at their own (smoke) defaults and store the outputs of their tagged cells.

    Each notebook runs as :func:`execute_notebook` runs it (the kernel
    environment, this machine's paths scrubbed), into a temporary folder; then
    only the outputs of the cells tagged :data:`CHECK_OUTPUT_TAG` are written
    into the source, which keeps no other output (:func:`keep_checked_outputs`).
    These are the outputs that ``pytest --nbval-lax`` compares. Run with one
    thread (``make checked-outputs``), as CI runs the notebooks.

    Parameters
    ----------
    notebooks : list of path, optional
        Default: every source notebook (:func:`source_notebooks`).

    Returns
    -------
    list of Path
        The notebooks written.

    Raises
    ------
    NotebookError
        If a notebook fails; that source is left as it was.
    """
    import nbformat

    written = []
    for source in [Path(nb) for nb in (notebooks or source_notebooks())]:
        with tempfile.TemporaryDirectory() as folder:
            executed = execute_notebook(source, Path(folder) / source.name, {}, preset="smoke",
                                        kernel_name=kernel_name)
            executed_nb = nbformat.read(executed, as_version=4)
        nb = nbformat.read(source, as_version=4)
        nbformat.write(keep_checked_outputs(nb, executed_nb), source)
        written.append(source)
    return written


def find_quarto() -> str | None:
    """Quarto's command: ``quarto`` on the PATH, else the one that ``pip install -e .[render]``
    (PyPI's quarto-cli) put in this environment, else None.

    quarto-cli's ``quarto`` script drops Quarto's exit status, so where that
    script is found the Quarto binary it wraps is returned instead.
    """
    scripts = Path(sysconfig.get_path("scripts"))
    for name in ("quarto", str(scripts / "quarto")):
        command = shutil.which(name)
        if command is None:
            continue
        if Path(command).resolve().parent == scripts.resolve():
            import importlib.util

            spec = importlib.util.find_spec("quarto_cli")
            binary = Path(spec.origin).parent / "bin" / "quarto" if spec and spec.origin else None
            if binary is not None and binary.exists():
                return str(binary)
        return command
    return None


def render_manuscript() -> bool:
    """Run ``quarto render`` in the project root; False (and a note) when Quarto is missing."""
    quarto = find_quarto()
    if quarto is None:
        print(
            "Quarto is not installed, so the manuscript was not rendered. Install it into this "
            "environment with `pip install -e .[render]` (PyPI's quarto-cli, which downloads Quarto "
            f"from GitHub), or from {QUARTO_URL} (the Typst PDF needs nothing else); then run "
            f"`make report` again. The executed notebooks are ready in {_rel(paths.EXECUTED_DIR)}/."
        )
        return False
    subprocess.run([quarto, "render"], cwd=paths.ROOT, check=True)
    print(f"Manuscript rendered into {_rel(Path(paths.ROOT) / '_manuscript')}/ (index.html and the PDF).")
    return True


def _rel(path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(paths.ROOT).resolve()))
    except ValueError:
        return str(path)


def build(preset=RENDERED_PRESET, *, force=False, only=None, render=True, kernel_name="python3") -> int:
    """The whole pipeline; returns a process exit status."""
    from rbmlib import data

    print("[1/3] Data")
    try:
        root = data.ensure_data()
    except data.DataError as exc:
        print(f"  {exc}", file=sys.stderr)
        return 1
    print(f"  Fashion-MNIST verified in {_rel(root)}")

    parameters = load_parameters(preset)
    notebooks = source_notebooks()
    unknown = sorted(set(parameters) - {nb.stem for nb in notebooks})
    if unknown:
        print(f"  {_rel(params_file(preset))} names notebooks that do not exist: {unknown}", file=sys.stderr)
        return 1
    if only:
        missing = sorted(set(only) - {nb.stem for nb in notebooks})
        if missing:
            print(f"  --only names notebooks that do not exist: {missing}", file=sys.stderr)
            return 1
        notebooks = [nb for nb in notebooks if nb.stem in only]
    out_dir = Path(paths.executed_dir(preset))
    print(f"[2/3] Notebooks, {preset} preset ({_rel(params_file(preset))}) -> {_rel(out_dir)}/")
    for stale in remove_partials(out_dir):
        print(f"  removed {_rel(stale)}, left by a run that was killed")
    for number, source in enumerate(notebooks, start=1):
        executed = out_dir / source.name
        params = parameters.get(source.stem, {})
        reason = "--force" if force else stale_reason(source, executed, params)
        if reason is None:
            print(f"  {source.stem}: up to date, skipped (--force re-runs it)")
            continue
        print(f"  {source.stem} ({number}/{len(notebooks)}): running ({reason}), "
              f"started {time.strftime('%H:%M:%S')} ...", flush=True)
        start = time.perf_counter()
        try:
            execute_notebook(source, executed, params, preset=preset, kernel_name=kernel_name)
        except NotebookError as exc:
            print(f"  {exc}", file=sys.stderr)
            return 1
        print(f"  {source.stem}: done in {time.perf_counter() - start:.0f} s -> {_rel(executed)}")

    print("[3/3] Manuscript")
    if preset != RENDERED_PRESET:
        print(f"  skipped: the manuscript embeds the {RENDERED_PRESET} preset's copies in "
              f"{_rel(paths.EXECUTED_DIR)}/; the {preset} copies in {_rel(out_dir)}/ only check the pipeline.")
        return 0
    try:
        print(f"  {_rel(write_variables(preset))}: the numbers the prose quotes, from {preset}'s results")
    except (FileNotFoundError, ValueError) as exc:
        print(f"  {VARIABLES_FILE} not written ({exc}); run `make tune` first", file=sys.stderr)
        return 1
    if not render:
        print("  not rendered (--no-render)")
    else:
        render_manuscript()
    return 0


def store(only=None, *, kernel_name="python3") -> int:
    """``--store-checked-outputs``: :func:`store_checked_outputs` for every (or each named) notebook."""
    notebooks = source_notebooks()
    missing = sorted(set(only or ()) - {nb.stem for nb in notebooks})
    if missing:
        print(f"  --only names notebooks that do not exist: {missing}", file=sys.stderr)
        return 1
    notebooks = [nb for nb in notebooks if not only or nb.stem in only]
    print(f"Outputs of the cells tagged {CHECK_OUTPUT_TAG!r}, at the notebooks' own (smoke) defaults")
    for source in notebooks:
        start = time.perf_counter()
        try:
            store_checked_outputs([source], kernel_name=kernel_name)
        except (NotebookError, ValueError) as exc:
            print(f"  {exc}", file=sys.stderr)
            return 1
        print(f"  {_rel(source)}: stored in {time.perf_counter() - start:.0f} s")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rbmlib.report",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default=RENDERED_PRESET,
                        help=f"parameter set from notebooks/params/<preset>.yml (default: {RENDERED_PRESET})")
    parser.add_argument("--force", action="store_true", help="re-execute notebooks that are up to date")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="execute only these notebooks (e.g. 01_exploration)")
    parser.add_argument("--no-render", action="store_true", help="stop before quarto render")
    parser.add_argument("--kernel", default="python3",
                        help="Jupyter kernel (default python3: this Python's own ipykernel)")
    parser.add_argument("--write-variables", action="store_true",
                        help=f"instead of the pipeline: only write {VARIABLES_FILE} from the {RENDERED_PRESET} "
                             "preset's committed results")
    parser.add_argument("--store-checked-outputs", action="store_true",
                        help=f"instead of the pipeline: execute the source notebooks at their smoke defaults and "
                             f"store the outputs of their {CHECK_OUTPUT_TAG!r} cells in them (what nbval compares)")
    args = parser.parse_args(argv)
    if args.store_checked_outputs:
        return store(args.only, kernel_name=args.kernel)
    if args.write_variables:
        print(f"{_rel(write_variables())}: the numbers the prose quotes, from {RENDERED_PRESET}'s results")
        return 0
    return build(args.preset, force=args.force, only=args.only, render=not args.no_render,
                 kernel_name=args.kernel)


if __name__ == "__main__":
    raise SystemExit(main())
