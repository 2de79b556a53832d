#!/usr/bin/env python
"""Rewrite nbs/10_train.ipynb's `parameters` cell from the settings' declarations (04_config): every TrainConfig field,
its default and its help, then every registered method's own options, as tests/test_train.py checks. Run it after
adding or changing a setting or an option."""

import json
from dataclasses import fields
from pathlib import Path

from mlo_mae.config import METHODS, MLOConfig, TrainConfig

NB = Path(__file__).resolve().parent.parent / 'nbs' / '10_train.ipynb'
# one parameter per line with its help beside it, as papermill's --help-notebook shows them: ruff format leaves it
FORMATTER_OFF = ['# fmt: off']


def parameter_lines() -> list:
    own = [f for f in fields(TrainConfig) if f.name not in MLOConfig.__dataclass_fields__]
    method = [f for f in fields(TrainConfig) if f.name in MLOConfig.__dataclass_fields__ and f.name != 'options']
    line = lambda name, f, what='': f"{name} = {f.default!r}  # {what}{f.metadata['help']}"
    options = [line(k, f, f'{name}: ') for name, cls in METHODS.items() for k, f in cls.options.items()]
    return [
        *FORMATTER_OFF,
        '# the run (04_config)',
        *(line(f.name, f) for f in own),
        "# the method's settings (04_config, 05_mlo)",
        *(line(f.name, f) for f in method),
        "# each method's own settings (its options)",
        *options,
    ]


if __name__ == '__main__':
    nb = json.loads(NB.read_text())
    cell = next(c for c in nb['cells'] if 'parameters' in c['metadata'].get('tags', []))
    lines = parameter_lines()
    cell['source'] = [l + '\n' for l in lines[:-1]] + [lines[-1]]
    NB.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
    print(f"{NB.name}: {len(lines) - 3 - len(FORMATTER_OFF)} parameters")
