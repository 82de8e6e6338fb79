"""The one compiled module: ``gfx_sync.cdc._fastrows``, the CDC reader's whole-row loop in C.

Everything else (metadata, dependencies, packages) is in ``pyproject.toml``. ``optional=True``:
a machine without a C compiler still installs, and ``gfx_sync.cdc.rawrows`` runs its pure-Python
path (CI checks the module built: ``tests/gfx_sync/cdc/test_fastrows.py``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gfx_sync.cdc._fastrows",
            ["gfx_sync/cdc/_fastrows.c"],
            optional=True,
        )
    ]
)
