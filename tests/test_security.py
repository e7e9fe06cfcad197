"""Security rules of docs/security.md, enforced: no shell, no unsafe deserialisation in our code;
commands from the config reach the engine as one argument list, never a shell; names derived
from user input stay inside their folder."""

from __future__ import annotations

import ast
import shlex
import sys
from pathlib import Path

import pytest

from pyacemaker.dispatch import store_files
from pyacemaker.dynamics.md import LammpsEngine
from pyacemaker.explore import folder_name
from pyacemaker.oracle.espresso import TimedEspressoProfile

ROOT = Path(__file__).parents[1]
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader"}
# module.function calls that run a shell or deserialise arbitrary objects
FORBIDDEN_CALLS = {
    ("os", "system"), ("os", "popen"), ("pickle", "load"), ("pickle", "loads"),
    ("pd", "read_pickle"), ("pandas", "read_pickle"), ("joblib", "load"), ("torch", "load"),
    ("marshal", "loads"), ("shelve", "open"), ("yaml", "unsafe_load"), ("yaml", "full_load"),
    ("dill", "load"), ("dill", "loads"),
}


def unsafe_calls(source: str) -> list[str]:
    """``line: what`` for every shell, eval/exec and unsafe deserialisation call in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func, keywords = node.func, {k.arg: k.value for k in node.keywords}
        name = (func.value.id, func.attr) if (isinstance(func, ast.Attribute)
                                              and isinstance(func.value, ast.Name)) else None
        shell = keywords.get("shell")
        if shell is not None and not (isinstance(shell, ast.Constant) and shell.value is False):
            found.append(f"{node.lineno}: shell=")
        if isinstance(func, ast.Name) and func.id in ("eval", "exec"):
            found.append(f"{node.lineno}: {func.id}()")
        if name in FORBIDDEN_CALLS:
            found.append(f"{node.lineno}: {'.'.join(name)}()")
        if name == ("yaml", "load"):
            loader = keywords.get("Loader", node.args[1] if len(node.args) > 1 else None)
            loader_name = getattr(loader, "attr", getattr(loader, "id", None))
            if loader_name not in SAFE_YAML_LOADERS:
                found.append(f"{node.lineno}: yaml.load without SafeLoader")
        allow = keywords.get("allow_pickle")
        if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
            found.append(f"{node.lineno}: allow_pickle=")
    return found


def python_files() -> list[Path]:
    files = [*(ROOT / "src").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]
    return sorted(f for f in files if "site-packages" not in f.parts)


def test_the_checker_finds_what_it_looks_for():
    bad = ("subprocess.run(cmd, shell=True)\nos.system('ls')\nyaml.load(text)\n"
           "yaml.load(text, Loader=yaml.Loader)\npickle.loads(b)\npd.read_pickle(p)\n"
           "np.load(p, allow_pickle=True)\neval('1')\nsubprocess.run(c, shell=flag)\n")
    assert len(unsafe_calls(bad)) == 9
    good = ("subprocess.run(['ls'], shell=False)\nyaml.safe_load(t)\nyaml.load(t, Loader=yaml.SafeLoader)\n"
            "df.to_pickle(p)\nnp.load(p)\n")
    assert unsafe_calls(good) == []


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_shell_eval_or_unsafe_deserialisation(path):
    assert unsafe_calls(path.read_text()) == [], path


def argv_recorder(tmp_path: Path) -> tuple[str, Path, Path]:
    """A config command with shell metacharacters: a Python program recording its argv, then
    ``; touch MARKER``, ``$(...)`` and a pipe, which a shell would run."""
    record, marker = tmp_path / "argv.txt", tmp_path / "pwned"
    script = tmp_path / "record.py"
    script.write_text(f"import sys, pathlib\npathlib.Path({str(record)!r}).write_text(repr(sys.argv))\n")
    command = (f"{shlex.quote(sys.executable)} {shlex.quote(str(script))} ; touch {marker} "
               f"$(touch {marker}) | touch {marker}")
    return command, record, marker


def test_lammps_command_from_config_is_one_argument_list(tmp_path):
    command, record, marker = argv_recorder(tmp_path)
    LammpsEngine(command).check()  # the recorder exits 0 and prints no ERROR: "passes"
    argv = ast.literal_eval(record.read_text())
    assert argv[1:5] == [";", "touch", str(marker), "$(touch"]
    assert not marker.exists()


def test_pw_command_from_config_is_one_argument_list(tmp_path):
    command, record, marker = argv_recorder(tmp_path)
    TimedEspressoProfile(command, tmp_path, timeout_s=60).run(tmp_path, "espresso.pwi", "out")
    argv = ast.literal_eval(record.read_text())
    assert ";" in argv and "|" in argv and "espresso.pwi" in argv
    assert not marker.exists()


@pytest.mark.parametrize("name", ["..", ".", "../../etc/cron.d/x", "/etc/passwd", ".hidden",
                                  "00_file:../../x_300K", "a/b\\c", "", "\x00"])
def test_folder_names_from_user_input_stay_inside(name, tmp_path):
    folder = folder_name(name)
    assert folder not in ("", ".", "..") and "/" not in folder and not folder.startswith(".")
    assert (tmp_path / folder).resolve().parent == tmp_path.resolve()


@pytest.mark.parametrize("name", ["../escaped", "a/../../escaped", "/tmp/escaped"])
def test_task_files_cannot_escape_their_folder(name, tmp_path):
    target = tmp_path / "workdir" / "iterations"
    with pytest.raises(ValueError, match="outside"):
        store_files(target, {name: b"x"})
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()
    store_files(target, {"run/log.lammps": b"ok"})
    assert (target / "run" / "log.lammps").read_bytes() == b"ok"
