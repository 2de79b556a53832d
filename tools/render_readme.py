#!/usr/bin/env python
"""Render README.md from nbs/index.ipynb offline (nbdev_readme needs quarto, which we cannot install).

Markdown cells are copied as they are; code cells become ```python blocks (cells marked `#| hide` are
left out). A line `<!-- study-table: FOLDER -->` becomes the table of that study's `study_summary.csv`
(written by `python -m mlo_mae.study`), so result tables are generated from the measured CSVs, never typed.
`--check` exits 1 if README.md differs from what would be written.
"""

import csv
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's package: its registry names the columns


def columns() -> list:
    "[(measure column, README header)] of the registered accuracy measures (Measure.percent), in registration order."
    from mlo_mae.evaluate_run import registered_measures

    return [(c, m.short) for c, m in registered_measures(percent=True).items()]


def _cell(r, key='mean', spread='std'):
    if r is None or r.get(key) in (None, ''):
        return ''
    m, s = float(r[key]), r.get(spread)
    return f"{m:.1f} ± {float(s):.1f}" if s not in (None, '') else f"{m:.1f}"


def study_table(folder) -> str:
    "Markdown: one row per (setting, method): each accuracy's mean ± std over seeds, and its paired difference to the reference."
    path = ROOT / folder / 'study_summary.csv'
    if not path.exists():
        return f"*(no study results yet: {folder}/study_summary.csv does not exist; run `python -m mlo_mae.study {folder} ...`)*"
    rows = list(csv.DictReader(path.open()))
    get = {(r['setting'], r['method'], r['measure']): r for r in rows}
    keys = list(dict.fromkeys((r['setting'], r['method'], r['label']) for r in rows))
    cols = [c for c in columns() if any(r['measure'] == c[0] for r in rows)]
    ref = rows[0]['reference']
    head = ['setting', 'method', 'seeds'] + [n for _, n in cols] + [f'{n}: minus {ref} (paired)' for _, n in cols]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for setting, method, label in keys:
        n = next((get[setting, method, m]['n'] for m, _ in cols if (setting, method, m) in get), '')
        vals = [_cell(get.get((setting, method, m))) for m, _ in cols]
        diffs = [
            _cell(get.get((setting, method, m)), 'diff_mean', 'diff_std') if method != ref else '' for m, _ in cols
        ]
        lines.append('| ' + ' | '.join([setting or '(default)', label, str(n)] + vals + diffs) + ' |')
    return '\n'.join(lines)


def render(nb_path=ROOT / 'nbs' / 'index.ipynb'):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = ''.join(cell['source']).strip()
        if not src or src.startswith('#| hide'):
            continue
        if cell['cell_type'] == 'markdown':
            src = re.sub(r'<!-- study-table: (\S+) -->', lambda m: study_table(m.group(1)), src)
        parts.append(src if cell['cell_type'] == 'markdown' else f"```python\n{src}\n```")
    return (
        '<!-- generated from nbs/index.ipynb by tools/render_readme.py: edit the notebook, not this file -->\n\n'
        + '\n\n'.join(parts)
        + '\n'
    )


if __name__ == '__main__':
    text, readme = render(), ROOT / 'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md is out of date: run python tools/render_readme.py')
    else:
        readme.write_text(text, encoding='utf-8')
