"""Which Quarto `make report` renders with: the PATH's, else the `render` extra's (PyPI's quarto-cli), else a note."""

import os
import stat

from rbmlib.report import pipeline


def _executable(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _environment(monkeypatch, tmp_path, *, script=False, package=False):
    """An empty PATH, and an environment whose scripts folder holds quarto-cli's `quarto` script and
    whose packages hold quarto_cli with its binary, as asked."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    scripts = tmp_path / "env" / "bin"
    scripts.mkdir(parents=True)
    monkeypatch.setattr(pipeline.sysconfig, "get_path", lambda name: str(scripts))
    if script:
        _executable(scripts / "quarto")
    if package:
        (tmp_path / "site" / "quarto_cli").mkdir(parents=True)
        (tmp_path / "site" / "quarto_cli" / "__init__.py").write_text("")
        _executable(tmp_path / "site" / "quarto_cli" / "bin" / "quarto")
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return scripts


def test_quarto_on_the_path_comes_first(monkeypatch, tmp_path):
    _environment(monkeypatch, tmp_path, script=True, package=True)
    on_path = _executable(tmp_path / "bin" / "quarto")
    monkeypatch.setenv("PATH", f"{on_path.parent}{os.pathsep}{os.environ['PATH']}")
    assert pipeline.find_quarto() == str(on_path)


def test_else_the_render_extra_s_quarto_binary_not_its_wrapper(monkeypatch, tmp_path):
    # quarto-cli's `quarto` script calls the binary and drops its exit status: a failed render would pass.
    _environment(monkeypatch, tmp_path, script=True, package=True)
    assert pipeline.find_quarto() == str(tmp_path / "site" / "quarto_cli" / "bin" / "quarto")


def test_else_the_environment_s_quarto_script(monkeypatch, tmp_path):
    scripts = _environment(monkeypatch, tmp_path, script=True)
    assert pipeline.find_quarto() == str(scripts / "quarto")


def test_without_quarto_the_note_says_what_to_install(monkeypatch, tmp_path, capsys):
    _environment(monkeypatch, tmp_path)
    assert pipeline.find_quarto() is None
    assert pipeline.render_manuscript() is False
    note = capsys.readouterr().out
    assert "pip install -e .[render]" in note and "https://quarto.org/docs/get-started/" in note
