"""lshprof's built-in scenarios: the TOML files in this folder.

This folder is installed as the package ``lshprof.scenarios`` (see ``package-dir`` in
pyproject.toml), so ``lshprof run NAME`` finds them outside the repository too.
"""
