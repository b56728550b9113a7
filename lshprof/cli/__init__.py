from lshprof.cli.app import main

__all__ = ["main"]
