"""synth: semantic layouts to photorealistic images (pix2pixHD and its successors).

An install holds one top-level package, ``synth``; the repository's ``models/``, ``data/``, ``options/`` and
``configs/`` folders are its subpackages ``synth.models``, ``synth.data``, ``synth.options`` and ``synth.configs``
(setup.cfg's ``package_dir``). Run from a source checkout that is not installed, the checkout's root is added to
this package's search path so that the same names resolve to those folders.
"""

from pathlib import Path as _Path

__version__ = "0.1.0"


def _checkout_root() -> _Path | None:
    """The repository root when this package runs from a source checkout (its subpackages beside it), else None."""
    here = _Path(__file__).resolve().parent
    root = here.parent
    if (here / "models").is_dir() or not (root / "setup.cfg").is_file() or not (root / "models").is_dir():
        return None
    return root


if (_root := _checkout_root()) is not None and str(_root) not in __path__:
    __path__.append(str(_root))
