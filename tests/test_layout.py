"""The package's shape, read from its source: no module imports another's private (`_name`) names, and no module imports
one that stands above it (the registries import their extensions by name, on the first lookup)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path):
    "(module imported, names taken) of every `from X import ...` of the file, X resolved against the package."
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ''
            if node.level:   # a relative import inside the package
                module = 'mlo_mae' + ('.' + module if module else '')
            yield module, [a.name for a in node.names]


def _private_imports():
    files = sorted((ROOT / 'mlo_mae').glob('*.py')) + sorted((ROOT / 'tools').glob('*.py'))
    for path in files:
        if path.name == '_modidx.py':
            continue
        for module, names in _imports(path):
            if module.startswith('mlo_mae'):
                for name in names:
                    if name.startswith('_') and not name.startswith('__'):
                        yield f"{path.relative_to(ROOT)}: from {module} import {name}"


def test_no_module_imports_a_private_name_of_another():
    found = list(_private_imports())
    assert not found, '\n'.join(found)


def test_the_check_finds_a_private_import(tmp_path):
    "The check can fail: a file that takes a private name is found."
    f = tmp_path / 'x.py'
    f.write_text('from .runs import _plan\nfrom mlo_mae.data import load_dataset\n')
    assert list(_imports(f)) == [('mlo_mae.runs', ['_plan']), ('mlo_mae.data', ['load_dataset'])]


MAX_FUNCTION_LINES = 60


def _long_functions(path: Path, limit: int = MAX_FUNCTION_LINES):
    "`file:line name (n lines)` of every function of the file longer than `limit` lines, docstring included."
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                yield f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name}:{node.lineno} {node.name} ({n} lines)"


def test_no_function_over_60_lines():
    files = sorted((ROOT / 'mlo_mae').glob('*.py')) + sorted((ROOT / 'tools').glob('*.py'))
    found = [f for path in files for f in _long_functions(path)]
    assert not found, '\n'.join(found)


def test_the_check_finds_a_long_function(tmp_path):
    "The check can fail: a 61-line function is found, a 60-line one is not."
    f = tmp_path / 'x.py'
    f.write_text('def long():\n' + '    x = 1\n' * 60 + '\n\ndef short():\n' + '    x = 1\n' * 59)
    assert [s.split(' ', 1)[1] for s in _long_functions(f)] == ['long (61 lines)']


def _readme_commands():
    "The README's two set-up commands, as .ci/run reads them (the first ```sh block)."
    lines, inside = [], False
    for line in (ROOT / 'README.md').read_text().splitlines():
        if line.startswith('```sh'):
            inside = True
        elif line.startswith('```') and inside:
            break
        elif inside:
            lines.append(line)
    return lines


def test_the_test_command_runs_one_thread_per_process():
    "Each part of the README's test command carries OMP_NUM_THREADS=1: parallel notebooks and pytest workers each take one per core otherwise."
    install, test = _readme_commands()
    parts = [p.strip() for p in test.split('&&')]
    assert len(parts) == 2 and all(p.startswith('OMP_NUM_THREADS=1 ') for p in parts), test
