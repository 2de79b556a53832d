#!/usr/bin/env python
"""Render README.md from nbs/index.ipynb offline (nbdev_readme needs quarto, which we cannot install).

Markdown cells are copied as they are; code cells become ```python blocks (cells marked `#| hide` are
left out). `--check` exits 1 if README.md differs from what would be written.
"""
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def render(nb_path=ROOT/'nbs'/'index.ipynb'):
    nb = json.loads(Path(nb_path).read_text(encoding='utf-8'))
    parts = []
    for cell in nb['cells']:
        src = ''.join(cell['source']).strip()
        if not src or src.startswith('#| hide'): continue
        parts.append(src if cell['cell_type'] == 'markdown' else f"```python\n{src}\n```")
    return '<!-- generated from nbs/index.ipynb by tools/render_readme.py: edit the notebook, not this file -->\n\n' + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    text, readme = render(), ROOT/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md is out of date: run python tools/render_readme.py')
    else:
        readme.write_text(text, encoding='utf-8')
