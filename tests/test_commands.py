"""The ``fdsiamfc`` console command: every tool is a subcommand, and the scripts in tools/ are its shims."""
import re
import sys
import tomllib

import pytest

from conftest import REPO
from siamfc.commands import COMMANDS, main


def test_pyproject_installs_the_command():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"fdsiamfc": "siamfc.commands:main"}
    assert {"onnx", "onnxruntime", "onnxscript"} <= set(project["optional-dependencies"]["deploy"])
    assert any(d.startswith("vot-trax") for d in project["optional-dependencies"]["vot"])


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_subcommand_has_help(name, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit) as done:
        main([name, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: fdsiamfc {name} ")


def test_usage_lists_every_subcommand(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(re.search(rf"^  {re.escape(name)} ", out, re.M) for name in COMMANDS)


def test_unknown_subcommand_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as done:
        main(["trian"])
    assert done.value.code == 2
    assert capsys.readouterr().err.startswith("error: fdsiamfc: unknown command 'trian'")


def test_every_tool_script_is_a_shim_of_a_subcommand():
    modules = {module for module, _ in COMMANDS.values()}
    shims = {p.stem: p.read_text() for p in (REPO / "tools").glob("*.py") if p.stem != "vot_tracker"}
    for stem, text in shims.items():
        imported = re.search(r"^from siamfc\.commands\.(\w+) import main$", text, re.M)
        assert imported and imported.group(1) in modules, stem
    assert len(shims) == len(modules)
