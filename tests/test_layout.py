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


PAPERMILL = ('10_train', '41_fig_masks', '42_fig_gradcam', '43_fig_tsne', '45_fig_ablations', '46_known_answer')
_EXPORTED = ('#| export', '#| exports', '#| exporti', '#| exec_doc')


def _cells_docs_would_run_out_of_order(nb_path: Path):
    """Code cells nbdev's docs step executes although they are not exports: any cell holding an import (anywhere in it).
    Only an imports-only cell is safe there: a test cell with an import runs without the cells before it."""
    import json

    nb = json.loads(nb_path.read_text())
    head = ''.join(nb['cells'][0]['source']) if nb['cells'] and nb['cells'][0]['cell_type'] == 'raw' else ''
    if 'skip_showdoc: true' in head:
        return []
    found = []
    for i, cell in enumerate(nb['cells']):
        src = ''.join(cell['source'])
        directives = [line.strip() for line in src.splitlines() if line.startswith('#|')]
        if cell['cell_type'] != 'code' or set(directives) & {*_EXPORTED, '#| eval: false'}:
            continue
        code = '\n'.join('' if line.lstrip().startswith(('%', '!')) else line for line in src.splitlines())
        tree = ast.parse(code)
        imports = (ast.Import, ast.ImportFrom)
        if any(isinstance(n, imports) for n in ast.walk(tree)) and not all(isinstance(n, imports) for n in tree.body):
            found.append(f"{nb_path.name} cell {i}: {src.splitlines()[0][:70]}")
    return found


def test_docs_run_no_test_cell_out_of_order():
    "nbdev_docs executes every cell that imports: those cells hold imports only, and the papermill notebooks skip the step."
    found = [f for p in sorted((ROOT / 'nbs').glob('*.ipynb')) for f in _cells_docs_would_run_out_of_order(p)]
    assert not found, '\n'.join(found)
    for name in PAPERMILL:
        first = (ROOT / 'nbs' / f'{name}.ipynb').read_text()
        assert 'skip_showdoc: true' in first, f"{name}: its first cell should be the raw frontmatter skip_showdoc: true"


def test_the_docs_check_finds_a_mixed_cell(tmp_path):
    "The check can fail: a test cell that imports and tests is found; an imports-only cell and an exported one are not."
    import json

    cells = [
        {'cell_type': 'code', 'source': ['#| export\n', 'import os\n', 'x = 1']},
        {'cell_type': 'code', 'source': ['import os\n', 'from pathlib import Path']},
        {'cell_type': 'code', 'source': ['with open("f") as f:\n', '    from PIL import Image']},
    ]
    nb = tmp_path / 'x.ipynb'
    nb.write_text(json.dumps({'cells': cells}))
    assert [f.split(':')[0] for f in _cells_docs_would_run_out_of_order(nb)] == ['x.ipynb cell 2']


def test_the_readme_names_the_folders_the_main_job_and_make_figures_write():
    "The main job also writes its untrained control's folder; make_figures writes into the tracked figures/ by default."
    readme = (ROOT / 'README.md').read_text()
    train_nb = (ROOT / 'nbs' / '10_train.ipynb').read_text()
    assert "+ '-untrained'" in train_nb and 'runs/cifar10_mini-mlo_mae-smoke-seed0-untrained/' in readme
    tool = (ROOT / 'tools' / 'make_figures.py').read_text()
    assert "default=str(ROOT / 'figures')" in tool and 'into the tracked `figures/`' in readme


def _undefined_names(folder: Path) -> str:
    "ruff's undefined-name findings (F821) in the .py files of `folder`, as text ('' when none)."
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, '-m', 'ruff', 'check', '--isolated', '--select', 'F821', '--output-format', 'concise', str(folder)],
        capture_output=True,
        text=True,
    )
    return '' if out.returncode == 0 else out.stdout


def test_no_exported_module_uses_an_undefined_name():
    # a notebook's test cells can define a name the exported cell uses: nbdev_test passes, the module fails
    found = _undefined_names(ROOT / 'mlo_mae')
    assert not found, found


def test_the_check_finds_an_undefined_name(tmp_path):
    (tmp_path / 'm.py').write_text('def f():\n    return ev.knn_accuracy()\n')
    assert 'ev' in _undefined_names(tmp_path)
