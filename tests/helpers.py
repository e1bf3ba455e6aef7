"""Brute-force answers the tests check the engines against; uploads as Gradio makes them."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np


def uploaded(path: str | Path) -> str:
    """A copy of ``path`` where Gradio writes an upload (its upload folder), as a visitor's
    upload reaches a handler: the app trusts a query image only there or in a gallery."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder()) / "tests" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    return str(shutil.copy(path, folder / Path(path).name))


def brute_force(matrix: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """The textbook formula row by row, in float64."""
    out = []
    q = np.asarray(query, dtype=np.float64)
    for row in np.asarray(matrix, dtype=np.float64):
        if metric == "l1":
            out.append(np.sum(np.abs(row - q)))
        elif metric == "l2":
            out.append(np.sqrt(np.sum((row - q) ** 2)))
        elif metric == "cosine":
            denom = np.linalg.norm(row) * np.linalg.norm(q)
            out.append(row @ q / denom if denom > 0 else 0.0)
        elif metric == "correlation":
            a, b = row - row.mean(), q - q.mean()
            denom = np.sqrt((a @ a) * (b @ b))
            out.append(a @ b / denom if denom > 0 else 0.0)
        else:
            raise ValueError(metric)
    return np.array(out)


#: Run first in a fresh interpreter, makes ``import torch`` fail as it does in an install from
#: requirements.txt alone (no PyTorch), while everything else stays installed.
NO_TORCH = (
    "import sys, importlib.abc\n"
    "class NoTorch(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch' or name.startswith('torch.'):\n"
    "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
    "sys.meta_path.insert(0, NoTorch())\n"
)
