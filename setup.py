"""Installs mlo_mae from settings.ini (nbdev 2 layout), without pkg_resources."""
from configparser import ConfigParser
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
lic = licenses[cfg['license']]
min_python = cfg['min_python']
requirements = cfg.get('requirements', '').split()
# every `<extra>_requirements` line is an extra: dev, tensorboard (tensorboard=True's writer), medmnist (its class names, downloads)
extras = {k[: -len('_requirements')]: v.split() for k, v in cfg.items() if k.endswith('_requirements')}
scripts = [s for s in cfg.get('console_scripts', '').split() if s]
# the package's own methods, datasets and protocols: entry points name = module, read by mlo_mae.registry
extensions = {f'mlo_mae.{kind}': [' = '.join(e.split('=')) for e in cfg.get(kind, '').split()]
              for kind in ('methods', 'datasets', 'protocols')}

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    author=cfg['author'],
    author_email=cfg['author_email'],
    license=lic[0],
    url=cfg['git_url'],
    keywords=cfg['keywords'],
    classifiers=['Development Status :: 3 - Alpha', 'Intended Audience :: Science/Research',
                 'License :: ' + lic[1], 'Natural Language :: English',
                 'Programming Language :: Python :: 3',
                 'Topic :: Scientific/Engineering :: Artificial Intelligence'],
    packages=setuptools.find_packages(include=['mlo_mae', 'mlo_mae.*']),
    include_package_data=True,
    package_data={'mlo_mae': ['assets/*']},
    python_requires='>=' + min_python,
    install_requires=requirements,
    extras_require=extras,
    entry_points={'console_scripts': scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"], **extensions},
    zip_safe=False,
)
