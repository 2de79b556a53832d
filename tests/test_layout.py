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
